"""``medtune.endpoint``: retries with backoff, errors naming the URL, ``n`` fallback and ordered concurrency.

Driven against a real uvicorn server whose behaviour the test scripts (failures first, ignoring ``n``);
the client against ``medtune serve`` itself is covered in tests/serve/.
"""

from __future__ import annotations

import threading
import time

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from live_server import free_port, uvicorn_in_thread

from medtune.endpoint import Endpoint, EndpointSettings
from medtune.errors import MedtuneError
from medtune.generate.engine import derive_seed


class Script:
    """What the scripted server does: fail the first requests, honour ``n`` or not; records every request."""

    def __init__(self) -> None:
        self.fail_first = 0
        self.fail_status = 503
        self.honour_n = True
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay_s = 0.0
        self.lock = threading.Lock()


def scripted_app(script: Script) -> FastAPI:
    app = FastAPI()

    async def answer(request: Request, kind: str):
        import asyncio

        body = await request.json()
        with script.lock:
            script.requests.append(body)
            attempt = len(script.requests)
            script.in_flight += 1
            script.max_in_flight = max(script.max_in_flight, script.in_flight)
        try:
            await asyncio.sleep(script.delay_s)
            if attempt <= script.fail_first:  # retry-after-ms keeps the client's backoff short in tests
                error = {"error": {"message": "busy", "type": "server_error", "code": None}}
                return JSONResponse(error, status_code=script.fail_status, headers={"retry-after-ms": "10"})
            prompt = body["messages"][-1]["content"] if kind == "chat" else body["prompt"]
            n = body.get("n", 1) if script.honour_n else 1
            texts = [f"{prompt}|{k}|{body.get('seed')}" for k in range(n)]
            if kind == "chat":
                choices = [
                    {"index": k, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                    for k, t in enumerate(texts)
                ]
                obj = "chat.completion"
            else:
                choices = [{"index": k, "text": t, "finish_reason": "stop"} for k, t in enumerate(texts)]
                obj = "text_completion"
            usage = {"prompt_tokens": 3, "completion_tokens": 2 * n, "total_tokens": 3 + 2 * n}
            return {"id": "x", "object": obj, "created": 0, "model": body["model"], "choices": choices, "usage": usage}
        finally:
            with script.lock:
                script.in_flight -= 1

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await answer(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await answer(request, "completion")

    return app


@pytest.fixture(scope="module")
def scripted():
    script = Script()
    with uvicorn_in_thread(scripted_app(script)) as url:
        yield script, url


@pytest.fixture
def script(scripted) -> tuple[Script, str]:
    script, url = scripted
    script.__init__()  # a fresh script per test on the same server
    return script, url


def test_chat_and_complete_return_n_texts_in_order_and_count_usage(script):
    state, url = script
    endpoint = Endpoint(EndpointSettings(url, "m"))
    assert endpoint.chat([{"role": "user", "content": "hi"}], n=3, seed=5) == ["hi|0|5", "hi|1|5", "hi|2|5"]
    assert endpoint.complete("src", temperature=0.7, max_tokens=9, stop=["\n"]) == ["src|0|None"]
    assert state.requests[1] | {} == {
        "model": "m",
        "prompt": "src",
        "n": 1,
        "temperature": 0.7,
        "top_p": 1.0,
        "max_tokens": 9,
        "stop": ["\n"],
    }
    assert (endpoint.usage.requests, endpoint.usage.prompt_tokens, endpoint.usage.completion_tokens) == (2, 6, 8)


def test_a_bare_host_url_gets_the_v1_root():
    assert EndpointSettings("http://127.0.0.1:8000", "m").base_url == "http://127.0.0.1:8000/v1"
    assert EndpointSettings("http://h:1/v1/", "m").base_url == "http://h:1/v1"
    with pytest.raises(MedtuneError, match="not an http"):
        EndpointSettings("127.0.0.1:8000", "m")


@pytest.mark.parametrize("status", [503, 429])
def test_transient_failures_are_retried_then_answered(script, status):
    state, url = script
    state.fail_first, state.fail_status = 2, status
    endpoint = Endpoint(EndpointSettings(url, "m", retries=2))
    assert endpoint.chat([{"role": "user", "content": "q"}]) == ["q|0|None"]
    assert len(state.requests) == 3  # two failures, then the answer


def test_failures_beyond_the_retries_name_the_url_and_status(script):
    state, url = script
    state.fail_first = 10
    endpoint = Endpoint(EndpointSettings(url, "m", retries=1))
    with pytest.raises(MedtuneError) as error:
        endpoint.chat([{"role": "user", "content": "q"}])
    assert url in str(error.value) and "HTTP 503: busy" in str(error.value)
    assert len(state.requests) == 2  # bounded: one try and one retry


def test_an_unreachable_endpoint_is_a_clear_error_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    endpoint = Endpoint(EndpointSettings(url, "m", retries=1, timeout=5))
    with pytest.raises(MedtuneError, match=r"Cannot reach .* at http://127\.0\.0\.1:\d+/v1 after 2 attempts"):
        endpoint.complete("x")


def test_a_server_that_ignores_n_is_asked_once_per_missing_sample(script):
    state, url = script
    state.honour_n = False
    texts = Endpoint(EndpointSettings(url, "m")).chat([{"role": "user", "content": "q"}], n=3, seed=7)
    assert texts == ["q|0|7", f"q|0|{derive_seed(7, 'sample', 1)}", f"q|0|{derive_seed(7, 'sample', 2)}"]
    assert [r["n"] for r in state.requests] == [3, 1, 1]


def test_map_keeps_order_and_runs_concurrently(script):
    state, url = script
    state.delay_s = 0.2
    endpoint = Endpoint(EndpointSettings(url, "m", concurrency=4))
    prompts = [f"p{i}" for i in range(8)]
    texts = endpoint.map(lambda p: endpoint.complete(p)[0], prompts, progress=None)
    assert texts == [f"p{i}|0|None" for i in range(8)]
    assert state.max_in_flight == 4  # four threads, each waiting on its own request


def test_map_raises_the_first_error_and_cancels_the_rest(script):
    _state, url = script
    endpoint = Endpoint(EndpointSettings(url, "m", concurrency=1))
    started: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        if i == 1:
            raise MedtuneError("item 1 failed")
        time.sleep(0.5)
        return i

    with pytest.raises(MedtuneError, match="item 1 failed"):
        endpoint.map(work, list(range(6)))
    # one thread: the item it may have taken just before the failure was seen runs; the rest are cancelled
    assert started[:2] == [0, 1] and len(started) <= 3
