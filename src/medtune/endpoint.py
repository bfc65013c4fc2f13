"""A client for any OpenAI-compatible endpoint (``medtune serve``, vLLM, Ollama, llama.cpp, a hosted API).

A thin wrapper over the official ``openai`` client: its retries (exponential backoff with jitter on
connection errors, timeouts, HTTP 408/409/429 and 5xx, honouring ``Retry-After``) are bounded by
``EndpointSettings.retries``; what still fails becomes a :class:`MedtuneError` naming the URL.
``Endpoint.map`` runs a function over many items with ``concurrency`` threads, so a server that
batches concurrent requests (``medtune serve`` does) answers them together.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from tqdm.auto import tqdm

from medtune.errors import MedtuneError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class EndpointSettings:
    """Where the endpoint is and how to talk to it.

    ``url`` is the API root (``http://127.0.0.1:8000/v1``; a bare ``http://host:port`` gets ``/v1``).
    ``api_key`` None: ``$OPENAI_API_KEY`` when set, else no key (local servers need none).
    ``concurrency`` is the thread count of :meth:`Endpoint.map`; ``retries`` bounds the retries of one
    request; ``timeout`` is seconds per attempt.
    """

    url: str
    model: str
    api_key: str | None = None
    concurrency: int = 8
    retries: int = 4
    timeout: float = 120.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise MedtuneError(
                f"Endpoint URL {self.url!r} is not an http(s) URL; expected e.g. http://127.0.0.1:8000/v1."
            )
        if self.concurrency < 1:
            raise MedtuneError(f"Endpoint concurrency must be at least 1, got {self.concurrency}.")
        if self.retries < 0:
            raise MedtuneError(f"Endpoint retries must be 0 or more, got {self.retries}.")
        if self.timeout <= 0:
            raise MedtuneError(f"Endpoint timeout must be positive seconds, got {self.timeout}.")

    @property
    def base_url(self) -> str:
        """The URL the client calls: ``url`` without a trailing slash, with ``/v1`` when it has no path."""
        url = self.url.rstrip("/")
        return url if urlsplit(url).path else url + "/v1"


@dataclass
class EndpointUsage:
    """Totals over every answered request (from the servers' ``usage``, when they report it)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Endpoint:
    """Chat and text completions from one model at one OpenAI-compatible endpoint; safe to share across threads."""

    def __init__(self, settings: EndpointSettings):
        from openai import OpenAI

        self.settings = settings
        self.usage = EndpointUsage()
        self._usage_lock = threading.Lock()
        self._client = OpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key or os.environ.get("OPENAI_API_KEY") or "no-key",
            max_retries=settings.retries,
            timeout=settings.timeout,
        )

    def chat(
        self,
        messages: list[dict],
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = 256,
        seed: int | None = None,
        stop: list[str] | None = None,
        prompt_id: str | None = None,
    ) -> list[str]:
        """The ``n`` replies to a conversation (``[{"role": "user", "content": ...}, ...]``), in order.

        A server that returns fewer than ``n`` choices (Ollama and llama.cpp ignore ``n``) is asked again
        for each missing sample, one at a time, with a seed derived from ``(seed, "sample", k)``.
        ``prompt_id`` (``medtune serve`` only; other servers may refuse the field) makes sample ``k`` use
        the seed ``medtune generate`` gives row ``prompt_id`` with ``--seed seed``.

        Raises:
            MedtuneError: the endpoint is unreachable after the retries, or refuses the request
                (naming the URL, the HTTP status and the server's message).
        """
        return self._create("chat", messages, n, temperature, top_p, max_tokens, seed, stop, prompt_id)

    def complete(
        self,
        prompt: str,
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = 256,
        seed: int | None = None,
        stop: list[str] | None = None,
        prompt_id: str | None = None,
    ) -> list[str]:
        """The ``n`` continuations of a raw text prompt (for a translation model: the translations), in order.

        Raises:
            MedtuneError: as :meth:`chat`.
        """
        return self._create("completion", prompt, n, temperature, top_p, max_tokens, seed, stop, prompt_id)

    def map(self, fn: Callable[[T], R], items: Sequence[T], progress: str | None = None) -> list[R]:
        """``[fn(item) for item in items]`` computed by ``concurrency`` threads, results in the items' order.

        ``progress`` labels a progress bar (None: no bar). The first exception raised by ``fn`` is raised
        here once the calls already running end; calls not yet started are cancelled.
        """
        bar = tqdm(total=len(items), desc=progress, unit="req", disable=progress is None, dynamic_ncols=True)
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="endpoint")
        try:
            futures = [pool.submit(fn, item) for item in items]
            for future in futures:
                future.add_done_callback(lambda _f: bar.update(1))
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                if future.done() and future.exception() is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise future.exception()
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()

    def _create(
        self, kind: str, prompt: Any, n: int, temperature, top_p, max_tokens, seed, stop, prompt_id
    ) -> list[str]:
        if n < 1:
            raise MedtuneError(f"n must be at least 1, got {n}.")
        from medtune.generate.engine import derive_seed  # imported here: the client itself needs no torch

        texts = self._request(kind, prompt, n, temperature, top_p, max_tokens, seed, stop, prompt_id)
        for k in range(len(texts), n):  # the server ignored n: ask for each missing sample on its own
            sample_seed = None if seed is None else derive_seed(seed, "sample", k)
            texts += self._request(kind, prompt, 1, temperature, top_p, max_tokens, sample_seed, stop, prompt_id)[:1]
        return texts[:n]

    def _request(self, kind: str, prompt: Any, n, temperature, top_p, max_tokens, seed, stop, prompt_id) -> list[str]:
        import openai

        options: dict[str, Any] = dict(
            model=self.settings.model, n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens
        )
        if seed is not None:
            options["seed"] = seed
        if stop:
            options["stop"] = list(stop)
        if prompt_id is not None:
            options["extra_body"] = {"prompt_id": str(prompt_id)}
        try:
            if kind == "chat":
                response = self._client.chat.completions.create(messages=prompt, **options)
                choices = sorted(response.choices, key=lambda c: c.index)
                texts = [choice.message.content or "" for choice in choices]
            else:
                response = self._client.completions.create(prompt=prompt, **options)
                texts = [choice.text for choice in sorted(response.choices, key=lambda c: c.index)]
        except openai.APIStatusError as exc:
            raise self._refused(exc) from None
        except openai.APIConnectionError as exc:  # includes timeouts
            raise MedtuneError(
                f"Cannot reach the OpenAI-compatible endpoint at {self.settings.base_url} after "
                f"{self.settings.retries + 1} attempts ({type(exc).__name__}: {exc}). Check that the server is "
                "running (e.g. 'medtune serve --model M --port 8000') and that the URL is its API root, "
                "usually ending in /v1."
            ) from None
        self._count(response.usage)
        return texts

    def _refused(self, exc) -> MedtuneError:
        status = exc.status_code
        message = _server_message(exc)
        where = f"The endpoint at {self.settings.base_url}"
        if status == 401:
            hint = "Pass the key it expects (medtune serve --api-key K needs exactly K)."
        elif status == 404:
            hint = f"Check the model name ({self.settings.model!r}); GET {self.settings.base_url}/models lists them."
        elif status == 429 or status >= 500:
            hint = f"It kept failing after {self.settings.retries} retries with backoff; try again later."
        else:
            hint = "Fix the request options named in the message."
        return MedtuneError(f"{where} answered HTTP {status}: {message}. {hint}")

    def _count(self, usage) -> None:
        with self._usage_lock:
            self.usage.requests += 1
            if usage is not None:
                self.usage.prompt_tokens += usage.prompt_tokens or 0
                self.usage.completion_tokens += usage.completion_tokens or 0


def _server_message(exc) -> str:
    """The message of an OpenAI-style error body (``{"error": {"message": ...}}``), else the raw text."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(exc.message)
