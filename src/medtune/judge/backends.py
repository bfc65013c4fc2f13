"""Where an ``llm`` judge's replies come from: medtune's own generation engine, or an OpenAI-compatible endpoint.

A backend answers conversations (lists of chat messages) greedily, one reply each, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class ChatBackend(Protocol):
    """Answers chat conversations greedily. ``identity`` names the model (it enters the judge's fingerprint)."""

    identity: str

    def reply(self, conversations: Sequence[list[dict]]) -> list[str]: ...


class LocalChatBackend:
    """A model medtune can load, answering through its chat template with the batched generation engine."""

    def __init__(
        self,
        model: str,
        max_new_tokens: int = 256,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        log=print,
    ):
        self.model_name = model
        self.identity = f"local:{model}"
        self.max_new_tokens = max_new_tokens
        self.device, self.dtype, self.batch_size, self.log = device, dtype, batch_size, log
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            from medtune.models.loading import load_model

            self._loaded = load_model(self.model_name, dtype=self.dtype, device=self.device, log=self.log)
        return self._loaded

    def reply(self, conversations: Sequence[list[dict]]) -> list[str]:
        """Greedy replies, each cut at the template's end of turn."""
        from medtune.data.chat_template import render_chat_prompt, stop_token_ids
        from medtune.generate.engine import SamplingSettings, sample_texts

        loaded = self._load()
        prompts = [render_chat_prompt(loaded.tokenizer, conversation) for conversation in conversations]
        settings = SamplingSettings(max_new_tokens=self.max_new_tokens).with_stop_tokens(
            stop_token_ids(loaded.tokenizer)
        )
        return sample_texts(loaded.model, loaded.tokenizer, prompts, settings, batch_size=self.batch_size)


class EndpointChatBackend:
    """Any OpenAI-compatible server (vLLM, Ollama, llama.cpp, a hosted API, ``medtune serve``), requests in parallel."""

    def __init__(self, url: str, model: str, api_key: str | None = None, concurrency: int = 8, max_tokens: int = 256):
        from medtune.endpoint import Endpoint, EndpointSettings

        # The model name, not the URL: a restarted server on another port still resumes the same judgments.
        self.identity = f"endpoint:{model}"
        self.max_tokens = max_tokens
        self.endpoint = Endpoint(EndpointSettings(url=url, model=model, api_key=api_key, concurrency=concurrency))

    def reply(self, conversations: Sequence[list[dict]]) -> list[str]:
        """Greedy replies (temperature 0), ``concurrency`` requests at a time; unreachable: the client's error naming the URL."""

        def ask(conversation: list[dict]) -> str:
            return self.endpoint.chat(conversation, n=1, temperature=0.0, max_tokens=self.max_tokens)[0]

        return self.endpoint.map(ask, list(conversations))
