"""Records kept on disk while a corpus larger than memory is validated and split.

A data stage reads its source once, row by row, and appends each kept record to a scratch JSONL file;
memory keeps only the record's byte offset and, when given, a 16-byte digest (of a source sentence, of a
document). The split is planned on row indices, and the split files are written by reading the chosen
records back by offset.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from medtune.data.digest import DIGEST_BYTES


class RecordSpool:
    """Records appended to a scratch file (``path``, removed on ``close``), read back by index.

    Use as a context manager so the scratch file goes even when validation fails.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("w+b")
        self._offsets = array("q")
        self._digests = bytearray()

    def __enter__(self):
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None):
        self.close()

    def __len__(self) -> int:
        return len(self._offsets)

    def append(self, record: dict, digest: bytes = b"") -> None:
        """Keep ``record`` as the next row, with its ``digest`` (give one for every row, or none)."""
        self._file.seek(0, 2)
        self._offsets.append(self._file.tell())
        self._file.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        self._digests += digest

    def digest(self, index: int) -> bytes:
        """The digest given with row ``index``."""
        return bytes(self._digests[index * DIGEST_BYTES : (index + 1) * DIGEST_BYTES])

    def records(self, indices: Iterable[int]) -> Iterator[dict]:
        """The rows at ``indices``, in that order."""
        for index in indices:
            self._file.seek(self._offsets[index])
            yield json.loads(self._file.readline())

    def close(self) -> None:
        """Close and delete the scratch file."""
        self._file.close()
        self.path.unlink(missing_ok=True)
