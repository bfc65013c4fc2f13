"""What the feedback store takes and gives: the records (items, reviewers, judgments, progress), the errors it
raises (each with the HTTP status the reviewer web app answers with), and the checks on what callers send."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from medtune.errors import MedtuneError

DEFAULT_DB = "feedback.db"
ERROR_FLAGS = ("terminology", "omission", "addition", "meaning", "fluency", "other")


def database_url(db: str | None) -> str:
    """The SQLAlchemy URL for ``--db``: None -> ``feedback.db`` in the current folder; a path -> that SQLite file;
    a URL (anything with ``://``) passes through."""
    if db is None:
        db = DEFAULT_DB
    if "://" in db:
        return db
    return f"sqlite:///{os.path.abspath(db)}"


@dataclass(frozen=True)
class NewItem:
    source: str
    translation: str
    model_id: str = ""
    model_version: str = ""
    reference: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class ItemView:
    id: str
    project: str
    source: str
    translation: str
    reference: str | None
    model_id: str
    model_version: str
    external_id: str | None


@dataclass(frozen=True)
class ReviewerView:
    id: int
    name: str
    simulated: bool


@dataclass(frozen=True)
class JudgmentView:
    id: int
    item_id: str
    project: str
    reviewer: str
    simulated: bool
    imported: bool
    score: float
    post_edit: str | None
    flags: tuple[str, ...]
    comment: str | None
    seconds: float | None
    created_at: datetime
    source: str
    translation: str
    reference: str | None
    model_id: str


@dataclass(frozen=True)
class ImportedJudgment:
    source: str
    translation: str
    score: float
    post_edit: str | None = None
    reviewer: str | None = None
    flags: tuple[str, ...] = ()
    comment: str | None = None
    seconds: float | None = None
    reference: str | None = None


@dataclass(frozen=True)
class Progress:
    """``done`` judgments by the reviewer; ``total`` = done + what is still open or available to them."""

    done: int
    total: int


class FeedbackError(MedtuneError):
    """A request the store refuses; ``status`` is the HTTP status the web app answers with."""

    status = 400


class UnknownItem(FeedbackError):
    status = 404


class UnknownProject(FeedbackError):
    status = 404


class NotAssigned(FeedbackError):
    status = 409


class AlreadyJudged(FeedbackError):
    status = 409


class ImportRowError(FeedbackError):
    """An imported row the store refuses; ``row`` is its 0-based index in the rows given to import_judgments."""

    def __init__(self, row: int, message: str):
        super().__init__(f"row {row}: {message}")
        self.row = row


def item_id(project: str, source: str, translation: str, model_id: str = "") -> str:
    """The stable item id: the same project, source, translation and model give the same id in any database."""
    key = "\x1f".join((project, source, translation, model_id))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def token_hash(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough (no password hashing on every request).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_judgment(score: float, flags: Sequence[str], seconds: float | None) -> tuple[float, tuple[str, ...]]:
    """The score as a float and the flags as a tuple, after checking them.

    Raises:
        FeedbackError: score not a number in [0, 1], a flag outside ERROR_FLAGS, or negative seconds.
    """
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score) or not 0 <= score <= 1:
        raise FeedbackError(f"score must be a number from 0 to 1, got {score!r}.")
    if isinstance(flags, str):
        raise FeedbackError(f"flags must be a list of error flags, got the string {flags!r}.")
    unknown = [f for f in flags if f not in ERROR_FLAGS]
    if unknown:
        raise FeedbackError(f"flags: unknown error flag(s) {unknown!r}; allowed: {', '.join(ERROR_FLAGS)}.")
    if seconds is not None and (not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0):
        raise FeedbackError(f"seconds must be a non-negative number of seconds spent, got {seconds!r}.")
    return float(score), tuple(dict.fromkeys(flags))


def check_name(name: str, kind: str) -> str:
    cleaned = (name or "").strip()
    if not cleaned or len(cleaned) > 200:
        raise FeedbackError(f"a {kind} name must be 1 to 200 characters, got {name!r}.")
    return cleaned
