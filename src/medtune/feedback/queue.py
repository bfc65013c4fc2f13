"""Fill the feedback store: translate a file's sources with a model and queue the outputs for reviewers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtune.data.io import columns_of, read_rows
from medtune.data.parallel import Pair
from medtune.errors import MedtuneError
from medtune.eval.translation import translate_pairs
from medtune.feedback.store import FeedbackStore, NewItem, item_id
from medtune.models.loading import LoadedModel, ModelRef


def translate_sources(
    loaded: LoadedModel, sources: Sequence[str], *, batch_size: int = 16, max_new_tokens: int = 128, log=print
) -> list[str]:
    """Translate sentences zero-shot and greedily, as ``medtune eval --task translation`` does.

    A causal model gets medtune's translation prompt (``English: <source>\\nSpanish:``); a translation
    (seq2seq) model gets the bare source. Returns one translation per source, in order.
    """
    if not sources:
        return []
    log(f"Translating {len(sources)} sentence(s) with {loaded.ref.name} (zero-shot, greedy).")
    pairs = [Pair(src=source, tgt="") for source in sources]
    return translate_pairs(loaded, pairs, batch_size=batch_size, max_new_tokens=max_new_tokens, label="queue")


def model_version(ref: ModelRef) -> str:
    """What tells two versions of a model with the same name apart: the content hash of its local folder.

    A training output hashes its adapter (or full weights) folder, whose ``medtune_model.json`` names
    the base; a hub id has no local folder and gives ``""``.
    """
    # The one content hash medtune uses for inputs (files and folders), as run fingerprints do.
    from medtune.pipeline.fingerprint import hash_input

    folder = ref.adapter_path or Path(ref.base_path)
    if not folder.is_dir():
        return ""
    return "sha256:" + str(hash_input(str(folder)))[:16]


def read_queue_rows(spec: str, src_col: str, ref_col: str | None, id_col: str | None) -> list[dict[str, Any]]:
    """The rows of a data file to translate, checked: each has a non-empty source text.

    Args:
        spec: any file medtune's data loader reads (.jsonl/.csv/.tsv, ``demo:``, ``hf:``).
        src_col: the source column (required).
        ref_col, id_col: the reference and id columns, used when the file has them.
    Returns:
        The rows' fields, in file order.
    Raises:
        MedtuneError: unreadable file, a missing source column (listing those found), or a row whose
            source is empty or not text (naming its file and line).
    """
    rows = read_rows(spec)
    if not rows:
        raise MedtuneError(f"{spec}: no rows found; expected a column '{src_col}' of sentences to translate.")
    found = columns_of(rows)
    if src_col not in found:
        raise MedtuneError(
            f"{spec}: no source column {src_col!r}. Columns found: {', '.join(repr(c) for c in found)}. "
            "Name it with --src-col."
        )
    for row in rows:
        value = row.fields.get(src_col)
        if not isinstance(value, str) or not value.strip():
            raise MedtuneError(
                f"{row.origin}: column {src_col!r} is empty or not text ({value!r}); every row needs a "
                "sentence to translate. Fix or remove that row."
            )
        reference = row.fields.get(ref_col) if ref_col else None
        if reference is not None and not isinstance(reference, str):
            raise MedtuneError(f"{row.origin}: column {ref_col!r} holds {reference!r}; expected the reference text.")
    return [row.fields for row in rows]


@dataclass(frozen=True)
class QueueResult:
    """What :func:`queue_translations` did: items added, items already there, and every row's item id."""

    added: int
    present: int
    item_ids: tuple[str, ...]


def queue_translations(
    store: FeedbackStore,
    project: str,
    loaded: LoadedModel,
    rows: Sequence[dict],
    *,
    src_col: str = "en",
    ref_col: str | None = "es",
    id_col: str | None = "id",
    model_id: str,
    model_version: str = "",
    reviewers_per_item: int | None = 1,
    batch_size: int = 16,
    max_new_tokens: int = 128,
    chunk_size: int = 256,
    log=print,
) -> QueueResult:
    """Translate the rows' sources and add them to ``project`` as items for review.

    Sources this model version already queued in the project are not translated again, so queueing
    the same file twice adds nothing the second time. The reference (``ref_col``) and the row's own
    id (``id_col``) are kept with the item when present and non-empty.

    Args:
        reviewers_per_item: different reviewers each item needs; None keeps an existing project's setting
            (a new project gets 1).
        chunk_size: rows translated and saved together; an interrupted run keeps the chunks it saved.
    Returns:
        the items added, those already present, and the ids of the rows' items in row order (an item
        queued earlier with the same translation keeps its id, whatever model version queued it).
    Raises:
        MedtuneError: a row without a source text (naming its position).
    """
    for number, row in enumerate(rows, start=1):
        if not isinstance(row.get(src_col), str) or not row[src_col].strip():
            raise MedtuneError(f"Row {number}: column {src_col!r} is empty or not text; expected a sentence.")
    store.create_project(project, reviewers_per_item=reviewers_per_item)
    queued = {
        item.source: item.id
        for item in store.items(project)
        if (item.model_id, item.model_version) == (model_id, model_version)
    }
    fresh = [row for row in rows if row[src_col] not in queued]
    translated: dict[str, str] = {}  # a source repeated in the file is translated once
    added = present = 0
    # Saved chunk by chunk (one transaction each): an interrupted queue keeps what it translated, and the
    # next run skips those sources.
    for start in range(0, len(fresh), chunk_size):
        chunk = fresh[start : start + chunk_size]
        sources = [s for s in dict.fromkeys(row[src_col] for row in chunk) if s not in translated]
        outputs = translate_sources(loaded, sources, batch_size=batch_size, max_new_tokens=max_new_tokens, log=log)
        translated.update(zip(sources, outputs, strict=True))
        items = [
            NewItem(
                source=row[src_col],
                translation=translated[row[src_col]],
                model_id=model_id,
                model_version=model_version,
                reference=_cell(row, ref_col),
                external_id=_cell(row, id_col),
            )
            for row in chunk
        ]
        chunk_added, chunk_present = store.add_items(project, items)
        added, present = added + chunk_added, present + chunk_present
    ids = tuple(
        queued.get(row[src_col]) or item_id(project, row[src_col], translated[row[src_col]], model_id) for row in rows
    )
    return QueueResult(added, present + len(rows) - len(fresh), ids)


def _cell(row: dict, column: str | None) -> str | None:
    value = row.get(column) if column else None
    return None if value is None or str(value).strip() == "" else str(value)
