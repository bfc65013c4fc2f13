"""Reading rows from JSONL, CSV, TSV, Hugging Face datasets and bundled demo files.

Every row keeps where it came from (``file:line``) so that validation messages can point at it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtune.data.demo import DEMO_DIR
from medtune.errors import MedtuneError

DEMO_PREFIX = "demo:"
HF_PREFIX = "hf:"
FORMATS = ("jsonl", "csv", "tsv")


@dataclass(frozen=True)
class Row:
    """One record with its origin, e.g. ``data.csv:12``."""

    fields: dict[str, Any]
    origin: str
    # Label names of the columns a Hugging Face dataset declares as ``ClassLabel``; their values in
    # ``fields`` are already the names (the class index is the name's position in this list).
    class_labels: dict[str, list[str]] = field(default_factory=dict)


def resolve_data_path(spec: str) -> Path:
    """Turn ``demo:<name>`` into the bundled file's path; other specs are plain paths."""
    if spec.startswith(DEMO_PREFIX):
        name = spec[len(DEMO_PREFIX) :]
        path = DEMO_DIR / name
        if not path.is_file():
            known = ", ".join(sorted(p.name for p in DEMO_DIR.iterdir() if p.suffix != ".py"))
            raise MedtuneError(f"No bundled demo file '{name}'. Bundled files: {known}.")
        return path
    return Path(spec).expanduser()


def _detect_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "json", "ndjson"):
        return "jsonl"
    if suffix in ("csv", "tsv"):
        return suffix
    raise MedtuneError(
        f"{path}: cannot tell the file format from the extension '.{suffix}'. "
        "Use .jsonl, .csv or .tsv (or 'hf:<dataset>[:split]' for a Hugging Face dataset)."
    )


def decode_lines(path: Path) -> list[str]:
    """Decode a file as UTF-8 into its lines, naming the first line with invalid bytes.

    Raises:
        MedtuneError: the file is not UTF-8 (with the line number and a way to convert it).
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_no = raw[: exc.start].count(b"\n") + 1
        raise MedtuneError(
            f"{path}:{line_no}: the file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
            f"offset {exc.start}). Re-save it as UTF-8, e.g. 'iconv -f latin1 -t utf-8'."
        ) from None
    # Split on newlines only: str.splitlines() also breaks at U+2028, form feeds etc., which
    # json.dumps(ensure_ascii=False) writes raw inside strings.
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


_decode_lines = decode_lines  # the earlier private name, for code written against it


def read_rows(spec: str) -> list[Row]:
    """Read every record of a data source.

    Args:
        spec: a path to ``.jsonl``/``.csv``/``.tsv``, ``demo:<file>`` for bundled data, or
            ``hf:<dataset>[:<split>]`` for a Hugging Face dataset (downloaded only when asked; a folder
            written by ``Dataset.save_to_disk`` also works). Class-label columns hold their label names.
    Returns:
        The rows in file order, each with its origin.
    Raises:
        MedtuneError: missing file, bad UTF-8, malformed JSON (with the line number).
    """
    if spec.startswith(HF_PREFIX):
        return _read_hf(spec[len(HF_PREFIX) :])
    path = resolve_data_path(spec)
    if path.is_dir():
        raise MedtuneError(
            f"{path} is a folder; expected one .jsonl, .csv or .tsv data file (a folder of .txt documents is "
            "read only as raw text: task pretrain and 'eval --task perplexity')."
        )
    if not path.is_file():
        raise MedtuneError(f"Data file not found: {path}. Check the path (relative to {Path.cwd()}).")
    fmt = _detect_format(path)
    lines = decode_lines(path)
    if fmt == "jsonl":
        return _read_jsonl(path, lines)
    return _read_delimited(path, lines, "\t" if fmt == "tsv" else ",")


def _read_jsonl(path: Path, lines: list[str]) -> list[Row]:
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MedtuneError(
                f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno}). "
                "Each line of a .jsonl file must be one JSON object."
            ) from None
        if not isinstance(record, dict):
            raise MedtuneError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}.")
        rows.append(Row(record, f"{path}:{number}"))
    return rows


def _read_delimited(path: Path, lines: list[str], delimiter: str) -> list[Row]:
    """Rows of a CSV or TSV file, each with the line it starts on.

    Both are read with RFC 4180 quoting, strictly: a quoted cell may hold the delimiter, quotes
    (doubled) and line breaks, and a quote left open, or text after a closing quote, is an error at
    the line where that cell opened, never lines silently merged into one cell. TSV too, because
    pandas, Python's csv module and spreadsheets quote TSV cells that hold quotes: read without
    quote handling, their doubled quotes would become text.
    """
    # One item per physical line, so reader.line_num counts lines.
    reader = csv.reader([line + "\n" for line in lines], delimiter=delimiter, strict=True)
    rows: list[Row] = []
    header: list[str] | None = None
    start = 1  # the line the next record starts on
    records = iter(reader)
    while True:
        try:
            cells = next(records)
        except StopIteration:
            break
        except csv.Error as exc:
            start = _first_non_blank(lines, start)
            raise MedtuneError(
                f"{path}:{start}: a cell on this line opens a quote that is not closed properly ({exc}), "
                "so the lines after it would be swallowed into one cell. A cell that starts with a quote "
                'must be quoted whole, each quote inside it doubled: "He said ""stop""." Fix that line.'
            ) from None
        first_line, start = _first_non_blank(lines, start), reader.line_num + 1
        if not cells:
            continue
        if header is None:
            header = cells
            continue
        origin = f"{path}:{first_line}"
        if len(cells) > len(header):
            raise MedtuneError(
                f"{origin}: more cells than header columns ({len(header)}). Quote cells that contain the delimiter."
            )
        rows.append(Row(dict(zip(header, cells + [None] * (len(header) - len(cells)), strict=True)), origin))
    if header is None:
        raise MedtuneError(f"{path}: the file is empty; expected a header row with column names.")
    return rows


def _first_non_blank(lines: list[str], number: int) -> int:
    """The first line from ``number`` on (1-based) that is not blank: where a record really starts."""
    while number <= len(lines) and not lines[number - 1].strip():
        number += 1
    return number


def _read_hf(name: str) -> list[Row]:
    dataset, _, split = name.partition(":")
    split = split or "train"
    try:
        data = _load_hf_dataset(dataset, split)
    except MedtuneError:
        raise
    except Exception as exc:  # datasets raises many types; the user needs the reason
        raise MedtuneError(
            f"Could not load the Hugging Face dataset '{dataset}' (split '{split}'): "
            f"{exc}. Hub datasets need network access or a local datasets cache."
        ) from None
    return rows_from_dataset(data, f"hf:{dataset}")


def _load_hf_dataset(dataset: str, split: str):
    """A hub dataset (or a local folder ``load_dataset`` reads), or a folder written by ``save_to_disk``."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    folder = Path(dataset).expanduser()
    if not (folder / "dataset_dict.json").is_file() and not (folder / "state.json").is_file():
        return load_dataset(dataset, split=split)
    saved = load_from_disk(str(folder))
    if not isinstance(saved, DatasetDict):
        return saved  # a single saved split is the data whatever split was named
    if split not in saved:
        raise MedtuneError(
            f"hf:{dataset}: no split '{split}'; the saved dataset has {', '.join(saved)}. "
            f"Name one as 'hf:{dataset}:<split>'."
        )
    return saved[split]


def rows_from_dataset(data, origin_prefix: str) -> list[Row]:
    """Rows of a ``datasets.Dataset``, origins ``<origin_prefix>[<index>]``.

    A ``ClassLabel`` column stores class indices; each row holds the label's name instead (what the
    index means, e.g. MedMCQA's ``cop`` 0 -> ``"a"``), and ``Row.class_labels`` keeps the names in class
    order. A missing label (index -1) becomes None.
    """
    from datasets import ClassLabel

    labels = {column: feature for column, feature in data.features.items() if isinstance(feature, ClassLabel)}
    names = {column: list(feature.names) for column, feature in labels.items()}
    rows = []
    for index, record in enumerate(data):
        fields = dict(record)
        for column, feature in labels.items():
            value = fields.get(column)
            fields[column] = feature.int2str(value) if isinstance(value, int) and value >= 0 else None
        rows.append(Row(fields, f"{origin_prefix}[{index}]", names))
    return rows


def columns_of(rows: list[Row]) -> list[str]:
    """The column names seen in the first rows, in order."""
    seen: dict[str, None] = {}
    for row in rows[:50]:
        for key in row.fields:
            seen.setdefault(key, None)
    return list(seen)


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Write records as UTF-8 JSONL, atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL file written by medtune (no validation beyond JSON)."""
    return [row.fields for row in _read_jsonl(path, decode_lines(path))]
