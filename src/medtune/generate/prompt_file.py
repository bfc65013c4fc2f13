"""Answer every prompt of a file with a model: batched, reproducible and resumable.

Input rows hold a ``prompt`` string (sent as one user turn through the chat template, or as raw text
with ``chat=False``) or a ``messages`` list (a conversation; a trailing assistant turn is treated as
the reference answer, left out of the prompt and copied to the output). Each answered prompt becomes
one JSONL row: ``id``, ``prompt`` or ``messages``, ``outputs`` (all samples), ``output`` (the first),
``params`` (and ``reference`` when there was one).

Answers are appended and flushed batch by batch, so an interrupted run loses at most one batch; a
re-run skips the ids already answered (a half-written last line is cut off first) and, once every
prompt is answered, puts the file in input order, so it ends identical to an uninterrupted run.
Reproducible: sample ``k`` of a prompt is drawn with a seed derived from ``(seed, id, k)``, so it
does not depend on batch size, batch neighbours, resuming or the number of processes.

Under a launcher (``torchrun``, ``accelerate launch``) each process answers its ``item_shard`` of the
prompts not yet answered; after every batch the processes' answers are gathered in rank order and the
main process alone appends and syncs them, so the file holds exactly what all processes finished and a
re-run (with any number of processes) resumes from it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tqdm.auto import tqdm

from medtune.data.chat_template import ensure_chat_template, render_chat_prompt, stop_token_ids
from medtune.data.io import Row, columns_of, read_rows, resolve_data_path, write_jsonl
from medtune.errors import MedtuneError
from medtune.generate.engine import DecodingOptions, GenerationStats, SamplingSettings, derive_seed, sample_texts
from medtune.sharding import gather_in_order, gather_rounds, main_process_first

ROLES = ("system", "user", "assistant")
ANSWER_KEYS = ("id", "outputs", "output", "params")  # every answer row medtune writes has these
ROW_START = b'{"id": '  # how json.dumps begins every answer row: recognises a row cut off mid-write


@dataclass(frozen=True)
class PromptRow:
    """One prompt to answer; ``id`` is the file's id value, or the row number when there is no id column."""

    id: Any
    origin: str
    prompt: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    reference: str | None = None

    @property
    def key(self) -> str:
        return str(self.id)


@dataclass
class PromptFileSummary:
    prompts: int
    skipped: int
    generated: int
    new_tokens: int
    seconds: float
    repaired_partial_line: bool

    @property
    def new_tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0


def read_prompt_rows(spec: str, prompt_col: str = "prompt", id_col: str = "id") -> list[PromptRow]:
    """Read the prompts to answer.

    Args:
        spec: a ``.jsonl``/``.csv``/``.tsv`` path or ``demo:<file>`` (see :func:`medtune.data.io.read_rows`).
        prompt_col: the column holding a prompt string; rows without it need a ``messages`` list
            (in CSV/TSV a JSON-encoded list).
        id_col: the column identifying a row; when no row has it, the 1-based row number is the id.
    Returns:
        The rows in file order.
    Raises:
        MedtuneError: an empty file, a row with neither a prompt nor messages, malformed messages,
            a missing or repeated id (each naming ``file:line``).
    """
    rows = read_rows(spec)
    if not rows:
        raise MedtuneError(f"{spec}: no rows to answer; expected one prompt per line.")
    has_ids = any(id_col in row.fields for row in rows)
    prompts: list[PromptRow] = []
    first_seen: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        row_id = _row_id(row, id_col) if has_ids else number
        prompt_row = _prompt_row(row, row_id, prompt_col, columns_of(rows))
        if prompt_row.key in first_seen:
            raise MedtuneError(
                f"{row.origin}: id {row_id!r} was already used at {first_seen[prompt_row.key]}. "
                f"Ids in column '{id_col}' must be unique (answers are matched to prompts by id when resuming)."
            )
        first_seen[prompt_row.key] = row.origin
        prompts.append(prompt_row)
    return prompts


def _row_id(row: Row, id_col: str) -> Any:
    value = row.fields.get(id_col)
    if value is None or value == "" or isinstance(value, (dict, list)):
        raise MedtuneError(
            f"{row.origin}: missing or unusable id in column '{id_col}' (got {value!r}); other rows have one. "
            "Give every row a unique string or number id, or choose the column with --id-col."
        )
    return value


def _prompt_row(row: Row, row_id: Any, prompt_col: str, columns: list[str]) -> PromptRow:
    prompt = row.fields.get(prompt_col)
    if isinstance(prompt, str) and prompt.strip():
        return PromptRow(row_id, row.origin, prompt=prompt)
    if "messages" in row.fields:
        messages, reference = _parse_messages(row)
        return PromptRow(row_id, row.origin, messages=messages, reference=reference)
    raise MedtuneError(
        f"{row.origin}: no prompt: expected a non-empty '{prompt_col}' string or a 'messages' list; "
        f"columns found: {', '.join(sorted(row.fields)) or '(none)'} (file columns: {', '.join(columns)}). "
        "Choose the prompt column with --prompt-col."
    )


def _parse_messages(row: Row) -> tuple[tuple[dict[str, str], ...], str | None]:
    """Validate a messages list; split off a trailing assistant turn as the reference answer."""
    messages = row.fields["messages"]
    if isinstance(messages, str):  # CSV/TSV cells hold the list as JSON text
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError:
            raise MedtuneError(f"{row.origin}: 'messages' is text but not a JSON list of turns.") from None
    expected = 'a list like [{"role": "user", "content": "..."}] with roles system, user, assistant'
    if not isinstance(messages, list) or not messages:
        raise MedtuneError(f"{row.origin}: 'messages' must be {expected}; got {type(messages).__name__}.")
    for position, turn in enumerate(messages):
        if not (isinstance(turn, dict) and turn.get("role") in ROLES and isinstance(turn.get("content"), str)):
            raise MedtuneError(f"{row.origin}: messages[{position}] is {turn!r}; each turn must be {expected}.")
    turns = [{"role": t["role"], "content": t["content"]} for t in messages]
    reference = turns.pop()["content"] if turns[-1]["role"] == "assistant" else None
    if not turns or turns[-1]["role"] != "user":
        raise MedtuneError(
            f"{row.origin}: the conversation must end with a user turn to answer (one trailing assistant "
            "turn is taken as the reference answer)."
        )
    return tuple(turns), reference


def render_prompt(tokenizer, row: PromptRow, system: str | None, chat: bool) -> str:
    """The text the model continues: the chat-template rendering (with the generation prompt), or
    the raw prompt when ``chat`` is off. ``system`` is added to conversations that have none.

    Raises:
        MedtuneError: ``chat`` off for a row with messages.
    """
    if not chat:
        if row.prompt is None:
            raise MedtuneError(f"{row.origin}: a 'messages' row needs the chat template; drop --no-chat.")
        return row.prompt
    turns = list(row.messages) if row.messages else [{"role": "user", "content": row.prompt}]
    if system and turns[0]["role"] != "system":
        turns.insert(0, {"role": "system", "content": system})
    return render_chat_prompt(tokenizer, turns, add_generation_prompt=True)


def read_answers(out: Path) -> tuple[list[dict[str, Any]], bytes]:
    """The answer rows already in ``out``, read without changing the file.

    ``out`` may be missing or empty, or hold rows written by :func:`generate_prompt_file` (each a JSON
    object with ``id``, ``outputs``, ``output`` and ``params``), possibly ending in a half-written row
    (a crash mid-write). Anything else is someone's own file and is refused.

    Returns:
        The complete rows, and the bytes of a half-written last row (``b""`` when there is none).
    Raises:
        MedtuneError: ``out`` is a folder, or a file medtune did not write (naming its first line
            that is not an answer row).
    """
    if out.is_dir():
        raise MedtuneError(f"--out {out} is a folder; give a file for the answers, e.g. {out / 'answers.jsonl'}.")
    if not out.is_file():
        return [], b""
    lines = out.read_bytes().split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a line break
    answers = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = _parse_answer(line)
        if record is None:
            raise _not_an_answers_file(out, number)
        answers.append(record)
    if not tail.strip():
        return answers, b""
    record = _parse_answer(tail)
    if record is not None:  # a complete row that only lost its line break
        return [*answers, record], b""
    if not _is_cut_off_row(tail):
        raise _not_an_answers_file(out, len(lines) + 1)
    return answers, tail


def _not_an_answers_file(out: Path, number: int) -> MedtuneError:
    return MedtuneError(
        f"{out}:{number}: not an answer row written by 'medtune generate' (a JSON object with "
        f"{', '.join(ANSWER_KEYS)}), so {out} is not a medtune answers file. medtune only resumes answers "
        "files it wrote and leaves this one untouched: choose another --out, or move the file away."
    )


def _parse_answer(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or not all(key in record for key in ANSWER_KEYS):
        return None
    return record if isinstance(record["params"], dict) else None


def _is_cut_off_row(tail: bytes) -> bool:
    """The start of an answer row cut off mid-write: begins like every row medtune writes, not valid JSON."""
    if not (tail.startswith(ROW_START) or ROW_START.startswith(tail)):
        return False
    try:
        json.loads(tail.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return True
    return False  # a complete JSON value, just not an answer row


def repair_and_read_answers(out: Path) -> tuple[list[dict[str, Any]], bool]:
    """The answer rows already in ``out``; a half-written last row (a crash mid-write) is cut off the file.

    Returns:
        The rows, and whether a half-written last row was removed.
    Raises:
        MedtuneError: what :func:`read_answers` raises, before the file is touched.
    """
    answers, cut_off = read_answers(out)
    if not out.is_file() or out.stat().st_size == 0:
        return answers, False
    with out.open("r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        if cut_off:
            fh.truncate(fh.tell() + 1 - len(cut_off))  # that row is generated again by this run
        elif fh.read(1) != b"\n":
            fh.write(b"\n")  # the last row is complete; only its line break was lost
    return answers, bool(cut_off)


def _check_same_params(out: Path, answers: list[dict[str, Any]], params: dict[str, Any]) -> None:
    for record in answers:
        old = record.get("params", {})
        changed = [key for key in params if old.get(key) != params[key]]
        if changed:
            was = ", ".join(f"{k}={old.get(k)!r}" for k in changed)
            now = ", ".join(f"{k}={params[k]!r}" for k in changed)
            raise MedtuneError(
                f"{out} already holds answers made with {was}; this run asks for {now}. Resuming would mix "
                "settings: rerun with the same settings, or write to another --out."
            )


def check_answers_path(data: str, out: Path) -> None:
    """Refuse an answers file that medtune may not write to, before any model is loaded.

    Raises:
        MedtuneError: ``out`` is the prompts file itself (answers are appended to it), a folder, or
            an existing file that medtune did not write (see :func:`read_answers`).
    """
    if not data.startswith("hf:") and resolve_data_path(data).resolve() == out.resolve():
        raise MedtuneError(f"--out {out} is the prompts file itself; choose another file for the answers.")
    read_answers(out)


class GenerationInterrupted(MedtuneError):
    """Ctrl-C during generation, after the answers so far were saved."""


def generate_prompt_file(
    model,
    tokenizer,
    rows: list[PromptRow],
    out: Path,
    settings: SamplingSettings,
    model_name: str = "",
    system: str | None = None,
    chat: bool = True,
    num_return_sequences: int = 1,
    seed: int = 42,
    batch_size: int = 8,
    log: Callable[[str], None] = print,
    progress: bool = True,
    decoding: DecodingOptions = DecodingOptions(),
) -> PromptFileSummary:
    """Answer every prompt into the JSONL file ``out``, resuming where a previous run stopped.

    Args:
        model, tokenizer: the model to generate with (causal LM for ``chat``).
        rows: the prompts, from :func:`read_prompt_rows` (whose input order the finished file follows).
        out: the answers file; existing answers with the same settings are kept and skipped.
        settings: length, temperature (0 = greedy), top-p; end-of-turn tokens are added to its stops.
        model_name: recorded in each row's ``params``.
        num_return_sequences: answers per prompt (``outputs``); 1 or more.
        seed: base of the per-(prompt, sample) seeds.
        batch_size: prompts per batch (each batch decodes ``batch_size * num_return_sequences`` sequences).
        log: receives progress messages (skipped count, repaired line).
        decoding: the cache and compilation (same answers, other speed; not part of ``params``).
    Returns:
        Counts and speed of this run.
    Raises:
        MedtuneError: bad options, bad rows (naming ``file:line``), ``out`` written with other settings.
        GenerationInterrupted: Ctrl-C; every batch finished before it is saved.
    """
    if num_return_sequences < 1:
        raise MedtuneError(f"--num-return-sequences must be at least 1, got {num_return_sequences}.")
    if batch_size < 1:
        raise MedtuneError(f"--batch-size must be at least 1, got {batch_size}.")
    if chat:
        _prepare_chat(model, tokenizer)
        settings = settings.with_stop_tokens(stop_token_ids(tokenizer))
    params = {
        "model": model_name,
        "chat": chat,
        "system": system,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_new_tokens": settings.max_new_tokens,
        "num_return_sequences": num_return_sequences,
        "seed": seed,
    }
    texts = {row.key: render_prompt(tokenizer, row, system, chat) for row in rows}
    with main_process_first() as is_main:  # the main process repairs the file; the others then read it
        if is_main:
            answers, repaired = repair_and_read_answers(out)
        else:
            answers, repaired = read_answers(out)[0], False
    if repaired:
        log(f"{out}: removed a half-written last line (an interrupted run); that prompt is answered again.")
    _check_same_params(out, answers, params)
    done = {str(record["id"]) for record in answers}
    pending = [row for row in rows if row.key not in done]
    skipped = len(rows) - len(pending)
    if skipped and is_main:
        log(f"Skipping {skipped} of {len(rows)} prompts already answered in {out}.")
    lengths = {row.key: len(tokenizer(texts[row.key], add_special_tokens=not chat)["input_ids"]) for row in pending}
    pending.sort(key=lambda row: -lengths[row.key])  # similar lengths per batch: little padding
    stats = GenerationStats()
    if is_main:
        out.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(
        total=len(pending), desc="generate", unit="prompt", disable=not (progress and is_main), dynamic_ncols=True
    )

    def answer(batch: list[PromptRow]) -> list[dict[str, Any]]:
        return _answer_batch(
            model, tokenizer, batch, texts, settings, params, num_return_sequences, seed, chat, stats, decoding
        )

    try:
        with _append_if(is_main, out) as fh:
            for records in gather_rounds(pending, batch_size, answer):
                if fh is not None:
                    fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
                    fh.flush()
                    os.fsync(fh.fileno())  # a crash after this point cannot lose the batch
                answers.extend(records)
                bar.update(len(records))
    except KeyboardInterrupt:
        saved = sum(str(record["id"]) in texts for record in read_answers(out)[0])  # the file is the truth
        raise GenerationInterrupted(
            f"Interrupted: {saved} of {len(rows)} prompts have their answers saved in {out}; run the same "
            "command again to answer the rest (answered prompts are skipped)."
        ) from None
    finally:
        bar.close()
    new_tokens, seconds = _totals_over_processes(stats)
    with main_process_first() as is_main:  # the others return only once the file is final
        if is_main:
            _write_in_input_order(out, answers, rows)
    return PromptFileSummary(len(rows), skipped, len(pending), new_tokens, seconds, repaired)


@contextmanager
def _append_if(is_main: bool, out: Path) -> Iterator[TextIO | None]:
    """``out`` opened for appending on the main process; ``None`` on the others (they never write)."""
    if not is_main:
        yield None
        return
    with out.open("a", encoding="utf-8") as fh:
        yield fh


def _totals_over_processes(stats: GenerationStats) -> tuple[int, float]:
    """New tokens summed over the processes, and the slowest process's generation time."""
    shares = gather_in_order([(stats.new_tokens, stats.seconds)])
    return sum(tokens for tokens, _ in shares), max(seconds for _, seconds in shares)


def _prepare_chat(model, tokenizer) -> None:
    if getattr(model.config, "is_encoder_decoder", False):
        raise MedtuneError(
            "The chat template needs a causal (decoder-only) model; this is an encoder-decoder model. "
            "Pass --no-chat to send each prompt as raw text."
        )
    try:
        ensure_chat_template(tokenizer)
    except MedtuneError as exc:
        raise MedtuneError(f"{exc} Or pass --no-chat to send each prompt as raw text.") from None


def _answer_batch(
    model,
    tokenizer,
    batch: list[PromptRow],
    texts: dict[str, str],
    settings: SamplingSettings,
    params: dict[str, Any],
    num_return_sequences: int,
    seed: int,
    chat: bool,
    stats: GenerationStats,
    decoding: DecodingOptions,
) -> list[dict[str, Any]]:
    """Generate ``num_return_sequences`` answers for each row of one batch; returns the output rows."""
    n = num_return_sequences
    prompts = [texts[row.key] for row in batch for _ in range(n)]
    seeds = [derive_seed(seed, row.key, k) for row in batch for k in range(n)]
    outputs = sample_texts(
        model,
        tokenizer,
        prompts,
        settings,
        seeds,
        batch_size=len(prompts),
        add_special_tokens=not chat,
        stats=stats,
        decoding=decoding,
    )
    records = []
    for position, row in enumerate(batch):
        samples = [text.strip() for text in outputs[position * n : (position + 1) * n]]
        record: dict[str, Any] = {"id": row.id}
        if row.messages is not None:
            record["messages"] = list(row.messages)
        else:
            record["prompt"] = row.prompt
        if row.reference is not None:
            record["reference"] = row.reference
        record.update(outputs=samples, output=samples[0], params=params)
        records.append(record)
    return records


def _write_in_input_order(out: Path, answers: list[dict[str, Any]], rows: list[PromptRow]) -> None:
    """Rewrite ``out`` with the input's answers in input order, then any answers to ids not in this input."""
    position = {row.key: i for i, row in enumerate(rows)}
    ordered = sorted(answers, key=lambda r: position.get(str(r["id"]), len(rows)))  # stable: extras keep order
    if [r["id"] for r in ordered] != [r["id"] for r in answers]:
        write_jsonl(out, ordered)
