"""Validated pairs kept on disk while a corpus larger than memory is split.

The data stage reads a parallel corpus once, row by row: each kept pair goes to a scratch JSONL file
and memory keeps only its byte offset, its split group and a 16-byte digest of its source (about 40
bytes a pair, whatever the sentences' length). Splitting then works on row indices
(``data/split.py``), and the split files are written by reading the chosen pairs back by offset.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from medtune.data.digest import DIGEST_BYTES, text_digest
from medtune.data.parallel import Pair
from medtune.data.split import DocumentGroups
from medtune.data.validate import PairChecks, ValidationReport


class PairSpool:
    """Pairs appended to a scratch file (``path``, removed on ``close``), read back by index.

    Also records each pair's split group (``groups``) and source digest (``source_digest``).
    Use as a context manager so the scratch file goes even when validation fails.
    """

    def __init__(self, path: Path, by: str = "document") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.groups = DocumentGroups(by)
        self._file = path.open("w+b")
        self._offsets = array("q")
        self._sources = bytearray()

    def __enter__(self) -> PairSpool:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None):
        self.close()

    def __len__(self) -> int:
        return len(self._offsets)

    def append(self, pair: Pair) -> None:
        """Keep ``pair`` (already validated) as the next row."""
        self._file.seek(0, 2)
        self._offsets.append(self._file.tell())
        self._file.write(json.dumps(pair.to_record(), ensure_ascii=False).encode("utf-8") + b"\n")
        self.groups.add(pair.doc)
        self._sources += text_digest(pair.src)

    def source_digest(self, index: int) -> bytes:
        """The digest of row ``index``'s source sentence (as :func:`~medtune.data.digest.text_digest`)."""
        return bytes(self._sources[index * DIGEST_BYTES : (index + 1) * DIGEST_BYTES])

    def records(self, indices: Iterable[int]) -> Iterator[dict]:
        """The rows at ``indices``, in that order, as :meth:`Pair.to_record` dicts."""
        for index in indices:
            self._file.seek(self._offsets[index])
            yield json.loads(self._file.readline())

    def close(self) -> None:
        """Close and delete the scratch file."""
        self._file.close()
        self.path.unlink(missing_ok=True)


def spool_valid_pairs(
    pairs: Iterable[Pair], checks: PairChecks, spool: PairSpool, on_bad_rows: str
) -> ValidationReport:
    """Validate ``pairs`` one at a time into ``spool`` (the kept ones, stripped); return the report.

    Raises:
        MedtuneError: as :func:`~medtune.data.validate.validate_pairs` (``fail`` with a bad row, nothing kept).
    """
    for pair in pairs:
        kept = checks.check(pair)
        if kept is not None:
            spool.append(kept)
    return checks.finish(on_bad_rows)
