"""Request bodies of the OpenAI API that ``medtune serve`` answers, and its OpenAI-style errors.

Responses are the ``openai`` package's own pydantic types (built in ``app.py``). Requests are
validated here: unknown fields are ignored (clients send extras), but options that medtune cannot
honour (tools, logit bias, penalties, JSON mode) are refused by name rather than silently dropped.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_N = 128  # as the OpenAI API
MAX_TOP_LOGPROBS_CHAT = 20
MAX_LOGPROBS_COMPLETION = 5


class ServeError(Exception):
    """A request the server refuses: becomes ``{"error": {"message", "type", "param", "code"}}`` with ``status``."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        kind = {401: "authentication_error", 404: "not_found_error"}.get(self.status, "invalid_request_error")
        if self.status >= 500:
            kind = "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


class SamplingRequest(BaseModel):
    """Options shared by chat and text completions."""

    model_config = ConfigDict(extra="allow")

    model: str
    n: int = 1
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    # medtune's extension: the prompt id whose per-sample seeds are derived, as in 'medtune generate'
    prompt_id: str = "1"
    logit_bias: dict[str, float] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    def stop_strings(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if any(not s for s in stops):
            raise ServeError(400, "'stop' must hold non-empty strings.", "stop")
        return tuple(stops)

    def include_usage(self) -> bool:
        """A streamed response ends with a usage chunk (``stream_options: {"include_usage": true}``)."""
        return bool((self.stream_options or {}).get("include_usage"))

    def check_common(self) -> None:
        """Refuse out-of-range values and options medtune does not implement, naming the field."""
        if not 1 <= self.n <= MAX_N:
            raise ServeError(400, f"'n' must be between 1 and {MAX_N}, got {self.n}.", "n")
        if self.temperature is not None and self.temperature < 0:
            raise ServeError(400, f"'temperature' must be 0 (greedy) or more, got {self.temperature}.", "temperature")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ServeError(400, f"'top_p' must be in (0, 1], got {self.top_p}; 1 keeps every token.", "top_p")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ServeError(400, f"'max_tokens' must be at least 1, got {self.max_tokens}.", "max_tokens")
        if self.logit_bias:
            raise ServeError(400, "'logit_bias' is not supported by medtune serve.", "logit_bias")
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise ServeError(400, f"'{name}' is not supported by medtune serve; leave it at 0.", name)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self, position: int) -> str:
        """The message as text; content parts must all be text."""
        if isinstance(self.content, str):
            return self.content
        if self.content is None:
            raise ServeError(400, f"messages[{position}] has no content.", "messages")
        texts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ServeError(
                    400,
                    f"messages[{position}] holds a {part.get('type')!r} part; medtune serve reads text only.",
                    "messages",
                )
            texts.append(part["text"])
        return "".join(texts)


class ChatCompletionRequest(SamplingRequest):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    def check(self) -> None:
        if self.max_tokens is None:
            self.max_tokens = self.max_completion_tokens
        self.check_common()
        for name in ("tools", "functions"):
            if getattr(self, name):
                raise ServeError(400, f"'{name}' (function calling) is not supported by medtune serve.", name)
        if self.response_format and self.response_format.get("type") != "text":
            raise ServeError(
                400,
                f"response_format {self.response_format.get('type')!r} is not supported by medtune serve; ask "
                "for JSON in the prompt and parse the reply.",
                "response_format",
            )
        if self.top_logprobs is not None:
            if not self.logprobs:
                raise ServeError(400, "'top_logprobs' needs 'logprobs': true.", "top_logprobs")
            if not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS_CHAT:
                raise ServeError(400, f"'top_logprobs' must be 0 to {MAX_TOP_LOGPROBS_CHAT}.", "top_logprobs")

    def conversation(self) -> list[dict[str, str]]:
        """The turns as ``{"role", "content"}`` (``developer`` is a system turn), ending with a user turn."""
        turns = []
        for position, message in enumerate(self.messages):
            role = "system" if message.role == "developer" else message.role
            if role not in ("system", "user", "assistant"):
                raise ServeError(
                    400,
                    f"messages[{position}] has role {message.role!r}; expected system, user or assistant.",
                    "messages",
                )
            turns.append({"role": role, "content": message.text(position)})
        if turns[-1]["role"] != "user":
            raise ServeError(400, "The conversation must end with a user turn for the model to answer.", "messages")
        return turns

    def top_k(self) -> int | None:
        """Alternatives to list per token (None: no logprobs)."""
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(SamplingRequest):
    """``POST /v1/completions`` (one prompt string per request)."""

    prompt: str | list[str]
    logprobs: int | None = None
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    def check(self) -> None:
        self.check_common()
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise ServeError(400, "Send one prompt string per request (send requests concurrently instead).", "prompt")
        if self.echo or self.suffix:
            raise ServeError(400, "'echo' and 'suffix' are not supported by medtune serve.", "echo")
        if self.best_of not in (None, self.n):
            raise ServeError(400, "'best_of' is not supported by medtune serve; use 'n'.", "best_of")
        if self.logprobs is not None and not 0 <= self.logprobs <= MAX_LOGPROBS_COMPLETION:
            raise ServeError(400, f"'logprobs' must be 0 to {MAX_LOGPROBS_COMPLETION}.", "logprobs")

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]
