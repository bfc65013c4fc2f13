"""Reading rows from JSONL, CSV, TSV, Hugging Face datasets and bundled demo files.

Every row keeps where it came from (``file:line``) so that validation messages can point at it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtune.data.demo import DEMO_DIR
from medtune.errors import MedtuneError

DEMO_PREFIX = "demo:"
HF_PREFIX = "hf:"
FORMATS = ("jsonl", "csv", "tsv")
UTF8_BOM = b"\xef\xbb\xbf"
COLUMN_SAMPLE = 50  # rows whose keys make up the columns a file is checked against


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
    return list(iter_lines(path))


def iter_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 file, one at a time, as :func:`decode_lines` returns them.

    Lines end at "\n", "\r\n" or "\r"; the text after the last line break is the last line (empty
    when the file ends with one). A leading byte-order mark is dropped. Memory stays one line whatever
    the file's size.

    Raises:
        MedtuneError: invalid UTF-8, naming the line and byte offset and how to convert the file.
    """
    offset = 0  # bytes read before the current line
    number = 0  # "\n"-terminated lines read before the current one
    tail = ""
    with path.open("rb") as fh:
        for raw in fh:
            start = len(UTF8_BOM) if offset == 0 and raw.startswith(UTF8_BOM) else 0
            try:
                text = raw[start:].decode("utf-8")
            except UnicodeDecodeError as exc:
                at = start + exc.start
                raise MedtuneError(
                    f"{path}:{number + 1}: the file is not valid UTF-8 (byte 0x{raw[at]:02x} at "
                    f"offset {offset + at}). Re-save it as UTF-8, e.g. 'iconv -f latin1 -t utf-8'."
                ) from None
            offset, number = offset + len(raw), number + 1
            # Split on line breaks only: str.splitlines() also breaks at U+2028, form feeds etc., which
            # json.dumps(ensure_ascii=False) writes raw inside strings.
            *lines, tail = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            yield from lines
    yield tail


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
    return list(iter_rows(spec))


def iter_rows(spec: str) -> Iterator[Row]:
    """The records of a data source one at a time (see :func:`read_rows`), so memory does not grow
    with the file. The missing-file and format checks run at once; the rest as rows are read.

    Raises:
        MedtuneError: as :func:`read_rows`, each problem when its row is reached.
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
    if fmt == "jsonl":
        return _read_jsonl(path, iter_lines(path))
    return _read_delimited(path, iter_lines(path), "\t" if fmt == "tsv" else ",")


def _read_jsonl(path: Path, lines: Iterable[str]) -> Iterator[Row]:
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
        yield Row(record, f"{path}:{number}")


def _read_delimited(path: Path, lines: Iterable[str], delimiter: str) -> Iterator[Row]:
    """Rows of a CSV or TSV file, each with the line it starts on.

    Both are read with RFC 4180 quoting, strictly: a quoted cell may hold the delimiter, quotes
    (doubled) and line breaks, and a quote left open, or text after a closing quote, is an error at
    the line where that cell opened, never lines silently merged into one cell. TSV too, because
    pandas, Python's csv module and spreadsheets quote TSV cells that hold quotes: read without
    quote handling, their doubled quotes would become text.
    """
    feed = _LineFeed(lines)
    reader = csv.reader(feed, delimiter=delimiter, strict=True)
    header: list[str] | None = None
    start = 1  # the line the next record starts on
    while True:
        feed.first_non_blank = None
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise MedtuneError(
                f"{path}:{feed.first_non_blank or start}: a cell on this line opens a quote that is not closed "
                f"properly ({exc}), so the lines after it would be swallowed into one cell. A cell that starts "
                'with a quote must be quoted whole, each quote inside it doubled: "He said ""stop""." Fix that line.'
            ) from None
        first_line, start = feed.first_non_blank or start, feed.number + 1
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
        yield Row(dict(zip(header, cells + [None] * (len(header) - len(cells)), strict=True)), origin)
    if header is None:
        raise MedtuneError(f"{path}: the file is empty; expected a header row with column names.")


class _LineFeed:
    """Feeds lines to ``csv.reader`` one at a time, counting them and noting the first non-blank line
    of the record being read (where it really starts, for messages)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.number = 0
        self.first_non_blank: int | None = None

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.number += 1
        if self.first_non_blank is None and line.strip():
            self.first_non_blank = self.number
        return line + "\n"


def _read_hf(name: str) -> Iterator[Row]:
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
    return iter_dataset_rows(data, f"hf:{dataset}")


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
    """Every row of a ``datasets.Dataset`` (see :func:`iter_dataset_rows`)."""
    return list(iter_dataset_rows(data, origin_prefix))


def iter_dataset_rows(data, origin_prefix: str) -> Iterator[Row]:
    """Rows of a ``datasets.Dataset``, origins ``<origin_prefix>[<index>]``.

    A ``ClassLabel`` column stores class indices; each row holds the label's name instead (what the
    index means, e.g. MedMCQA's ``cop`` 0 -> ``"a"``), and ``Row.class_labels`` keeps the names in class
    order. A missing label (index -1) becomes None.
    """
    from datasets import ClassLabel

    labels = {column: feature for column, feature in data.features.items() if isinstance(feature, ClassLabel)}
    names = {column: list(feature.names) for column, feature in labels.items()}
    for index, record in enumerate(data):
        fields = dict(record)
        for column, feature in labels.items():
            value = fields.get(column)
            fields[column] = feature.int2str(value) if isinstance(value, int) and value >= 0 else None
        yield Row(fields, f"{origin_prefix}[{index}]", names)


def columns_of(rows: list[Row]) -> list[str]:
    """The column names seen in the first rows (``COLUMN_SAMPLE``), in order."""
    seen: dict[str, None] = {}
    for row in rows[:COLUMN_SAMPLE]:
        for key in row.fields:
            seen.setdefault(key, None)
    return list(seen)


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write records (a list, or a stream of them) as UTF-8 JSONL, atomically (a temporary file renamed
    into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL file written by medtune (no validation beyond JSON)."""
    return [row.fields for row in _read_jsonl(path, iter_lines(path))]
