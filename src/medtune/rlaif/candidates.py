"""Candidate answers for preference data: ``n`` seeded samples per prompt, from the local policy or an endpoint.

Every candidate depends only on (prompt, seed, sample index): the local policy samples each one with
its own generator seeded by ``derive_seed(seed, prompt_id, k)``, so batching never changes a text;
an OpenAI-compatible endpoint is asked once per prompt for ``n`` samples with a per-prompt seed.
Rows are appended to ``candidates.jsonl`` a batch of prompts at a time, so an interrupted run loses
only the batch in flight and a re-run generates only the prompts not yet complete in the file.
Under a launcher (``torchrun``, ``accelerate launch``) each process samples its ``item_shard`` of the
prompts still to do; each round's rows are gathered in rank order and appended by the main process
alone, and the finished file is put in prompt order, so it equals a single process's.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from medtune.data.ids import text_id
from medtune.data.io import write_jsonl
from medtune.data.prompts import translation_prompt
from medtune.errors import MedtuneError
from medtune.generate.engine import DecodingOptions, SamplingSettings, derive_seed
from medtune.rlaif.dedupe import mark_duplicates
from medtune.rlaif.prompt_items import PromptItem
from medtune.sharding import gather_in_order, gather_rounds, main_process_first

if TYPE_CHECKING:
    from medtune.endpoint import Endpoint
    from medtune.models.loading import LoadedModel

TASKS = ("qa", "chat", "translation")
ROW_KEYS = ("id", "prompt_id", "sample", "text")

__all__ = ["CandidateStats", "PromptItem", "candidate_id", "generate_candidates", "read_candidates"]


@dataclass
class CandidateStats:
    """What a generation produced: counts over the whole file, speed over this call's new candidates.

    ``resumed_prompts`` were already complete in the file; ``generated`` candidates were sampled now,
    in ``seconds``.
    """

    prompts: int = 0
    candidates: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    prompts_with_fewer_than_two_distinct: int = 0
    resumed_prompts: int = 0
    generated: int = 0
    seconds: float = 0.0

    @property
    def candidates_per_s(self) -> float:
        return self.generated / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {"candidates_per_s": self.candidates_per_s}


def candidate_id(prompt_id: str, sample: int, seed: int) -> str:
    """The stable id of sample ``sample`` of a prompt under ``seed`` (a short hash; the same on every machine)."""
    return text_id(prompt_id, str(sample), str(seed))


def generate_candidates(
    prompts: Sequence[PromptItem],
    out_path: Path,
    *,
    n: int = 4,
    temperature: float = 0.7,
    top_p: float = 0.95,
    max_new_tokens: int = 256,
    seed: int = 42,
    task: str = "qa",
    loaded: LoadedModel | None = None,
    endpoint: Endpoint | None = None,
    batch_size: int = 16,
    src_lang: str = "en",
    tgt_lang: str = "es",
    progress: str | None = "generate",
    log: Callable[[str], Any] = print,
    decoding: DecodingOptions = DecodingOptions(),
) -> CandidateStats:
    """Write ``n`` candidates per prompt to ``out_path`` (JSONL), resuming what an earlier call wrote.

    Args:
        prompts: the prompts, with unique ids. qa/chat: chat messages (a text is one user turn);
            translation: the source sentence.
        out_path: ``candidates.jsonl``; rows hold ``id``, ``prompt_id``, ``prompt``, ``sample``, ``text``,
            ``duplicate_of`` (the id of the earlier candidate it repeats, exactly or nearly, else null),
            ``duplicate_kind`` (``exact``, ``near`` or null; only exact duplicates are left out of pairs), ``gold``, ``reference`` and ``key_points``.
        n, temperature, top_p, max_new_tokens, seed: sampling; ``temperature`` 0 is greedy (n equal texts).
        task: ``qa`` or ``chat`` (rendered with the chat template, stopped at end of turn) or
            ``translation`` (causal: medtune's translation prompt, cut at the first line break;
            seq2seq: the source sentence itself).
        loaded: the local policy; or ``endpoint``: an OpenAI-compatible server (exactly one of them).
        batch_size: local: sequences per forward pass; endpoint: prompts in flight between two writes.
        src_lang, tgt_lang: the translation prompt's languages.
        progress: the progress bar's label (None: no bar).
        decoding: the local policy's cache and compilation (same texts, other speed).
    Returns:
        :class:`CandidateStats` over every prompt in the file.
    Raises:
        MedtuneError: bad settings, repeated prompt ids, an ``out_path`` written by another run (other
            prompts or seed) or unreadable, or an endpoint error.
    """
    settings = _check_settings(prompts, n, temperature, top_p, max_new_tokens, task, loaded, endpoint)
    if settings.greedy and n > 1:
        log(f"Temperature 0 is greedy decoding: the {n} candidates of each prompt will be identical.")
    by_id = {p.id: p for p in prompts}
    with main_process_first() as is_main:  # the main process repairs the file; the others then read it
        done = _resume(out_path, by_id, n, seed, log if is_main else _quiet)
    todo = [p for p in prompts if p.id not in done]
    stats = CandidateStats(resumed_prompts=len(done))
    if done and is_main:
        log(
            f"{out_path}: {len(done)} of {len(prompts)} prompts already have their {n} candidates; generating the rest."
        )
    if todo:
        if loaded is not None:
            sampler = _local_sampler(loaded, task, settings, n, seed, batch_size, src_lang, tgt_lang, decoding)
            per_chunk = max(1, batch_size // n)
        else:
            sampler = _endpoint_sampler(endpoint, task, settings, n, seed, src_lang, tgt_lang)
            per_chunk = batch_size
        if is_main:
            out_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()

        def candidate_rows(chunk: list[PromptItem]) -> list[list[dict]]:
            return [_rows(item, texts, seed) for item, texts in zip(chunk, sampler(chunk), strict=True)]

        bar = tqdm(total=len(todo), desc=progress, unit="prompt", disable=progress is None or not is_main)
        with bar:
            for groups in gather_rounds(todo, per_chunk, candidate_rows):  # each prompt's n rows, in prompt order
                if is_main:
                    _append(out_path, [row for rows in groups for row in rows])
                done.update((rows[0]["prompt_id"], rows) for rows in groups)
                bar.update(len(groups))
        stats.seconds = max(gather_in_order([time.perf_counter() - started]))
        stats.generated = len(todo) * n
    with main_process_first() as is_main:  # the others return once the file is final
        if is_main:
            _write_in_prompt_order(out_path, [done[p.id] for p in prompts])
    _count(stats, [done[p.id] for p in prompts])
    (log if is_main else _quiet)(
        f"candidates: {stats.candidates} for {stats.prompts} prompts ({stats.exact_duplicates} exact and "
        f"{stats.near_duplicates} near duplicates; {stats.prompts_with_fewer_than_two_distinct} prompts with fewer "
        f"than two distinct); {stats.generated} new at {stats.candidates_per_s:.2f}/s"
    )
    return stats


def _quiet(message: str) -> None:
    """The log of the processes other than the main one: it alone reports."""


def _write_in_prompt_order(path: Path, groups: list[list[dict]]) -> None:
    """Rewrite ``path`` with every prompt's rows in the prompts' order, when its appends left another order.

    Why: a resumed run, or several processes gathering per round, append prompts out of order; the
    finished file is then the same whatever the interruptions or the number of processes.
    """
    ordered = [row for rows in groups for row in rows]
    if ordered and [row["id"] for row in _read_rows(path)[0]] != [row["id"] for row in ordered]:
        write_jsonl(path, ordered)


def read_candidates(path: Path) -> list[dict]:
    """The rows of a candidates file, in file order.

    Raises:
        MedtuneError: the file is missing, a line is not JSON, or a row lacks a candidate field (naming the line).
    """
    rows, cut = _read_rows(path)
    if cut:
        raise MedtuneError(
            f"{path}:{len(rows) + 1}: the last line is cut off (an interrupted write); re-run generation."
        )
    return rows


def _check_settings(prompts, n, temperature, top_p, max_new_tokens, task, loaded, endpoint) -> SamplingSettings:
    if (loaded is None) == (endpoint is None):
        raise ValueError("generate_candidates needs exactly one of loaded (a local policy) or endpoint.")
    if task not in TASKS:
        raise MedtuneError(f"Unknown task {task!r} for candidate generation; expected one of {', '.join(TASKS)}.")
    if n < 1:
        raise MedtuneError(f"generate.n must be at least 1 candidate per prompt, got {n}.")
    seen: set[str] = set()
    for item in prompts:
        if item.id in seen:
            raise MedtuneError(f"Prompt id {item.id!r} appears twice; every prompt needs its own id.")
        seen.add(item.id)
    if loaded is not None and loaded.is_seq2seq and task != "translation":
        raise MedtuneError(f"A seq2seq model ({loaded.ref.name}) writes translations only; use task translation.")
    return SamplingSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)


def _rows(item: PromptItem, texts: Sequence[str], seed: int) -> list[dict]:
    ids = [candidate_id(item.id, k, seed) for k in range(len(texts))]
    marks = mark_duplicates(texts)
    return [
        {
            "id": ids[k],
            "prompt_id": item.id,
            "prompt": item.prompt,
            "sample": k,
            "text": text,
            "duplicate_of": None if marks[k] is None else ids[marks[k].of],
            "duplicate_kind": None if marks[k] is None else marks[k].kind,
            "gold": item.gold,
            "reference": item.reference,
            "key_points": list(item.key_points),
        }
        for k, text in enumerate(texts)
    ]


def _append(path: Path, rows: list[dict]) -> None:
    """Append rows as JSON lines and push them to disk, so a kill after this loses none of them."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        fh.flush()
        os.fsync(fh.fileno())


def _count(stats: CandidateStats, groups: list[list[dict]]) -> None:
    stats.prompts = len(groups)
    for rows in groups:
        marks = mark_duplicates([r["text"] for r in rows])
        stats.candidates += len(rows)
        stats.exact_duplicates += sum(m is not None and m.kind == "exact" for m in marks)
        stats.near_duplicates += sum(m is not None and m.kind == "near" for m in marks)
        stats.prompts_with_fewer_than_two_distinct += sum(m is None or m.kind == "near" for m in marks) < 2


def _read_rows(path: Path) -> tuple[list[dict], bool]:
    """The complete rows of a candidates file, and whether a cut-off last line (an interrupted append) was left out."""
    if not path.is_file():
        raise MedtuneError(f"{path}: no candidates file there; generate candidates first.")
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    cut = lines[-1] != ""  # every complete row ends with a newline
    rows = []
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MedtuneError(
                f"{path}:{number}: not a JSON line ({exc.msg}); this is not a candidates file."
            ) from None
        missing = [k for k in ROW_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise MedtuneError(
                f"{path}:{number}: no {', '.join(missing)} field; this is not a candidates file written by medtune. "
                "Choose another output path."
            )
        rows.append(row)
    return rows, cut


def _resume(path: Path, prompts: dict[str, PromptItem], n: int, seed: int, log) -> dict[str, list[dict]]:
    """The complete prompts already in ``path`` (prompt id -> its rows by sample).

    Rows of prompts left incomplete by an interruption (and a cut-off last line) are removed from the
    file, so those prompts are generated again in full.

    Raises:
        MedtuneError: a row whose prompt is not among ``prompts``, or whose id shows another seed or n.
    """
    if not path.exists():
        return {}
    rows, cut = _read_rows(path)
    groups: dict[str, dict[int, dict]] = {}
    for number, row in enumerate(rows, start=1):
        prompt_id, sample = str(row["prompt_id"]), row["sample"]
        if prompt_id not in prompts:
            raise MedtuneError(
                f"{path}: holds candidates for prompt {prompt_id!r}, which is not among the prompts of this run, so "
                "it was written by another run. Move it away (or choose another output path) to start over."
            )
        if not isinstance(sample, int) or not 0 <= sample < n or row["id"] != candidate_id(prompt_id, sample, seed):
            raise MedtuneError(
                f"{path}: row {number} (candidate {row['id']!r}, sample {sample!r} of prompt {prompt_id!r}) was written "
                f"with another seed or more candidates per prompt than this run's seed {seed} and n {n}. Move the "
                "file away (or choose another output path) to start over."
            )
        groups.setdefault(prompt_id, {})[sample] = row
    done = {pid: [by_sample[k] for k in range(n)] for pid, by_sample in groups.items() if len(by_sample) == n}
    if cut or len(done) < len(groups):
        kept = [row for pid in prompts if pid in done for row in done[pid]]
        log(
            f"{path}: removing {len(rows) - len(kept)} candidate rows of {len(groups) - len(done)} prompt(s) left "
            f"incomplete{' and a cut-off last line' if cut else ''} by an interrupted run; they are generated again."
        )
        write_jsonl(path, kept)
    return done


def _local_sampler(loaded, task, settings, n, seed, batch_size, src_lang, tgt_lang, decoding):
    """A function from prompt items to their ``n`` texts each, sampled by the local policy in batches."""
    from medtune.data.chat_template import render_chat_prompt, stop_token_ids
    from medtune.generate.engine import sample_texts

    tokenizer = loaded.tokenizer
    translation = task == "translation"
    if not translation:
        settings = settings.with_stop_tokens(stop_token_ids(tokenizer))
    elif not loaded.is_seq2seq:
        settings = replace(settings, stop_strings=("\n",))  # a causal translation is one line, as in generate_texts

    def prompt_text(item: PromptItem) -> str:
        if translation:
            source = _source(item)
            return source if loaded.is_seq2seq else translation_prompt(source, src_lang, tgt_lang)
        return render_chat_prompt(tokenizer, _messages(item))

    def sample(items: Sequence[PromptItem]) -> list[list[str]]:
        texts = [prompt_text(item) for item in items for _ in range(n)]
        seeds = [derive_seed(seed, item.id, k) for item in items for k in range(n)]
        # Translation prompts are plain text (BOS / end-of-source added by the tokenizer); chat
        # templates write BOS themselves.
        out = sample_texts(
            loaded.model,
            tokenizer,
            texts,
            settings,
            seeds=seeds,
            batch_size=batch_size,
            add_special_tokens=translation,
            decoding=decoding,
        )
        return [[t.strip() for t in out[i * n : (i + 1) * n]] for i in range(len(items))]

    return sample


def _endpoint_sampler(endpoint, task, settings, n, seed, src_lang, tgt_lang):
    """A function from prompt items to their ``n`` texts each, asked of an endpoint concurrently (one request per prompt)."""
    options = dict(n=n, temperature=settings.temperature, top_p=settings.top_p, max_tokens=settings.max_new_tokens)

    def ask(item: PromptItem) -> list[str]:
        per_prompt = derive_seed(seed, item.id)
        if task == "translation":
            prompt = translation_prompt(_source(item), src_lang, tgt_lang)
            texts = endpoint.complete(prompt, seed=per_prompt, stop=["\n"], **options)
            texts = [t.split("\n", 1)[0] for t in texts]
        else:
            texts = endpoint.chat(_messages(item), seed=per_prompt, **options)
        return [t.strip() for t in texts]

    return lambda items: endpoint.map(ask, items)


def _messages(item: PromptItem) -> list[dict]:
    return item.prompt if isinstance(item.prompt, list) else [{"role": "user", "content": item.prompt}]


def _source(item: PromptItem) -> str:
    if not isinstance(item.prompt, str):
        raise MedtuneError(f"Prompt {item.id!r} is a conversation; translation candidates need the source sentence.")
    return item.prompt
