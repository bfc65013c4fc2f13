"""The one batched generation engine: length-sorted, padded batches; greedy, beam or seeded sampling.

``generate_texts`` is the translation path (greedy or beam, one line per prompt). ``sample_texts``
serves chat and free generation: temperature / top-p sampling where every prompt draws from its own
seeded generator, stopping at EOS, the chat template's end-of-turn token or a stop string.
``sample_sequences`` is the same decoding, returning each sequence's tokens and why it ended (the server).
"""

from __future__ import annotations

import hashlib
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from tqdm.auto import tqdm
from transformers import CompileConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from medtune.errors import MedtuneError


@dataclass
class GenerationStats:
    sequences: int = 0
    new_tokens: int = 0
    seconds: float = 0.0

    @property
    def sequences_per_s(self) -> float:
        return self.sequences / self.seconds if self.seconds else 0.0

    @property
    def new_tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class SamplingSettings:
    """How ``sample_texts`` decodes: ``temperature == 0`` is greedy; ``top_p`` keeps the smallest
    set of most likely tokens whose probability reaches it; extra ``stop_token_ids`` end a sequence
    like EOS does (e.g. a chat template's end-of-turn token); ``stop_strings`` end it too, and the
    text is cut before the first of them.

    Raises:
        MedtuneError: a value out of range, naming the option.
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop_token_ids: tuple[int, ...] = ()
    stop_strings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise MedtuneError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}.")
        if self.temperature < 0:
            raise MedtuneError(f"--temperature must be 0 (greedy) or more, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise MedtuneError(f"--top-p must be in (0, 1], got {self.top_p}; 1 keeps every token.")
        if any(not stop for stop in self.stop_strings):
            raise MedtuneError("A stop string must not be empty.")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def with_stop_tokens(self, ids: Sequence[int]) -> SamplingSettings:
        """The same settings, also stopping at ``ids`` (e.g. the chat template's end-of-turn tokens)."""
        return replace(self, stop_token_ids=tuple(sorted(set(self.stop_token_ids) | set(ids))))


CACHE_KINDS = ("dynamic", "static")


@dataclass(frozen=True)
class DecodingOptions:
    """How ``generate`` keeps its key/value cache, and whether its decoding step is compiled.

    ``cache="static"`` preallocates the cache for prompt + ``max_new_tokens`` (transformers'
    ``cache_implementation="static"``); ``compile`` runs each decoding step through ``torch.compile``
    (transformers' compile path, which needs the static cache; the first batch of each new shape pays
    the compilation). Outputs equal the default's (tests check greedy tokens). Both default off, as in
    transformers on CPU; the README's Benchmarks section has the figures that keep them off.

    Raises:
        MedtuneError: an unknown cache kind, or compile without the static cache (naming the options).
    """

    cache: str = "dynamic"
    compile: bool = False
    option_names: tuple[str, str] = ("generate.cache", "generate.compile")  # for messages: recipe keys or CLI options

    def __post_init__(self) -> None:
        cache_name, compile_name = self.option_names
        if self.cache not in CACHE_KINDS:
            raise MedtuneError(f"{cache_name} must be one of {', '.join(CACHE_KINDS)}; got {self.cache!r}.")
        if self.compile and self.cache != "static":
            raise MedtuneError(
                f"{compile_name} needs {cache_name} static (torch.compile of a decoding step needs a cache of "
                f"fixed shape); {cache_name} is {self.cache!r}. Set {cache_name} to static as well, or drop "
                f"{compile_name}."
            )

    def generate_kwargs(self) -> dict:
        """The ``model.generate`` arguments that select this cache and compilation."""
        if self.cache == "dynamic":
            return {}
        if not self.compile:
            return {
                "cache_implementation": "static",
                "disable_compile": True,
            }  # transformers compiles on GPU by default
        config = CompileConfig()
        config._compile_all_devices = True  # why: transformers compiles only on accelerators unless told
        return {"cache_implementation": "static", "compile_config": config}


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from a base seed and labels (e.g. a prompt id and a sample number).

    The same inputs give the same seed on every machine and Python run (no ``hash()`` salt).
    """
    text = "\x1f".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


NUCLEUS_SEARCH = 512  # tokens searched for the top-p nucleus before a row is sorted whole


class SeededSampler(LogitsProcessor):
    """Samples each row's next token from its own seeded generator, then forces that token.

    Why: ``generate(do_sample=True)`` draws the whole batch from one generator, so a prompt's output
    would depend on its batch neighbours; one generator per row makes it depend on (prompt, seed) only.
    The scores it returns are ``-inf`` except the chosen token, so greedy selection picks it.
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float, device: torch.device | str = "cpu"):
        if temperature <= 0:
            raise ValueError("SeededSampler needs temperature > 0; temperature 0 is greedy decoding.")
        self.temperature = temperature
        self.top_p = top_p
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        """The distribution each row samples from: softmax(scores / T), cut to the top-p nucleus, renormalised."""
        probs = self._nucleus(torch.softmax(scores.float() / self.temperature, dim=-1))
        return probs / probs.sum(dim=-1, keepdim=True)

    def _nucleus(self, probs: torch.Tensor) -> torch.Tensor:
        """``probs`` with every token outside the top-p nucleus set to 0 (not renormalised).

        The nucleus is the most likely tokens whose mass before them is below ``top_p``. Why not a full
        sort: sorting 262k-token rows cost 1.3 s per decoding step at batch 64 (more than the model);
        the nucleus of a trained model almost always lies in its top few hundred tokens, so the top
        ``NUCLEUS_SEARCH`` are found with ``topk`` and only a row whose nucleus reaches past them is
        sorted whole. The result is the same set (ties at the edge all stay).
        """
        if self.top_p >= 1:
            return probs
        k = min(NUCLEUS_SEARCH, probs.shape[-1])
        top = probs.topk(k, dim=-1).values  # descending
        inside = (top.cumsum(dim=-1) - top) < self.top_p  # the most likely token always stays
        overflow = inside[:, -1] & (k < probs.shape[-1])
        if overflow.any():  # the nucleus reaches past the top k: sort those rows whole
            full = probs[overflow].sort(dim=-1, descending=True).values
            full_inside = (full.cumsum(dim=-1) - full) < self.top_p
            floor_full = full.gather(1, (full_inside.sum(dim=-1, keepdim=True) - 1))
        floor = top.gather(1, (inside.sum(dim=-1, keepdim=True) - 1))  # the smallest probability kept
        if overflow.any():
            floor[overflow] = floor_full
        return torch.where(probs >= floor, probs, torch.zeros_like(probs))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.generators):
            raise ValueError(f"SeededSampler has {len(self.generators)} seeds for a batch of {scores.shape[0]} rows.")
        weights = self._nucleus(torch.softmax(scores.float() / self.temperature, dim=-1))
        # Inverse-CDF sampling: one uniform draw per row from the row's own generator, located in the
        # cumulative weights (vocabulary order; no renormalisation needed). torch.multinomial per row
        # scanned the whole vocabulary once per row and dominated the step.
        cdf = weights.cumsum(dim=-1)
        draws = torch.cat([torch.rand(1, generator=g, device=g.device) for g in self.generators])
        targets = (draws.to(cdf.device) * cdf[:, -1]).unsqueeze(-1)
        chosen = torch.searchsorted(cdf, targets, right=True).clamp_(max=cdf.shape[-1] - 1)
        forced = torch.full_like(scores, float("-inf"))
        return forced.scatter_(-1, chosen, 0.0)


class StopAtNewline(StoppingCriteria):
    """Marks a sequence finished once it has produced a token containing a line break."""

    def __init__(self, newline_ids: torch.Tensor, prompt_width: int):
        self.newline_ids = newline_ids
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        new = input_ids[:, self.prompt_width :]
        if new.shape[1] == 0:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if self.newline_ids.device != input_ids.device:  # moved once, on the first step of a GPU batch
            self.newline_ids = self.newline_ids.to(input_ids.device)
        return torch.isin(new, self.newline_ids).any(dim=1)


class StopAtStrings(StoppingCriteria):
    """Marks a sequence finished once its new text contains one of the stop strings.

    Why not transformers' ``stop_strings``: it rebuilds a vocabulary-wide table on every ``generate``
    call (1.4 s for Gemma's 262k tokens, per batch) and also matches a string that begins in the prompt.
    Only the last tokens are decoded each step: enough for a stop string that the newest token completes.
    """

    def __init__(self, tokenizer, stop_strings: Sequence[str], prompt_width: int):
        self.tokenizer = tokenizer
        self.stop_strings = tuple(stop_strings)
        self.prompt_width = prompt_width
        self.window = (
            max(len(stop) for stop in self.stop_strings) + 8
        )  # tokens; every token but a special one adds text

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        tails = input_ids[:, self.prompt_width :][:, -self.window :].tolist()
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        done = [any(stop in text for stop in self.stop_strings) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


_NEWLINE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def newline_token_ids(tokenizer) -> torch.Tensor:
    """Ids of every vocabulary entry whose text contains a line break (cached per tokenizer)."""
    key = tokenizer
    if key not in _NEWLINE_CACHE:
        vocab = tokenizer.get_vocab()
        ids = [i for tok, i in vocab.items() if "\n" in tokenizer.convert_tokens_to_string([tok])]
        _NEWLINE_CACHE[key] = torch.tensor(sorted(ids), dtype=torch.long)
    return _NEWLINE_CACHE[key]


def model_eos_ids(model) -> list[int]:
    """The ids ``generate`` already stops at, from the model's generation config."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


@dataclass(frozen=True)
class RawSequence:
    """One row's new tokens from ``_generate_batched``, cut before its first stop token."""

    token_ids: list[int]  # may hold padding (a finished row is padded while its batch goes on)
    generated: int  # tokens the model really produced for it, the stop token included
    hit_stop_token: bool


INDISTINCT_COSINE = 0.98  # output rows this close to a stop token's row cannot be told apart from it
_INDISTINCT_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def indistinct_copies(model, stop_ids: Sequence[int]) -> list[int]:
    """``stop_ids`` plus every token whose output-layer row is a near copy (cosine >= 0.98) of a stop token's.

    Why: a base model never trained on its chat template's end-of-turn token leaves that token's row
    among thousands of untrained ones (gemma-3-270m: <end_of_turn> has 6,021 rows within 0.98 cosine,
    <unusedN>, <0x01>, "stepToken", "slotBox", ...). With a tied, frozen output layer, chat fine-tuning
    can only raise that whole cluster, so a sampled reply ends with any of them (156 of 256 qa-rlaif
    candidates ran on past their answer). The model cannot tell them apart, so any of them ends the turn.
    A well-trained stop token (<eos>) has no such copies and the list stays as it was.
    """
    from medtune.models.adapters import unwrap_model

    if not stop_ids:
        return list(stop_ids)
    lm = unwrap_model(model)
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    if head is None or getattr(head, "weight", None) is None:
        return list(stop_ids)
    cache = _INDISTINCT_CACHE.setdefault(lm, {})
    key = tuple(stop_ids)
    if key not in cache:
        weight = head.weight.detach()
        found = set(stop_ids)
        for start in range(0, weight.shape[0], 65536):  # chunks: no float32 copy of the whole layer
            rows = weight[start : start + 65536].float()
            for stop in stop_ids:
                if stop < weight.shape[0]:
                    close = torch.nn.functional.cosine_similarity(rows, weight[stop].float()[None], dim=-1)
                    found.update((close >= INDISTINCT_COSINE).nonzero().flatten().add(start).tolist())
        cache[key] = sorted(found)
    return cache[key]


def _cut_at_stop(ids: list[int], stop_ids: set[int], pad_id: int | None) -> RawSequence:
    """The tokens before the first stop token, and how many tokens were really generated (stop included)."""
    for position, token in enumerate(ids):
        if token in stop_ids:
            kept = ids[:position]
            return RawSequence(kept, sum(t != pad_id for t in kept) + 1, True)
    return RawSequence(ids, sum(t != pad_id for t in ids), False)


def _generate_batched(
    model,
    tokenizer,
    prompts: Sequence[str],
    batch_size: int,
    batch_kwargs: Callable[[list[int], int], dict],
    stop_ids: Sequence[int],
    add_special_tokens: bool,
    progress: str | None,
    stats: GenerationStats | None,
    decoding: DecodingOptions,
) -> list[RawSequence]:
    """Run ``generate`` over length-sorted batches; returns each prompt's new token ids, cut at a stop id.

    ``batch_kwargs(indices, prompt_width)`` gives the per-batch ``generate`` arguments.
    """
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
    model.eval()
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    stop_set = set(stop_ids)
    new_ids: list[RawSequence] = [RawSequence([], 0, False) for _ in prompts]
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "right" if seq2seq else "left"
    started = time.perf_counter()
    bar = tqdm(total=len(prompts), desc=progress, unit="seq", disable=progress is None, dynamic_ncols=True)
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=add_special_tokens
            ).to(model.device)
            width = enc["input_ids"].shape[1]
            kwargs = batch_kwargs(idx, width) | decoding.generate_kwargs()
            generated = model.generate(**enc, pad_token_id=tokenizer.pad_token_id, **kwargs)
            new = generated if seq2seq else generated[:, width:]
            for row, i in enumerate(idx):
                new_ids[i] = _cut_at_stop(new[row].tolist(), stop_set, tokenizer.pad_token_id)
                if stats is not None:
                    stats.new_tokens += new_ids[i].generated
            bar.update(len(idx))
    finally:
        tokenizer.padding_side = old_side
        bar.close()
    if stats is not None:
        stats.sequences += len(prompts)
        stats.seconds += time.perf_counter() - started
    return new_ids


@torch.no_grad()
def generate_texts(
    model,
    tokenizer,
    prompts: list[str],
    batch_size: int = 16,
    max_new_tokens: int | list[int] = 160,
    num_beams: int = 1,
    stop_at_newline: bool = True,
    progress: str | None = "translate",
    stats: GenerationStats | None = None,
    decoding: DecodingOptions = DecodingOptions(),
) -> list[str]:
    """Generate one continuation per prompt, in the prompts' order.

    Prompts are sorted by length so each batch pads little; causal models are left-padded.
    Greedy when ``num_beams == 1``. For causal LMs the output is cut at the first line break.
    ``max_new_tokens`` may be one limit per prompt: a batch then stops at its largest limit, so one
    runaway sequence cannot keep a whole batch decoding to a global maximum. ``decoding`` picks the
    cache and compilation (same outputs, other speed).
    """
    limits = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(prompts)
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))

    def batch_kwargs(idx: list[int], width: int) -> dict:
        kwargs = dict(max_new_tokens=max(limits[i] for i in idx), num_beams=num_beams, do_sample=False)
        if not seq2seq and stop_at_newline:
            kwargs["stopping_criteria"] = StoppingCriteriaList([StopAtNewline(newline_token_ids(tokenizer), width)])
        return kwargs

    new_ids = _generate_batched(
        model, tokenizer, prompts, batch_size, batch_kwargs, model_eos_ids(model), True, progress, stats, decoding
    )
    # A batch decodes to its largest limit; each text keeps only its own (greedy tokens do not
    # depend on how long the batch runs, so this equals decoding the prompt alone with its limit).
    texts = [
        tokenizer.decode(seq.token_ids[:limit], skip_special_tokens=True)
        for seq, limit in zip(new_ids, limits, strict=True)
    ]
    return [text.split("\n", 1)[0].strip() if stop_at_newline else text.strip() for text in texts]


@dataclass(frozen=True)
class GeneratedSequence:
    """One continuation from :func:`sample_sequences`."""

    text: str  # the new text, cut before the first stop token or stop string, special tokens removed
    token_ids: tuple[int, ...]  # the new tokens before the first stop token (a stop string may end inside them)
    generated: int  # tokens the model produced for it, a stop token included (what it cost)
    stopped: bool  # ended at a stop token or stop string; False: it reached ``max_new_tokens``


def cut_at_stop_string(text: str, stop_strings: Sequence[str]) -> tuple[str, bool]:
    """``text`` before the earliest occurrence of any stop string, and whether one occurred."""
    cuts = [position for position in (text.find(stop) for stop in stop_strings) if position >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


@torch.no_grad()
def sample_sequences(
    model,
    tokenizer,
    prompts: Sequence[str],
    settings: SamplingSettings,
    seeds: Sequence[int] | None = None,
    batch_size: int = 8,
    add_special_tokens: bool = False,
    progress: str | None = None,
    stats: GenerationStats | None = None,
    streamer=None,
    decoding: DecodingOptions = DecodingOptions(),
) -> list[GeneratedSequence]:
    """Generate one continuation per prompt, in the prompts' order, greedy or sampled.

    Args:
        prompts: full prompt texts (for chat: rendered with the chat template, which writes BOS itself,
            hence ``add_special_tokens=False`` by default; a seq2seq source needs ``True`` for its EOS).
        settings: length, temperature, top-p, extra stop tokens and stop strings.
        seeds: one seed per prompt (required when sampling). A prompt's output depends only on the
            prompt and its seed, not on the batch it lands in; repeat a prompt with several seeds to
            get several samples.
        streamer: a transformers streamer for a single prompt (chat); it sees every new token.
        decoding: the cache and compilation (same outputs, other speed).
    Returns:
        Each prompt's text (cut before the first EOS / stop token / stop string, special tokens removed),
        its tokens, how many tokens were generated and whether it stopped before the length limit.
    Raises:
        ValueError: missing or mismatched seeds when sampling, or a streamer with more than one prompt.
    """
    if not settings.greedy and (seeds is None or len(seeds) != len(prompts)):
        raise ValueError(f"Sampling needs one seed per prompt: {len(prompts)} prompts, {len(seeds or [])} seeds.")
    if streamer is not None and len(prompts) != 1:
        raise ValueError("A streamer follows one sequence; pass exactly one prompt with it.")
    stop_ids = indistinct_copies(model, sorted(set(model_eos_ids(model)) | set(settings.stop_token_ids)))
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))

    def batch_kwargs(idx: list[int], width: int) -> dict:
        kwargs = dict(max_new_tokens=settings.max_new_tokens, do_sample=False, num_beams=1, streamer=streamer)
        if stop_ids:
            kwargs["eos_token_id"] = stop_ids
        if settings.stop_strings:  # ends a row early; the text is cut below
            stop = StopAtStrings(tokenizer, settings.stop_strings, 0 if seq2seq else width)
            kwargs["stopping_criteria"] = StoppingCriteriaList([stop])
        if not settings.greedy:
            sampler = SeededSampler([seeds[i] for i in idx], settings.temperature, settings.top_p, model.device)
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        return kwargs

    raw = _generate_batched(
        model, tokenizer, prompts, batch_size, batch_kwargs, stop_ids, add_special_tokens, progress, stats, decoding
    )
    sequences = []
    for seq in raw:
        ids = tuple(t for t in seq.token_ids if t != tokenizer.pad_token_id)
        text, hit_stop_string = cut_at_stop_string(
            tokenizer.decode(ids, skip_special_tokens=True), settings.stop_strings
        )
        sequences.append(GeneratedSequence(text, ids, seq.generated, seq.hit_stop_token or hit_stop_string))
    return sequences


def sample_texts(
    model,
    tokenizer,
    prompts: Sequence[str],
    settings: SamplingSettings,
    seeds: Sequence[int] | None = None,
    batch_size: int = 8,
    add_special_tokens: bool = False,
    progress: str | None = None,
    stats: GenerationStats | None = None,
    streamer=None,
    decoding: DecodingOptions = DecodingOptions(),
) -> list[str]:
    """Generate one reply per prompt, in the prompts' order, greedy or sampled: the texts of
    :func:`sample_sequences` (same arguments, same errors).
    """
    sequences = sample_sequences(
        model, tokenizer, prompts, settings, seeds, batch_size, add_special_tokens, progress, stats, streamer, decoding
    )
    return [seq.text for seq in sequences]
