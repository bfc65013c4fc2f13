"""Translations made elsewhere (another MT system, an earlier medtune evaluation), joined to their data.

An outputs file has one row per translated sentence with an ``output`` column (JSONL, CSV or TSV;
a medtune ``outputs.jsonl`` qualifies). Rows join to the data by ``id`` when every row has one
(the data's own ``id``, or the stable hash medtune gives a pair without one), else by position:
row *i* translates row *i* of the data file, counted before validation drops any row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from medtune.data.ids import REPEAT_MARK, text_id
from medtune.data.io import Row, read_rows
from medtune.data.parallel import Pair
from medtune.errors import MedtuneError

_SHOWN = 5  # at most this many missing ids named in one message


def _own_id(row: Row) -> str | None:
    value = row.fields.get("id")
    return None if value is None or value == "" else str(value)


def _output(row: Row, path: str) -> str:
    if "output" not in row.fields:
        raise MedtuneError(
            f"{row.origin}: no 'output' column. Columns found: {', '.join(repr(c) for c in row.fields)}. "
            f"Each row of {path} must hold one translation in 'output' (and optionally its 'id')."
        )
    value = row.fields["output"]
    if not isinstance(value, str):
        raise MedtuneError(f"{row.origin}: 'output' must be text, got {value!r}.")
    return value


def _data_row_ids(raw_pairs: Sequence[Pair]) -> set[str]:
    """Ids of every data row, validated or not, as medtune gives them (own id, else hash of the source)."""
    ids = set()
    for pair in raw_pairs:
        if pair.id is not None:
            ids.add(pair.id)
        elif isinstance(pair.src, str):
            ids.add(text_id(pair.src.strip()))
    return ids


def _join_by_id(rows: list[Row], path: str, data: str, raw_pairs, pairs, ids, log) -> list[str]:
    by_id: dict[str, Row] = {}
    for row in rows:
        key = _own_id(row)
        if key in by_id:
            raise MedtuneError(
                f"{row.origin}: id {key!r} appears twice (also at {by_id[key].origin}); ids must be unique."
            )
        by_id[key] = row
    missing = [(pair, key) for pair, key in zip(pairs, ids, strict=True) if key not in by_id]
    if missing:
        named = "; ".join(f"{key!r} ({pair.origin})" for pair, key in missing[:_SHOWN])
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        raise MedtuneError(
            f"{path}: no output for {len(missing)} of the {len(pairs)} scored rows of {data}: id {named}{more}. "
            "Every scored row needs a translation with its id."
        )
    scored, known = set(ids), _data_row_ids(raw_pairs)
    dropped = 0
    for key, row in by_id.items():
        if key in scored:
            continue
        if key.split(REPEAT_MARK)[0] not in known:
            raise MedtuneError(
                f"{row.origin}: id {key!r} is not a row of {data}. Outputs must translate that file's rows; "
                "remove the row or fix its id."
            )
        dropped += 1
    if dropped:
        log(f"{path}: {dropped} output(s) translate rows of {data} that validation dropped; they are not scored.")
    return [_output(by_id[key], path) for key in ids]


def _join_by_line(rows: list[Row], path: str, data: str, raw_pairs, pairs) -> list[str]:
    if len(rows) != len(raw_pairs):
        raise MedtuneError(
            f"{path} has {len(rows)} rows but {data} has {len(raw_pairs)}. Without ids, row i of the outputs "
            "must translate row i of the data: give one output per data row, or an 'id' column in both files."
        )
    by_origin = {pair.origin: _output(row, path) for pair, row in zip(raw_pairs, rows, strict=True)}
    return [by_origin[pair.origin] for pair in pairs]


def join_system_outputs(
    path: str,
    data: str,
    raw_pairs: Sequence[Pair],
    pairs: Sequence[Pair],
    ids: Sequence[str],
    log: Callable[[str], Any] = print,
) -> list[str]:
    """The translation of each scored pair, read from an outputs file.

    Args:
        path: the outputs file (JSONL, CSV or TSV with an ``output`` column, optionally ``id``).
        data: the data file's name, for messages.
        raw_pairs: every row of the data as loaded (before validation), in file order.
        pairs: the validated pairs to score (each keeps its row's ``origin``).
        ids: the stable id of each scored pair (:func:`medtune.eval.translation.translation_ids`).
        log: receives a note when outputs of rows that validation dropped are ignored.
    Returns:
        One output per scored pair, in the order of ``pairs``.
    Raises:
        MedtuneError: an unreadable or empty file, a row without text in ``output``, ids on some
            rows only, a duplicate, missing or unknown id (named), or, joining by position, a
            row count different from the data's (both counts given).
    """
    rows = read_rows(path)
    if not rows:
        raise MedtuneError(f"{path}: no rows; expected one row per translated sentence with an 'output' column.")
    with_id = [_own_id(row) is not None for row in rows]
    if all(with_id):
        return _join_by_id(rows, path, data, raw_pairs, pairs, ids, log)
    if any(with_id):
        first = rows[with_id.index(False)]
        raise MedtuneError(
            f"{first.origin}: this row has no 'id' but others do. Give every row its id (joined by id) "
            "or none (joined by position)."
        )
    return _join_by_line(rows, path, data, raw_pairs, pairs)
