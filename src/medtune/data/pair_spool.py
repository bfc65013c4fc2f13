"""Validated translation pairs kept on disk while a corpus larger than memory is split.

Each kept pair goes to a scratch file (``data/spool.py``); memory keeps its byte offset, its split
group and a 16-byte digest of its source (about 40 bytes a pair, whatever the sentences' length).
Splitting works on row indices (``data/split.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from medtune.data.digest import text_digest
from medtune.data.parallel import Pair
from medtune.data.split import DocumentGroups
from medtune.data.spool import RecordSpool
from medtune.data.validate import PairChecks, ValidationReport


class PairSpool(RecordSpool):
    """Pairs kept on disk, with each pair's split group (``groups``) and source digest (``source_digest``)."""

    def __init__(self, path: Path, by: str = "document") -> None:
        super().__init__(path)
        self.groups = DocumentGroups(by)

    def append_pair(self, pair: Pair) -> None:
        """Keep ``pair`` (already validated) as the next row."""
        self.append(pair.to_record(), text_digest(pair.src))
        self.groups.add(pair.doc)

    def source_digest(self, index: int) -> bytes:
        """The digest of row ``index``'s source sentence (as :func:`~medtune.data.digest.text_digest`)."""
        return self.digest(index)


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
            spool.append_pair(kept)
    return checks.finish(on_bad_rows)
