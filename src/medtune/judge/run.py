"""Judge a list of items into a JSONL file, resumably: the function the judge stage and ``medtune judge`` call.

Under a launcher (``torchrun``, ``accelerate launch``) each process judges its ``item_shard`` of the
items still to judge; every round's judgments are gathered in item order and appended by the main
process alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from medtune.errors import MedtuneError
from medtune.judge.base import Judge, JudgeItem, Judgment
from medtune.judge.cache import JsonlLog, judgment_key
from medtune.sharding import gather_rounds, main_process_first

DEFAULT_BATCH_SIZE = 16


def judge_file(
    judge: Judge,
    items: Sequence[JudgeItem],
    out_path: Path,
    progress: str | None = "judge",
    log=print,
    batch_size: int | None = None,
) -> list[Judgment]:
    """Judge ``items`` into ``out_path`` (JSONL), writing each batch's judgments as soon as they exist.

    Each row is a :class:`Judgment` record plus ``key`` (see :func:`judgment_key`). A re-run reads the
    file and judges only the items without a row; an item whose judged content equals an already
    judged one (same prompt, answer, references and judge) reuses that judgment without asking the
    judge again. Rows that no longer match any item (a changed judge or changed items) are dropped.
    Failed judgments (no parseable score) are kept and not retried on a re-run.

    Args:
        judge: any :class:`Judge`; its ``batch_size`` attribute, when it has one, sets the batch size.
        items: the answers to judge; ids must be unique.
        out_path: the JSONL file (created with its folder when missing).
        progress: a progress-bar label, or ``None`` for no bar.
        batch_size: items per ``judge.score`` call (and per durable write).
    Returns:
        One judgment per item, in the items' order.
    Raises:
        MedtuneError: duplicate item ids, or a judge returning the wrong number of judgments; the
            judge's own errors (e.g. an unreachable endpoint) pass through, with every finished batch kept.
    """
    _check_unique_ids(items)
    fingerprint = judge.fingerprint()
    keys = [judgment_key(item, fingerprint) for item in items]
    wanted = {(item.id, key) for item, key in zip(items, keys, strict=True)}
    with main_process_first() as is_main:  # the main process repairs and prunes the file; the others then read it
        store = JsonlLog(out_path)
        kept = [r for r in store.records if (str(r.get("id")), r.get("key")) in wanted]
        if len(kept) != len(store.records):
            log(
                f"{out_path}: dropping {len(store.records) - len(kept)} judgment(s) made by another judge or of "
                "changed items."
            )
            store.rewrite(kept)
    done: dict[str, Judgment] = {str(r["id"]): Judgment.from_record(r) for r in kept}
    rows_by_id = {str(r["id"]): r for r in kept}  # each item's row as written, for the final order
    by_key: dict[str, Judgment] = {r["key"]: done[str(r["id"])] for r in kept}

    reused, todo = [], []
    for item, key in zip(items, keys, strict=True):
        if item.id in done:
            continue
        if key in by_key:  # the same content under another id: a cache hit
            judgment = _with_id(by_key[key], item.id)
            done[item.id] = judgment
            reused.append({**judgment.to_record(), "key": key})
            rows_by_id[item.id] = reused[-1]
        else:
            todo.append((item, key))
    if is_main:
        store.append(reused)
        if len(done) and todo:
            log(f"{out_path}: {len(done)} of {len(items)} judgments already there; judging the other {len(todo)}.")

    def score(batch: list[tuple[JudgeItem, str]]) -> list[tuple[str, str, Judgment]]:
        judgments = judge.score([item for item, _ in batch])
        if len(judgments) != len(batch):
            raise MedtuneError(
                f"Judge '{judge.name}' returned {len(judgments)} judgments for {len(batch)} items; "
                "a judge must return exactly one per item."
            )
        return [(item.id, key, _with_id(j, item.id)) for (item, key), j in zip(batch, judgments, strict=True)]

    size = batch_size or getattr(judge, "batch_size", DEFAULT_BATCH_SIZE)
    bar = tqdm(total=len(todo), desc=progress, disable=progress is None or not todo or not is_main, unit="item")
    try:
        for scored in gather_rounds(todo, size, score):  # every process's batch, in item order
            rows = []
            for item_id, key, judgment in scored:
                done[item_id] = judgment
                by_key[key] = judgment
                rows.append({**judgment.to_record(), "key": key})
                rows_by_id[item_id] = rows[-1]
            if is_main:
                store.append(rows)
            bar.update(len(scored))
    finally:
        bar.close()
    with main_process_first() as is_main:  # the others return once the file is final
        ordered = [rows_by_id[item.id] for item in items]
        if is_main and [str(r["id"]) for r in JsonlLog(out_path).records] != [str(r["id"]) for r in ordered]:
            store.rewrite(ordered)  # appends came in another order (cache hits first, resumes, processes)
    return [done[item.id] for item in items]


def _with_id(judgment: Judgment, item_id: str) -> Judgment:
    if judgment.id == item_id:
        return judgment
    return Judgment(
        item_id, judgment.score, dict(judgment.criteria), judgment.rationale, judgment.failed, judgment.flags
    )


def _check_unique_ids(items: Sequence[JudgeItem]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise MedtuneError(f"Two items to judge share the id '{item.id}'; give every row a unique id.")
        seen.add(item.id)
