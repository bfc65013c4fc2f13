"""The feedback store: the only code that reads or writes the feedback database.

Items are queued per project; reviewers ask for the next item and get their own unfinished assignment first,
else a fresh item that still wants judgments. An item wants ``reviewers_per_item`` (K) judgments; open,
unexpired leases count towards K so two reviewers are never sent the same last slot. An expired lease or a
skip frees the slot; a reviewer is never sent an item they judged or skipped. Every write is one transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, exists, func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from medtune.errors import MedtuneError
from medtune.feedback.database import migrate, open_engine, parse_url
from medtune.feedback.models import JUDGED, OPEN, SKIPPED, Assignment, Item, Judgment, Project, Reviewer, utc_now

DEFAULT_DB = "feedback.db"
ERROR_FLAGS = ("terminology", "omission", "addition", "meaning", "fluency", "other")
# Candidates fetched per query when looking for a fresh item; more are fetched if all are taken meanwhile.
_CANDIDATES = 16


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


def _token_hash(token: str) -> str:
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


class FeedbackStore:
    """Projects, items, reviewers, assignments and judgments in one database (thread-safe; a context manager).

    Opening creates the database if needed and migrates it to the latest schema.
    """

    def __init__(self, url: str):
        self.url = parse_url(url)
        self._engine = open_engine(self.url)
        migrate(self._engine, self.url)
        self._is_sqlite = self._engine.dialect.name == "sqlite"
        self._reads = sessionmaker(self._engine, expire_on_commit=False)
        self._writes = sessionmaker(self._engine.execution_options(medtune_write=True), expire_on_commit=False)
        # SQLite has one writer at a time anyway: queueing in-process writers on a lock hands over at once,
        # where SQLite's busy handler would sleep and poll.
        self._write_lock = threading.Lock() if self._is_sqlite else nullcontext()

    def close(self) -> None:
        """Release every database connection."""
        self._engine.dispose()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back on any error."""
        with self._write_lock, self._writes.begin() as session:
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._reads.begin() as session:
            yield session

    def _lock(self, statement):
        # Row locks matter on servers; SQLite's BEGIN IMMEDIATE already serialises writers (and has no FOR UPDATE).
        # FOR NO KEY UPDATE: does not block the foreign-key checks of concurrent inserts (FOR UPDATE would).
        return statement if self._is_sqlite else statement.with_for_update(key_share=True)

    # -- projects and items ------------------------------------------------------------------------------------

    def create_project(
        self, name: str, *, reviewers_per_item: int | None = None, lease_minutes: float | None = None
    ) -> None:
        """Create project ``name`` (idempotent). Settings given for an existing project replace its settings;
        settings left out keep theirs (new projects: 1 reviewer per item, 30-minute leases).

        Raises:
            FeedbackError: an empty name, reviewers_per_item < 1, or lease_minutes <= 0.
        """
        name = _check_name(name, "project")
        if reviewers_per_item is not None and (isinstance(reviewers_per_item, bool) or reviewers_per_item < 1):
            raise FeedbackError(f"reviewers per item must be a whole number >= 1, got {reviewers_per_item!r}.")
        if lease_minutes is not None and not lease_minutes > 0:
            raise FeedbackError(f"lease minutes must be > 0, got {lease_minutes!r}.")
        with self._write() as session:
            project = session.scalar(select(Project).where(Project.name == name))
            if project is None:
                session.add(
                    Project(name=name, reviewers_per_item=reviewers_per_item or 1, lease_minutes=lease_minutes or 30.0)
                )
                return
            if reviewers_per_item is not None:
                project.reviewers_per_item = reviewers_per_item
            if lease_minutes is not None:
                project.lease_minutes = lease_minutes

    def project_names(self) -> list[str]:
        """Every project's name, sorted."""
        with self._read() as session:
            return list(session.scalars(select(Project.name).order_by(Project.name)))

    def add_items(self, project: str, items: Iterable[NewItem]) -> tuple[int, int]:
        """Queue machine translations in ``project`` (which must exist); returns (added, already present).

        An item already in the project (same source, translation and model id) is not added again.
        """
        with self._write() as session:
            project_row = _project(session, project)
            rows = [(item_id(project, i.source, i.translation, i.model_id), i) for i in items]
            present = set()
            for start in range(0, len(rows), 500):  # stay under the bound-parameter limits
                chunk = [key for key, _ in rows[start : start + 500]]
                present |= set(session.scalars(select(Item.id).where(Item.id.in_(chunk))))
            added = 0
            for key, new in rows:
                if key in present:
                    continue
                present.add(key)
                session.add(
                    Item(
                        id=key,
                        project_id=project_row.id,
                        source=new.source,
                        translation=new.translation,
                        reference=new.reference,
                        model_id=new.model_id,
                        model_version=new.model_version,
                        external_id=new.external_id,
                    )
                )
                added += 1
            return added, len(rows) - added

    def items(self, project: str) -> list[ItemView]:
        """The project's items in the order they were queued."""
        with self._read() as session:
            project_row = _project(session, project)
            rows = session.scalars(select(Item).where(Item.project_id == project_row.id).order_by(Item.seq))
            return [_item_view(row, project_row.name) for row in rows]

    # -- reviewers ---------------------------------------------------------------------------------------------

    def add_reviewer(self, name: str, *, simulated: bool = False, replace_token: bool = False) -> str:
        """Create reviewer ``name`` and return their sign-in token (shown once: only its SHA-256 is stored).

        A reviewer that exists without a token (created by an import or ensure_reviewer) gets one; one that
        has a token gets a new one (the old stops working) only with ``replace_token``.

        Raises:
            FeedbackError: the name is empty or already has a token.
        """
        name = _check_name(name, "reviewer")
        token = secrets.token_urlsafe(32)
        with self._write() as session:
            reviewer = session.scalar(select(Reviewer).where(Reviewer.name == name))
            if reviewer is None:
                session.add(Reviewer(name=name, simulated=simulated, token_sha256=_token_hash(token)))
            elif reviewer.token_sha256 is None or replace_token:
                reviewer.token_sha256 = _token_hash(token)
            else:
                raise FeedbackError(
                    f"reviewer {name!r} already exists and has a token (tokens are shown once and never stored); "
                    "choose another name, or issue a new token (the old one stops working) with --new-token."
                )
        return token

    def ensure_reviewer(self, name: str, *, simulated: bool = False) -> ReviewerView:
        """Reviewer ``name``, created without a token (so it cannot sign in) if missing; for simulated reviewers."""
        name = _check_name(name, "reviewer")
        with self._write() as session:
            reviewer = session.scalar(select(Reviewer).where(Reviewer.name == name))
            if reviewer is None:
                reviewer = Reviewer(name=name, simulated=simulated)
                session.add(reviewer)
                session.flush()
            return _reviewer_view(reviewer)

    def reviewer_by_token(self, token: str) -> ReviewerView | None:
        """The reviewer whose token this is, or None."""
        if not token:
            return None
        digest = _token_hash(token)
        with self._read() as session:
            reviewer = session.scalar(select(Reviewer).where(Reviewer.token_sha256 == digest))
        # The lookup is by a hash of 256 random bits; compare_digest keeps the final check constant-time.
        if reviewer is None or not hmac.compare_digest(reviewer.token_sha256 or "", digest):
            return None
        return _reviewer_view(reviewer)

    def reviewer(self, name: str) -> ReviewerView | None:
        """Reviewer ``name``, or None."""
        with self._read() as session:
            reviewer = session.scalar(select(Reviewer).where(Reviewer.name == name))
            return None if reviewer is None else _reviewer_view(reviewer)

    # -- assignment --------------------------------------------------------------------------------------------

    def next_item(
        self, reviewer: ReviewerView, project: str | None = None, *, now: datetime | None = None
    ) -> ItemView | None:
        """The item ``reviewer`` should judge next (in ``project``, or any project), or None when nothing is left.

        Their own open assignment comes first (unexpired, latest first; then expired ones whose slot is still
        free, with a fresh lease); otherwise a fresh item is assigned: the earliest queued that has fewer than K judgments
        plus live leases and that this reviewer never judged or skipped.
        """
        now = now or utc_now()
        with self._write() as session:
            self._lock_reviewer(session, reviewer)
            project_id = None if project is None else _project(session, project).id
            own = session.execute(
                select(Assignment, Item, Project)
                .join(Item, Assignment.item_id == Item.id)
                .join(Project, Item.project_id == Project.id)
                .where(Assignment.reviewer_id == reviewer.id, Assignment.state == OPEN, _in_project(project_id))
                # Latest first: after an undo the undone item comes back before the one that was showing.
                .order_by(
                    (Assignment.lease_expires_at > now).desc(), Assignment.assigned_at.desc(), Assignment.id.desc()
                )
            ).all()
            for assignment, item, project_row in own:
                if assignment.lease_expires_at > now:
                    return _item_view(item, project_row.name)
                if self._lock_free_slot(session, item.id, project_row.reviewers_per_item, now, reviewer.id):
                    assignment.assigned_at = now
                    assignment.lease_expires_at = now + timedelta(minutes=project_row.lease_minutes)
                    return _item_view(item, project_row.name)
            tried: set[str] = set()
            while True:
                candidates = session.execute(
                    select(Item, Project)
                    .join(Project, Item.project_id == Project.id)
                    .where(
                        _in_project(project_id),
                        _fresh_for(reviewer.id),
                        _load(Item.id, now) < Project.reviewers_per_item,
                    )
                    .where(Item.id.not_in(tried) if tried else true())
                    .order_by(Item.seq)
                    .limit(_CANDIDATES)
                ).all()
                if not candidates:
                    return None
                busy = []
                for item, project_row in candidates:
                    tried.add(item.id)
                    free = self._lock_free_slot(session, item.id, project_row.reviewers_per_item, now, None, True)
                    if free is None:
                        busy.append((item, project_row))
                    elif free:
                        return self._assign(session, reviewer, item, project_row, now)
                # Every candidate was full or being assigned right now: wait for those locks, then recount.
                for item, project_row in busy:
                    if self._lock_free_slot(session, item.id, project_row.reviewers_per_item, now, None):
                        return self._assign(session, reviewer, item, project_row, now)

    def _assign(
        self, session: Session, reviewer: ReviewerView, item: Item, project_row: Project, now: datetime
    ) -> ItemView:
        lease = now + timedelta(minutes=project_row.lease_minutes)
        session.add(
            Assignment(item_id=item.id, reviewer_id=reviewer.id, state=OPEN, assigned_at=now, lease_expires_at=lease)
        )
        return _item_view(item, project_row.name)

    def _lock_reviewer(self, session: Session, reviewer: ReviewerView) -> None:
        # One reviewer's requests run one at a time (PostgreSQL row lock), so two tabs cannot take two items.
        if session.scalar(self._lock(select(Reviewer.id).where(Reviewer.id == reviewer.id))) is None:
            raise FeedbackError(f"reviewer {reviewer.name!r} does not exist in this feedback database.")

    def _lock_free_slot(
        self, session: Session, key: str, k: int, now: datetime, exclude: int | None, skip_locked: bool = False
    ) -> bool | None:
        """Lock item ``key`` and say whether it has a free slot (judgments + live leases of others < K);
        None when ``skip_locked`` and another transaction holds the lock.

        The count runs after the lock as its own statement, so on PostgreSQL it sees every assignment committed
        by whoever held the lock before us: an item is never handed to more than K reviewers at once.
        """
        if self._is_sqlite:
            return session.scalar(select(_load(key, now, exclude))) < k
        # A savepoint per item, rolled back when we do not take it: locks on items we pass over are released at
        # once, so a transaction holds at most one item lock and concurrent assignments cannot deadlock.
        savepoint = session.begin_nested()
        locked = session.scalar(
            select(Item.seq).where(Item.id == key).with_for_update(skip_locked=skip_locked, key_share=True)
        )
        if locked is not None and session.scalar(select(_load(key, now, exclude))) < k:
            savepoint.commit()
            return True
        savepoint.rollback()
        return None if locked is None else False

    def _open_assignment(self, session: Session, reviewer: ReviewerView, key: str) -> tuple[Assignment, Item, Project]:
        """The reviewer's open assignment of item ``key``, locked. Raises UnknownItem, AlreadyJudged or NotAssigned."""
        self._lock_reviewer(session, reviewer)
        found = session.execute(
            select(Item, Project).join(Project, Item.project_id == Project.id).where(Item.id == key)
        ).first()
        if found is None:
            raise UnknownItem(f"item_id {key!r}: no such item in the feedback database.")
        item, project_row = found
        assignment = session.scalar(
            self._lock(select(Assignment).where(Assignment.item_id == key, Assignment.reviewer_id == reviewer.id))
        )
        if assignment is not None and assignment.state == JUDGED:
            raise AlreadyJudged(f"item_id {key!r}: reviewer {reviewer.name!r} has already judged it (undo it first).")
        if assignment is None or assignment.state != OPEN:
            state = "skipped it" if assignment is not None else "was not assigned it"
            raise NotAssigned(f"item_id {key!r}: reviewer {reviewer.name!r} {state}; ask for the next item first.")
        return assignment, item, project_row

    def submit(
        self,
        reviewer: ReviewerView,
        item_id: str,
        score: float,
        *,
        post_edit: str | None = None,
        flags: Sequence[str] = (),
        comment: str | None = None,
        seconds: float | None = None,
        now: datetime | None = None,
    ) -> int:
        """Record ``reviewer``'s judgment of an item assigned to them; returns the judgment id.

        A submission after the lease expired is still accepted while the item's slot is free.

        Raises:
            FeedbackError: score outside [0, 1], unknown flags, negative seconds.
            UnknownItem / NotAssigned / AlreadyJudged: no such item; not (or no longer) assigned; judged already.
        """
        score, flags = check_judgment(score, flags, seconds)
        now = now or utc_now()
        try:
            with self._write() as session:
                assignment, item, project_row = self._open_assignment(session, reviewer, item_id)
                expired = assignment.lease_expires_at <= now
                if expired and not self._lock_free_slot(
                    session, item.id, project_row.reviewers_per_item, now, reviewer.id
                ):
                    raise NotAssigned(
                        f"item_id {item_id!r}: the lease of reviewer {reviewer.name!r} expired and the item went to "
                        "other reviewers; ask for the next item."
                    )
                assignment.state = JUDGED
                judgment = Judgment(
                    item_id=item.id,
                    reviewer_id=reviewer.id,
                    assignment_id=assignment.id,
                    score=score,
                    post_edit=post_edit,
                    flags=list(flags),
                    comment=comment,
                    seconds=None if seconds is None else float(seconds),
                    imported=False,
                    created_at=now,
                )
                session.add(judgment)
                session.flush()
                return judgment.id
        except IntegrityError:  # a concurrent duplicate submission of the same item by the same reviewer
            raise AlreadyJudged(f"item_id {item_id!r}: reviewer {reviewer.name!r} has already judged it.") from None

    def skip(self, reviewer: ReviewerView, item_id: str, *, now: datetime | None = None) -> None:
        """Give an assigned item back: its slot is freed and it is never served to this reviewer again.

        Raises UnknownItem, NotAssigned or AlreadyJudged as submit does.
        """
        with self._write() as session:
            assignment, _item, _project_row = self._open_assignment(session, reviewer, item_id)
            assignment.state = SKIPPED
            assignment.lease_expires_at = now or utc_now()

    def undo_last(self, reviewer: ReviewerView, *, now: datetime | None = None) -> int | None:
        """Delete ``reviewer``'s latest judgment made through an assignment and reopen that assignment for them
        (so next_item gives the item back); returns the deleted judgment's id, or None when there is none."""
        now = now or utc_now()
        with self._write() as session:
            self._lock_reviewer(session, reviewer)
            found = session.execute(
                select(Judgment, Assignment, Project)
                .join(Assignment, Judgment.assignment_id == Assignment.id)
                .join(Item, Judgment.item_id == Item.id)
                .join(Project, Item.project_id == Project.id)
                .where(Judgment.reviewer_id == reviewer.id, Judgment.imported.is_(False))
                .order_by(Judgment.id.desc())
                .limit(1)
            ).first()
            if found is None:
                return None
            judgment, assignment, project_row = found
            judgment_id = judgment.id
            session.execute(delete(Judgment).where(Judgment.id == judgment_id))
            # The judged slot becomes a live lease again: it still counts towards K, so no one else took it.
            assignment.state = OPEN
            assignment.assigned_at = now
            assignment.lease_expires_at = now + timedelta(minutes=project_row.lease_minutes)
            return judgment_id

    def progress(self, reviewer: ReviewerView, project: str | None = None, *, now: datetime | None = None) -> Progress:
        """How far ``reviewer`` is: judgments made, out of those plus their open assignments and the fresh items
        still available to them."""
        now = now or utc_now()
        with self._read() as session:
            project_id = None if project is None else _project(session, project).id
            done = session.scalar(
                select(func.count())
                .select_from(Judgment)
                .join(Item, Judgment.item_id == Item.id)
                .where(Judgment.reviewer_id == reviewer.id, _in_project(project_id))
            )
            open_own = session.scalar(
                select(func.count())
                .select_from(Assignment)
                .join(Item, Assignment.item_id == Item.id)
                .where(Assignment.reviewer_id == reviewer.id, Assignment.state == OPEN, _in_project(project_id))
            )
            fresh = session.scalar(
                select(func.count())
                .select_from(Item)
                .join(Project, Item.project_id == Project.id)
                .where(
                    _in_project(project_id), _fresh_for(reviewer.id), _load(Item.id, now) < Project.reviewers_per_item
                )
            )
            return Progress(done=done, total=done + open_own + fresh)

    # -- judgments ---------------------------------------------------------------------------------------------

    def import_judgments(
        self, project: str, rows: Sequence[ImportedJudgment], *, default_reviewer: str = "import"
    ) -> int:
        """Store judgments made elsewhere (no assignment; marked imported), creating the project, items and
        reviewers (without tokens) as needed. All rows or none: returns how many were stored.

        Raises:
            ImportRowError: a row with a bad score, flag or seconds, or a second judgment of one item by one
                reviewer (in the rows or already in the store); its ``row`` is the index in ``rows``.
        """
        checked = []
        for index, row in enumerate(rows):
            try:
                score, flags = check_judgment(row.score, row.flags, row.seconds)
            except FeedbackError as exc:
                raise ImportRowError(index, str(exc)) from None
            checked.append((index, row, score, flags, _check_name(row.reviewer or default_reviewer, "reviewer")))
        self.create_project(project)
        now = utc_now()
        with self._write() as session:
            project_row = _project(session, project)
            reviewers: dict[str, Reviewer] = {}
            items: dict[str, Item] = {}
            seen: dict[tuple[str, str], int] = {}
            for index, row, score, flags, name in checked:
                if name not in reviewers:
                    reviewer = session.scalar(select(Reviewer).where(Reviewer.name == name))
                    if reviewer is None:
                        reviewer = Reviewer(name=name, simulated=False)
                        session.add(reviewer)
                        session.flush()
                    reviewers[name] = reviewer
                key = item_id(project, row.source, row.translation)
                if key not in items:
                    item = session.scalar(select(Item).where(Item.id == key))
                    if item is None:
                        item = Item(
                            id=key,
                            project_id=project_row.id,
                            source=row.source,
                            translation=row.translation,
                            reference=row.reference,
                        )
                        session.add(item)
                        session.flush()
                    items[key] = item
                reviewer_id = reviewers[name].id
                if (key, name) in seen:
                    raise ImportRowError(
                        index, f"reviewer {name!r} already judged this translation in row {seen[key, name]}."
                    )
                seen[key, name] = index
                if session.scalar(select(exists().where(Judgment.item_id == key, Judgment.reviewer_id == reviewer_id))):
                    raise ImportRowError(
                        index, f"reviewer {name!r} already has a judgment of this translation in the store."
                    )
                session.add(
                    Judgment(
                        item_id=key,
                        reviewer_id=reviewer_id,
                        score=score,
                        post_edit=row.post_edit,
                        flags=list(flags),
                        comment=row.comment,
                        seconds=None if row.seconds is None else float(row.seconds),
                        imported=True,
                        created_at=now,
                    )
                )
            return len(checked)

    def judgments(self, project: str | None = None) -> list[JudgmentView]:
        """Every judgment (in ``project``, or all), ordered by id."""
        with self._read() as session:
            project_id = None if project is None else _project(session, project).id
            rows = session.execute(
                select(Judgment, Item, Project.name, Reviewer)
                .join(Item, Judgment.item_id == Item.id)
                .join(Project, Item.project_id == Project.id)
                .join(Reviewer, Judgment.reviewer_id == Reviewer.id)
                .where(_in_project(project_id))
                .order_by(Judgment.id)
            ).all()
            return [
                JudgmentView(
                    id=j.id,
                    item_id=item.id,
                    project=project_name,
                    reviewer=reviewer.name,
                    simulated=reviewer.simulated,
                    imported=j.imported,
                    score=j.score,
                    post_edit=j.post_edit,
                    flags=tuple(j.flags or ()),
                    comment=j.comment,
                    seconds=j.seconds,
                    created_at=j.created_at,
                    source=item.source,
                    translation=item.translation,
                    reference=item.reference,
                    model_id=item.model_id,
                )
                for j, item, project_name, reviewer in rows
            ]


def _check_name(name: str, kind: str) -> str:
    cleaned = (name or "").strip()
    if not cleaned or len(cleaned) > 200:
        raise FeedbackError(f"a {kind} name must be 1 to 200 characters, got {name!r}.")
    return cleaned


def _project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        known = ", ".join(session.scalars(select(Project.name).order_by(Project.name))) or "none yet"
        raise UnknownProject(f"--project {name!r}: no such project in the feedback database (projects: {known}).")
    return project


def _in_project(project_id: int | None) -> ColumnElement[bool]:
    return Item.project_id == project_id if project_id is not None else true()


def _fresh_for(reviewer_id: int) -> ColumnElement[bool]:
    """Items this reviewer was never assigned and never judged (imports have no assignment)."""
    assigned = exists().where(Assignment.item_id == Item.id, Assignment.reviewer_id == reviewer_id)
    judged = exists().where(Judgment.item_id == Item.id, Judgment.reviewer_id == reviewer_id)
    return ~assigned & ~judged


def _load(key, now: datetime, exclude: int | None = None):
    """Judgments of the item plus open, unexpired leases on it (other than ``exclude``'s): the slots taken."""
    judged = select(func.count()).select_from(Judgment).where(Judgment.item_id == key).scalar_subquery()
    leased = (
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.item_id == key, Assignment.state == OPEN, Assignment.lease_expires_at > now)
    )
    if exclude is not None:
        leased = leased.where(Assignment.reviewer_id != exclude)
    return judged + leased.scalar_subquery()


def _item_view(item: Item, project: str) -> ItemView:
    return ItemView(
        id=item.id,
        project=project,
        source=item.source,
        translation=item.translation,
        reference=item.reference,
        model_id=item.model_id,
        model_version=item.model_version,
        external_id=item.external_id,
    )


def _reviewer_view(reviewer: Reviewer) -> ReviewerView:
    return ReviewerView(id=reviewer.id, name=reviewer.name, simulated=reviewer.simulated)
