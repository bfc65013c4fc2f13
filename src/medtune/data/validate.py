"""Validation of parallel text before training: every problem is located and counted, never silent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, field

from medtune.data.digest import text_digest
from medtune.data.parallel import Pair
from medtune.errors import MedtuneError

CHECKS = {
    "empty": "empty or non-string source/target",
    "duplicate": "exact duplicate of an earlier pair",
    "identical": "target identical to source",
    "length_ratio": "extreme source/target length ratio",
    "test_overlap": "source sentence also in the test set",
    # Conversations, multiple-choice questions and documents (chat.py, mcq.py, text.py).
    "malformed": "row layout cannot be read",
    "duplicate_row": "exact duplicate of an earlier row",
    "unknown_role": "message role is not system, user or assistant",
    "empty_message": "empty or non-string message content",
    "system_position": "system message is not the first message",
    "turn_order": "roles do not alternate user/assistant starting with user",
    "no_assistant": "no assistant turn",
    "too_few_options": "fewer than 2 options",
    "empty_question": "empty or non-string question",
    "empty_option": "empty or non-string option text",
    "bad_answer": "answer is not one of the options",
    "empty_text": "empty or non-string text",
    # Preference pairs (preference.py).
    "empty_field": "missing or empty field",
    "same_answers": "chosen identical to rejected",
    "bad_score": "score is not a number",
}


@dataclass
class Issue:
    origin: str
    check: str
    detail: str

    def __str__(self) -> str:
        return f"{self.origin}: {CHECKS[self.check]} ({self.detail})"


@dataclass
class ValidationReport:
    """What validation found in one data set."""

    name: str
    total: int = 0
    kept: int = 0
    issues: list[Issue] = field(default_factory=list)
    unit: str = "rows"  # what the summary counts: "pairs", "conversations", "questions", ...

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(issue.check for issue in self.issues))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "total": self.total,
            "kept": self.kept,
            "dropped": self.total - self.kept,
            "counts": self.counts,
            "issues": [{"origin": i.origin, "check": i.check, "detail": i.detail} for i in self.issues],
        }

    def summary(self) -> str:
        if not self.issues:
            return f"{self.name}: {self.total} {self.unit}, all valid"
        parts = ", ".join(f"{n} {CHECKS[c]}" for c, n in self.counts.items())
        return f"{self.name}: {self.total} {self.unit}, {self.total - self.kept} dropped ({parts})"


def left_after(report: ValidationReport | None) -> str:
    """For 'too few rows' errors: ', left after validation (train: 50 pairs, 49 dropped (...))', or ''."""
    return f", left after validation ({report.summary()})" if report is not None and report.issues else ""


def _problem(pair: Pair, max_ratio: float, min_chars: int) -> tuple[str, str] | None:
    for side, value in (("source", pair.src), ("target", pair.tgt)):
        if not isinstance(value, str) or not value.strip():
            return "empty", f"{side} is {value!r}"
    src, tgt = pair.src.strip(), pair.tgt.strip()
    if src == tgt:
        return "identical", f"{src[:40]!r}"
    longer, shorter = max(len(src), len(tgt)), min(len(src), len(tgt))
    if longer >= min_chars and longer / max(shorter, 1) > max_ratio:
        return "length_ratio", f"{len(src)} vs {len(tgt)} characters, limit {max_ratio}x"
    return None


def validate_pairs(
    pairs: list[Pair],
    name: str,
    on_bad_rows: str = "skip",
    max_length_ratio: float = 3.0,
    min_chars_for_ratio: int = 12,
    exclude_sources: Container[str] | None = None,
) -> tuple[list[Pair], ValidationReport]:
    """Check pairs and drop (``skip``) or refuse (``fail``) the bad ones.

    Args:
        pairs: pairs as loaded.
        name: label for messages, e.g. ``train``.
        on_bad_rows: ``skip`` drops bad rows and reports them; ``fail`` raises on the first batch.
        max_length_ratio: longest/shortest character length allowed between source and target.
        min_chars_for_ratio: pairs shorter than this are not ratio-checked (``OK`` vs ``De acuerdo``).
        exclude_sources: source sentences of the test set (a set of strings, or
            :class:`~medtune.data.digest.TextDigests` for large sets); training pairs sharing one are dropped.
    Returns:
        The kept pairs (whitespace-stripped) and a report.
    Raises:
        MedtuneError: with ``fail`` and any problem, or when nothing is left.
    """
    checks = PairChecks(name, max_length_ratio, min_chars_for_ratio, exclude_sources)
    kept = [pair for pair in map(checks.check, pairs) if pair is not None]
    return kept, checks.finish(on_bad_rows)


class PairChecks:
    """:func:`validate_pairs` one pair at a time, for corpora read as a stream: ``check`` each pair in
    order, then ``finish``. Holds a 16-byte digest per kept pair, never the pairs."""

    def __init__(
        self,
        name: str,
        max_length_ratio: float = 3.0,
        min_chars_for_ratio: int = 12,
        exclude_sources: Container[str] | None = None,
    ) -> None:
        self.report = ValidationReport(name=name, unit="pairs")
        self._limits = (max_length_ratio, min_chars_for_ratio)
        self._exclude = exclude_sources
        self._seen: set[bytes] = set()  # digests, not the pairs: memory grows with the row count, not the text
        self._kept = 0

    def check(self, pair: Pair) -> Pair | None:
        """The pair whitespace-stripped, or None when it is dropped (the problem goes into the report)."""
        self.report.total += 1
        problem = _problem(pair, *self._limits)
        if problem is None:
            src, tgt = pair.src.strip(), pair.tgt.strip()
            key = text_digest(src, tgt)
            if key in self._seen:
                problem = ("duplicate", f"{src[:40]!r}")
            elif self._exclude is not None and src in self._exclude:
                problem = ("test_overlap", f"{src[:40]!r}")
            else:
                self._seen.add(key)
        if problem:
            self.report.issues.append(Issue(pair.origin, *problem))
            return None
        self._kept += 1
        return Pair(src, tgt, pair.doc, pair.origin, pair.id)

    def finish(self, on_bad_rows: str) -> ValidationReport:
        """The report, once every pair was checked, after the ``data.on_bad_rows`` policy.

        Raises:
            MedtuneError: as :func:`enforce_bad_row_policy`.
        """
        enforce_bad_row_policy(self.report, self._kept, on_bad_rows)
        return self.report


def enforce_bad_row_policy(report: ValidationReport, kept: int, on_bad_rows: str) -> None:
    """Record how many rows were kept and apply the ``data.on_bad_rows`` policy.

    Args:
        report: the report whose ``issues`` are filled in; ``kept`` is set here.
        kept: how many rows passed validation.
        on_bad_rows: ``skip`` accepts the report as it is; ``fail`` refuses any issue.
    Raises:
        MedtuneError: with ``fail`` and any issue (listing the first five), or when no row is kept.
    """
    report.kept = kept
    if report.issues and on_bad_rows == "fail":
        listed = "; ".join(str(i) for i in report.issues[:5])
        more = f" and {len(report.issues) - 5} more" if len(report.issues) > 5 else ""
        raise MedtuneError(
            f"Data set '{report.name}' has {len(report.issues)} bad row(s): {listed}{more}. "
            "Fix them, or set data.on_bad_rows=skip to drop them with a report."
        )
    if not kept:
        raise MedtuneError(
            f"Data set '{report.name}' is empty after validation ({report.summary()}). "
            "Check the column names and the file contents."
        )
