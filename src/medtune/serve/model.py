"""The served model: turns requests into generation jobs and runs batches of them on medtune's engine.

Seeds and ``n`` behave as in ``medtune generate``: sample ``k`` of a request with seed ``s`` is drawn
with ``derive_seed(s, prompt_id, k)``, where ``prompt_id`` (a medtune extension field) defaults to
``"1"``, the id ``medtune generate`` gives the first row of a file without ids. So a chat request
equals ``medtune generate`` on a one-prompt file with ``--seed s --num-return-sequences n``, and
``/v1/completions`` equals it with ``--no-chat``. Replies are stripped, as ``medtune generate``
writes them. A request without a seed samples with a random one. Greedy requests (temperature 0)
decode once and repeat the reply ``n`` times.
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from medtune.data.chat_template import ensure_chat_template, stop_token_ids
from medtune.errors import MedtuneError
from medtune.generate.engine import GeneratedSequence, SamplingSettings, derive_seed, model_eos_ids, sample_sequences
from medtune.generate.prompt_file import PromptRow, render_prompt
from medtune.models.loading import LoadedModel
from medtune.serve.schemas import ChatCompletionRequest, CompletionRequest, SamplingRequest, ServeError
from medtune.serve.streaming import TextDeltaStreamer, final_text

DEFAULT_MAX_TOKENS = 256  # as SamplingSettings and 'medtune generate'


@dataclass(frozen=True)
class GenerationJob:
    """One request's work: ``n`` continuations of one prompt with one set of settings."""

    prompt: str
    prompt_tokens: int
    settings: SamplingSettings
    n: int
    seeds: tuple[int, ...] | None  # one per sample; None when greedy
    add_special_tokens: bool
    top_logprobs: int | None = None  # alternatives listed per token; None: no logprobs

    @property
    def sequences(self) -> int:
        """Sequences it adds to a batch (a greedy reply is decoded once)."""
        return 1 if self.seeds is None else self.n

    @property
    def group(self) -> tuple:
        """Jobs with the same group decode in one engine call."""
        return (self.settings, self.add_special_tokens)


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...]  # the most likely tokens at that position, most likely first


@dataclass(frozen=True)
class Choice:
    """One reply of a request."""

    text: str
    finish_reason: str  # "stop" or "length"
    generated: int  # tokens generated (usage)
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass
class ServeStats:
    """What the server did: the batching test and the benchmark read these from ``/medtune/stats``."""

    requests: int = 0
    sequences: int = 0
    engine_calls: int = 0  # one batched generate per group of compatible jobs
    largest_batch: int = 0
    completion_tokens: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            names = ("requests", "sequences", "engine_calls", "largest_batch", "completion_tokens")
            return {name: getattr(self, name) for name in names}


class ServedModel:
    """A loaded model under a served name.

    The ``*_job`` methods run on the event loop (with ``request_tokenizer``); ``run_batch`` and
    ``run_streamed`` only on the batching worker thread (with the model and its tokenizer).
    """

    def __init__(self, loaded: LoadedModel, name: str, max_batch_size: int = 32):
        self.loaded = loaded
        self.name = name
        self.max_batch_size = max_batch_size
        self.stats = ServeStats()
        self.context_limit = getattr(loaded.model.config, "max_position_embeddings", None)
        # Requests are tokenised on the event loop while the worker encodes batches: a fast tokenizer
        # used from two threads at once fails ("Already borrowed"), so each thread has its own.
        self.request_tokenizer = copy.deepcopy(loaded.tokenizer)

    # ---- requests -> jobs (on the event loop; no model calls) ----

    def chat_job(self, request: ChatCompletionRequest) -> GenerationJob:
        """The job of a chat request: the conversation rendered with the chat template, as ``medtune generate``.

        Raises:
            ServeError: 400 for a model that cannot chat (seq2seq, or no chat template) or a bad conversation.
        """
        tokenizer = self.request_tokenizer
        if self.loaded.is_seq2seq:
            raise ServeError(400, f"{self.name} is a translation (encoder-decoder) model: use /v1/completions.")
        try:
            ensure_chat_template(tokenizer)
            row = PromptRow(request.prompt_id, "request", messages=tuple(request.conversation()))
            prompt = render_prompt(tokenizer, row, self.loaded.trained_system_prompt, chat=True)
        except MedtuneError as exc:
            raise ServeError(400, f"{self.name} cannot chat: {exc} Use /v1/completions with raw text.") from None
        settings = self._settings(request).with_stop_tokens(stop_token_ids(tokenizer))
        return self._job(request, prompt, settings, add_special_tokens=False, top_logprobs=request.top_k())

    def completion_job(self, request: CompletionRequest) -> GenerationJob:
        """The job of a text completion (for a translation model: the source sentence to translate)."""
        return self._job(request, request.text(), self._settings(request), True, request.logprobs)

    def _settings(self, request: SamplingRequest) -> SamplingSettings:
        return SamplingSettings(
            max_new_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            stop_strings=request.stop_strings(),
        )

    def _job(self, request: SamplingRequest, prompt: str, settings, add_special_tokens: bool, top_logprobs):
        prompt_tokens = len(self.request_tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"])
        limit = self.context_limit
        total = prompt_tokens if self.loaded.is_seq2seq else prompt_tokens + settings.max_new_tokens
        if limit is not None and total > limit:
            raise ServeError(
                400,
                f"The prompt has {prompt_tokens} tokens; with max_tokens {settings.max_new_tokens} that exceeds "
                f"the model's context of {limit} tokens. Shorten the prompt or lower max_tokens.",
                "max_tokens",
            )
        seeds = None
        if not settings.greedy:
            seed = secrets.randbelow(2**31) if request.seed is None else request.seed
            seeds = tuple(derive_seed(seed, request.prompt_id, k) for k in range(request.n))
        return GenerationJob(prompt, prompt_tokens, settings, request.n, seeds, add_special_tokens, top_logprobs)

    # ---- jobs -> choices (on the worker thread) ----

    def run_batch(self, jobs: Sequence[GenerationJob]) -> list[list[Choice]]:
        """Each job's choices; jobs with the same settings share one batched engine call."""
        results: list[list[Choice]] = [[] for _ in jobs]
        groups: dict[tuple, list[int]] = {}
        for position, job in enumerate(jobs):
            groups.setdefault(job.group, []).append(position)
        for members in groups.values():
            first = jobs[members[0]]
            prompts = [jobs[i].prompt for i in members for _ in range(jobs[i].sequences)]
            seeds = None if first.settings.greedy else [s for i in members for s in jobs[i].seeds]
            sequences = sample_sequences(
                self.loaded.model,
                self.loaded.tokenizer,
                prompts,
                first.settings,
                seeds,
                batch_size=self.max_batch_size,
                add_special_tokens=first.add_special_tokens,
            )
            self._count(len(members), len(prompts), sequences)
            start = 0
            for i in members:
                mine = sequences[start : start + jobs[i].sequences]
                start += jobs[i].sequences
                results[i] = [self._choice(jobs[i], seq) for seq in mine] * (jobs[i].n if len(mine) == 1 else 1)
        return results

    def run_streamed(self, job: GenerationJob, on_delta: Callable[[int, str], None]) -> list[Choice]:
        """A job decoded alone, sample by sample, calling ``on_delta(index, text)`` as text settles."""
        tokenizer = self.loaded.tokenizer
        stop_ids = sorted(set(model_eos_ids(self.loaded.model)) | set(job.settings.stop_token_ids))
        choices = []
        for k in range(job.n):
            streamer = TextDeltaStreamer(
                tokenizer, stop_ids, job.settings.stop_strings, lambda text, k=k: on_delta(k, text)
            )
            seeds = None if job.seeds is None else [job.seeds[k]]
            [seq] = sample_sequences(
                self.loaded.model,
                tokenizer,
                [job.prompt],
                job.settings,
                seeds,
                batch_size=1,
                add_special_tokens=job.add_special_tokens,
                streamer=streamer,
            )
            self._count(1 if k == 0 else 0, 1, [seq])
            choice = self._choice(job, seq)
            streamer.finish(choice.text)
            choices.append(choice)
        return choices

    def _count(self, requests: int, rows: int, sequences: Sequence[GeneratedSequence]) -> None:
        with self.stats.lock:
            self.stats.requests += requests
            self.stats.sequences += rows
            self.stats.engine_calls += 1
            self.stats.largest_batch = max(self.stats.largest_batch, rows)
            self.stats.completion_tokens += sum(seq.generated for seq in sequences)

    def _choice(self, job: GenerationJob, seq: GeneratedSequence) -> Choice:
        text = final_text(seq.text, ())  # seq.text is already cut at the stop strings
        reason = "stop" if seq.stopped else "length"
        logprobs = None
        if job.top_logprobs is not None:
            logprobs = self._logprobs(job, self._tokens_within(seq))
        return Choice(text, reason, seq.generated, logprobs)

    def _tokens_within(self, seq: GeneratedSequence) -> list[int]:
        """The longest prefix of the sequence's tokens whose text lies within the reply (a stop string may cut it)."""
        ids = list(seq.token_ids)
        decode = self.loaded.tokenizer.decode
        while ids and not seq.text.startswith(decode(ids, skip_special_tokens=True)):
            ids.pop()
        return ids

    @torch.no_grad()
    def _logprobs(self, job: GenerationJob, completion: list[int]) -> tuple[TokenLogprob, ...]:
        """The model's own log-softmax (temperature 1, before top-p) at each reply token, and the top alternatives.

        One teacher-forced forward pass over prompt + reply, with logits only at the reply's positions.
        """
        if not completion:
            return ()
        model, tokenizer = self.loaded.model, self.loaded.tokenizer
        prompt_ids = tokenizer(job.prompt, add_special_tokens=job.add_special_tokens)["input_ids"]
        device = model.device
        if self.loaded.is_seq2seq:
            start = model.config.decoder_start_token_id
            logits = model(
                input_ids=torch.tensor([prompt_ids], device=device),
                decoder_input_ids=torch.tensor([[start, *completion[:-1]]], device=device),
            ).logits[0]
        else:
            ids = torch.tensor([prompt_ids + completion], device=device)
            logits = model(input_ids=ids, logits_to_keep=len(completion) + 1).logits[0, :-1]
        logps = torch.log_softmax(logits.float(), dim=-1)
        chosen = logps.gather(-1, torch.tensor(completion, device=device).unsqueeze(-1)).squeeze(-1).tolist()
        k = job.top_logprobs or 0
        top_values, top_ids = logps.topk(k, dim=-1) if k else (None, None)
        tokens = []
        for position, token_id in enumerate(completion):
            top = ()
            if k:
                pairs = zip(top_ids[position].tolist(), top_values[position].tolist(), strict=True)
                top = tuple((tokenizer.decode([i]), value) for i, value in pairs)
            tokens.append(TokenLogprob(tokenizer.decode([token_id]), chosen[position], top))
        return tuple(tokens)
