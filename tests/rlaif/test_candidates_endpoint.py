"""Candidates from an OpenAI-compatible endpoint: one request per prompt with ``n`` and a per-prompt seed.

Driven against a real uvicorn server that answers every request with the text it was asked plus the
sample index and seed (so the test sees exactly what each request carried), and against a live
``medtune serve`` whose answers must equal medtune's engine with the seeds it derives.
"""

from __future__ import annotations

import threading

import pytest
from fastapi import FastAPI, Request
from live_server import uvicorn_in_thread

from medtune.data.chat_template import render_chat_prompt, stop_token_ids
from medtune.data.mcq import MCQItem
from medtune.data.parallel import Pair
from medtune.endpoint import Endpoint, EndpointSettings
from medtune.generate.engine import SamplingSettings, derive_seed, sample_texts
from medtune.models.loading import load_model
from medtune.rlaif.candidates import candidate_id, generate_candidates, read_candidates
from medtune.rlaif.prompt_items import PromptItem, prompt_items_from_mcq, prompt_items_from_pairs


def quiet(_message: str) -> None:
    pass


# Hand-made answers to two questions: what duplicate detection must find in them is worked out below.
CANNED = {"Canned A": ["Fever.", "fever.", "Fever", "Rash."], "Canned B": ["Yes", "YES", "yes ", "Yes"]}


@pytest.fixture(scope="module")
def echo_server():
    """``(requests, url)``: every request body is recorded; answers are ``<last text>|<k>|<seed>``
    (or the :data:`CANNED` answers to those questions)."""
    app, requests, lock = FastAPI(), [], threading.Lock()

    def choices(body: dict, text: str, chat: bool) -> dict:
        with lock:
            requests.append(body)
        texts = CANNED.get(text) or [f" {text}|{k}|{body.get('seed')} " for k in range(body.get("n", 1))]
        if chat:
            items = [{"index": k, "message": {"role": "assistant", "content": t}} for k, t in enumerate(texts)]
        else:
            items = [{"index": k, "text": t} for k, t in enumerate(texts)]
        items = [item | {"finish_reason": "stop"} for item in items]
        kind = "chat.completion" if chat else "text_completion"
        return {"id": "x", "object": kind, "created": 0, "model": body["model"], "choices": items}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        return choices(body, body["messages"][-1]["content"], chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        return choices(body, body["prompt"].replace("\n", "/"), chat=False)

    with uvicorn_in_thread(app) as url:
        yield requests, url


def test_endpoint_candidates_ask_once_per_prompt_with_n_and_its_seed(echo_server, tmp_path):
    requests, url = echo_server
    requests.clear()
    prompts = [PromptItem("a", [{"role": "user", "content": "Flu signs?"}], gold="A"), PromptItem("b", "Rash?")]
    endpoint = Endpoint(EndpointSettings(url, "policy", concurrency=2))
    out = tmp_path / "candidates.jsonl"
    stats = generate_candidates(
        prompts, out, n=3, temperature=0.9, top_p=0.8, max_new_tokens=20, seed=5, endpoint=endpoint, log=quiet
    )
    seeds = {"a": derive_seed(5, "a"), "b": derive_seed(5, "b")}
    assert sorted(requests, key=lambda r: r["seed"] != seeds["a"]) == [
        {"model": "policy", "messages": m, "n": 3, "temperature": 0.9, "top_p": 0.8, "max_tokens": 20, "seed": seeds[i]}
        for i, m in (("a", prompts[0].prompt), ("b", [{"role": "user", "content": "Rash?"}]))
    ]
    rows = read_candidates(out)
    assert [(r["id"], r["text"]) for r in rows] == [
        (candidate_id(p.id, k, 5), f"{text}|{k}|{seeds[p.id]}")
        for p, text in zip(prompts, ["Flu signs?", "Rash?"], strict=True)
        for k in range(3)
    ]
    assert rows[0]["gold"] == "A" and stats.generated == 6 and stats.exact_duplicates == 0
    requests.clear()
    again = generate_candidates(prompts, out, n=3, temperature=0.9, seed=5, endpoint=endpoint, log=quiet)
    assert (again.resumed_prompts, again.generated, requests) == (2, 0, [])


def test_exact_and_near_duplicates_are_marked_and_counted_on_hand_made_answers(echo_server, tmp_path):
    _requests, url = echo_server
    prompts = [PromptItem("a", "Canned A"), PromptItem("b", "Canned B")]
    out = tmp_path / "candidates.jsonl"
    stats = generate_candidates(prompts, out, n=4, endpoint=Endpoint(EndpointSettings(url, "policy")), log=quiet)
    ids = {p.id: [candidate_id(p.id, k, 42) for k in range(4)] for p in prompts}
    # A: "fever." repeats "Fever." exactly (case); "Fever" nearly (difflib ratio 2*5/11 = 0.91); "Rash." is new.
    # B: every answer repeats "Yes" exactly, so B has one distinct answer.
    assert [r["duplicate_of"] for r in read_candidates(out)] == [
        None, ids["a"][0], ids["a"][0], None, None, ids["b"][0], ids["b"][0], ids["b"][0]
    ]  # fmt: skip
    assert (stats.exact_duplicates, stats.near_duplicates, stats.prompts_with_fewer_than_two_distinct) == (4, 1, 1)


def test_endpoint_translation_candidates_complete_the_translation_prompt_to_the_line_end(echo_server, tmp_path):
    requests, url = echo_server
    requests.clear()
    prompts = prompt_items_from_pairs([Pair("Take one tablet.", "Tome un comprimido.", id="t1")])
    endpoint = Endpoint(EndpointSettings(url, "policy"))
    out = tmp_path / "candidates.jsonl"
    generate_candidates(prompts, out, n=2, seed=5, task="translation", endpoint=endpoint, log=quiet)
    [request] = requests
    assert request["prompt"] == "English: Take one tablet.\nSpanish:" and request["stop"] == ["\n"]
    seed = derive_seed(5, "t1")
    assert [r["text"] for r in read_candidates(out)] == [
        f"English: Take one tablet./Spanish:|{k}|{seed}" for k in range(2)
    ]
    assert read_candidates(out)[0]["reference"] == "Tome un comprimido."


def test_candidates_from_a_live_medtune_serve_equal_its_engine_with_the_per_prompt_seed(medtune_server, tmp_path):
    questions = [MCQItem(f"q{i}", f"Main sign of disease {i}?", {"A": "Fever", "B": "Rash"}, "A") for i in range(4)]
    prompts = prompt_items_from_mcq(questions)
    settings = EndpointSettings(medtune_server.base_url, medtune_server.model, medtune_server.api_key, concurrency=4)
    out = tmp_path / "candidates.jsonl"
    options = dict(n=2, temperature=0.9, top_p=0.95, max_new_tokens=10, seed=3, log=quiet)
    stats = generate_candidates(prompts, out, endpoint=Endpoint(settings), **options)
    assert stats.candidates == 8
    # medtune serve draws sample k of a request with seed s from derive_seed(s, "1", k); the request's
    # seed is the prompt's own, derive_seed(3, prompt id).
    loaded = load_model(str(medtune_server.model_dir), dtype="float32", device="cpu")
    tok = loaded.tokenizer
    sampling = SamplingSettings(10, 0.9, top_p=0.95).with_stop_tokens(stop_token_ids(tok))
    texts = [render_chat_prompt(tok, p.prompt) for p in prompts for _ in range(2)]
    seeds = [derive_seed(derive_seed(3, p.id), "1", k) for p in prompts for k in range(2)]
    expected = [t.strip() for t in sample_texts(loaded.model, tok, texts, sampling, seeds)]
    assert [r["text"] for r in read_candidates(out)] == expected
