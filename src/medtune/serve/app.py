"""The OpenAI-compatible FastAPI app of ``medtune serve``.

Routes: ``GET /v1/models`` (and ``/v1/models/{id}``), ``POST /v1/chat/completions``,
``POST /v1/completions``, and ``GET /medtune/stats`` (requests, sequences and batched engine calls
so far). Responses are the ``openai`` package's types; errors are OpenAI-style
``{"error": {"message", "type", "param", "code"}}`` bodies. With an API key, every route needs
``Authorization: Bearer KEY`` (else 401). Streaming sends ``data: {chunk}`` server-sent events, then
``data: [DONE]``; a streamed request runs alone (not batched) and cannot ask for logprobs.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, StarletteHTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from openai.types import Completion, CompletionUsage, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage, ChatCompletionTokenLogprob
from openai.types.chat.chat_completion import Choice as ChatChoice
from openai.types.chat.chat_completion import ChoiceLogprobs
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.chat.chat_completion_token_logprob import TopLogprob

from medtune.errors import MedtuneError
from medtune.models.loading import LoadedModel
from medtune.serve.batching import Batcher
from medtune.serve.model import Choice, GenerationJob, ServedModel, TokenLogprob
from medtune.serve.schemas import ChatCompletionRequest, CompletionRequest, SamplingRequest, ServeError

_DONE = object()


@dataclass(frozen=True)
class ServeSettings:
    """What ``medtune serve`` serves and how (the CLI options)."""

    model: str
    served_name: str | None = None  # the name /v1/models lists; default: ``model`` as given
    api_key: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    max_batch_size: int = 32  # sequences per batch
    batch_wait_ms: float = 50.0  # the longest a batch waits for the requests it expects

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise MedtuneError(f"--max-batch-size must be at least 1, got {self.max_batch_size}.")
        if self.batch_wait_ms < 0:
            raise MedtuneError(f"--batch-wait-ms must be 0 or more, got {self.batch_wait_ms}.")
        if self.api_key is not None and not self.api_key.strip():
            raise MedtuneError("--api-key must not be empty; omit it to serve without a key.")

    @property
    def name(self) -> str:
        return self.served_name or self.model


def create_app(settings: ServeSettings, loaded: LoadedModel | None = None, log=print) -> FastAPI:
    """The app serving ``settings.model`` (loaded here unless ``loaded`` is given).

    Raises:
        MedtuneError: the model cannot be loaded (see ``load_model``).
    """
    if loaded is None:
        from medtune.models.loading import load_model

        loaded = load_model(settings.model, dtype=settings.dtype, device=settings.device, log=log)
    served = ServedModel(loaded, settings.name, settings.max_batch_size)
    batcher = Batcher(served, settings.max_batch_size, settings.batch_wait_ms / 1000)
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await asyncio.to_thread(batcher.stop)

    app = FastAPI(title="medtune serve", lifespan=lifespan)
    app.state.served = served

    @app.middleware("http")
    async def require_api_key(request: Request, call_next):
        if settings.api_key is not None:
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {settings.api_key}".encode()):
                message = "Missing or wrong API key: send the header 'Authorization: Bearer <key given to --api-key>'."
                return _error(ServeError(401, message, code="invalid_api_key"))
        return await call_next(request)

    @app.exception_handler(ServeError)
    async def serve_error(_request: Request, exc: ServeError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
        return _error(ServeError(400, f"Invalid request: {problems}."))

    @app.exception_handler(Exception)
    async def server_error(_request: Request, exc: Exception) -> JSONResponse:
        return _error(ServeError(500, f"The server failed: {type(exc).__name__}: {exc}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(ServeError(exc.status_code, str(exc.detail)))

    def model_card() -> Model:
        return Model(id=settings.name, created=created, object="model", owned_by="medtune")

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"object": "list", "data": [model_card().model_dump()]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> dict:
        _check_model(model_id, settings.name)
        return model_card().model_dump()

    @app.get("/medtune/stats")
    async def stats() -> dict:
        return served.stats.as_dict() | {"max_batch_size": settings.max_batch_size}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest):
        body.check()
        _check_model(body.model, settings.name)
        job = _job(served.chat_job, body)
        if body.stream:
            return _stream(batcher, job, body, chat=True)
        choices = await asyncio.wrap_future(batcher.submit(job))
        return _json(_chat_completion(served.name, job, choices))

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        body.check()
        _check_model(body.model, settings.name)
        job = _job(served.completion_job, body)
        if body.stream:
            return _stream(batcher, job, body, chat=False)
        choices = await asyncio.wrap_future(batcher.submit(job))
        return _json(_completion(served.name, job, choices))

    return app


def _job(make, body: SamplingRequest) -> GenerationJob:
    try:
        return make(body)
    except MedtuneError as exc:
        raise ServeError(400, str(exc)) from None


def _check_model(requested: str, served: str) -> None:
    if requested != served:
        raise ServeError(
            404,
            f"The model {requested!r} does not exist here; this server serves {served!r} (GET /v1/models).",
            "model",
            "model_not_found",
        )


def _error(exc: ServeError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def _json(obj) -> JSONResponse:
    return JSONResponse(obj.model_dump(mode="json", exclude_unset=True))


def _usage(job: GenerationJob, choices: list[Choice]) -> CompletionUsage:
    completion = sum(c.generated for c in choices)
    return CompletionUsage(
        prompt_tokens=job.prompt_tokens, completion_tokens=completion, total_tokens=job.prompt_tokens + completion
    )


def _chat_logprobs(tokens: tuple[TokenLogprob, ...]) -> ChoiceLogprobs:
    def entry(token: str, logprob: float) -> dict:
        return dict(token=token, bytes=list(token.encode("utf-8")), logprob=logprob)

    return ChoiceLogprobs(
        content=[
            ChatCompletionTokenLogprob(
                **entry(t.token, t.logprob), top_logprobs=[TopLogprob(**entry(tok, lp)) for tok, lp in t.top]
            )
            for t in tokens
        ]
    )


def _chat_completion(name: str, job: GenerationJob, choices: list[Choice]) -> ChatCompletion:
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        object="chat.completion",
        created=int(time.time()),
        model=name,
        choices=[
            ChatChoice(
                index=k,
                message=ChatCompletionMessage(role="assistant", content=c.text),
                finish_reason=c.finish_reason,
                logprobs=None if c.logprobs is None else _chat_logprobs(c.logprobs),
            )
            for k, c in enumerate(choices)
        ],
        usage=_usage(job, choices),
    )


def _completion_logprobs(choice: Choice) -> dict:
    """The legacy completions ``logprobs`` object; ``text_offset`` counts from the start of the returned
    (stripped) text, so tokens of stripped leading whitespace sit at 0."""
    joined = "".join(t.token for t in choice.logprobs)
    lead = len(joined) - len(joined.lstrip())
    offsets, position = [], 0
    for t in choice.logprobs:
        offsets.append(max(0, position - lead))
        position += len(t.token)
    return {
        "tokens": [t.token for t in choice.logprobs],
        "token_logprobs": [t.logprob for t in choice.logprobs],
        "top_logprobs": [dict(t.top) for t in choice.logprobs],
        "text_offset": offsets,
    }


def _completion(name: str, job: GenerationJob, choices: list[Choice]) -> Completion:
    return Completion.model_validate(
        {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": name,
            "choices": [
                {
                    "index": k,
                    "text": c.text,
                    "finish_reason": c.finish_reason,
                    "logprobs": None if c.logprobs is None else _completion_logprobs(c),
                }
                for k, c in enumerate(choices)
            ],
            "usage": _usage(job, choices).model_dump(),
        }
    )


def _stream(batcher: Batcher, job: GenerationJob, body: SamplingRequest, chat: bool) -> StreamingResponse:
    """Server-sent events: text deltas as they settle, then each choice's finish reason, usage if asked, [DONE]."""
    if job.top_logprobs is not None:
        raise ServeError(400, "logprobs are not available with stream; send the request without stream.", "logprobs")
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    future = batcher.submit_streamed(job, lambda k, text: loop.call_soon_threadsafe(events.put_nowait, (k, text)))
    future.add_done_callback(lambda _f: loop.call_soon_threadsafe(events.put_nowait, _DONE))
    completion_id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    created = int(time.time())
    job_model = body.model

    def chunk(choices: list[dict], usage: CompletionUsage | None = None) -> str:
        if chat:
            obj = ChatCompletionChunk(
                id=completion_id,
                object="chat.completion.chunk",
                created=created,
                model=job_model,
                choices=[
                    ChunkChoice(index=c["index"], delta=ChoiceDelta(**c["delta"]), finish_reason=c["finish"])
                    for c in choices
                ],
                usage=usage,
            ).model_dump(mode="json", exclude_unset=True)
        else:
            obj = {
                "id": completion_id,
                "object": "text_completion",
                "created": created,
                "model": job_model,
                "choices": [
                    {
                        "index": c["index"],
                        "text": c["delta"].get("content", ""),
                        "finish_reason": c["finish"],
                        "logprobs": None,
                    }
                    for c in choices
                ],
            }
            if usage is not None:
                obj["usage"] = usage.model_dump()
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

    async def generate() -> AsyncIterator[str]:
        if chat:
            yield chunk(
                [{"index": k, "delta": {"role": "assistant", "content": ""}, "finish": None} for k in range(job.n)]
            )
        while (event := await events.get()) is not _DONE:
            k, text = event
            yield chunk([{"index": k, "delta": {"content": text}, "finish": None}])
        try:
            choices = future.result()
        except Exception as exc:  # the stream has begun: the error goes in the stream, as OpenAI does
            error = ServeError(500, f"Generation failed: {exc}")
            yield f"data: {json.dumps(error.body())}\n\n"
            return
        yield chunk([{"index": k, "delta": {}, "finish": c.finish_reason} for k, c in enumerate(choices)])
        if body.include_usage():
            yield chunk([], _usage(job, choices))
        yield "data: [DONE]\n\n"

    return StreamingResponse(generate(), media_type="text/event-stream")
