"""The feedback store: the only code that reads or writes the feedback database.

Items are queued per project; reviewers ask for the next item and get their own unfinished assignment first,
else a fresh item that still wants judgments. An item wants ``reviewers_per_item`` (K) judgments; open,
unexpired leases count towards K so two reviewers are never sent the same last slot. An expired lease or a
skip frees the slot; a reviewer is never sent an item they judged or skipped. Every write is one transaction.

The store speaks SQLAlchemy Core, not ORM sessions: the reviewer page calls it on every request, and Core
costs a fraction of the ORM's per-query overhead.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta

from sqlalchemy import Connection, Row, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from medtune.feedback import queries as q
from medtune.feedback.database import migrate, open_engine, parse_url
from medtune.feedback.models import JUDGED, OPEN, SKIPPED, Item, Judgment, Project, Reviewer, utc_now
from medtune.feedback.records import (
    DEFAULT_DB,
    ERROR_FLAGS,
    AlreadyJudged,
    FeedbackError,
    ImportedJudgment,
    ImportRowError,
    ItemView,
    JudgmentView,
    NewItem,
    NotAssigned,
    Progress,
    ReviewerView,
    UnknownItem,
    UnknownProject,
    check_judgment,
    check_name,
    database_url,
    item_id,
    token_hash,
)

__all__ = [
    "DEFAULT_DB",
    "ERROR_FLAGS",
    "AlreadyJudged",
    "FeedbackError",
    "FeedbackStore",
    "ImportRowError",
    "ImportedJudgment",
    "ItemView",
    "JudgmentView",
    "NewItem",
    "NotAssigned",
    "Progress",
    "ReviewerView",
    "UnknownItem",
    "UnknownProject",
    "database_url",
    "item_id",
]


class _MustWaitHoldingLocks(Exception):
    """next_item's quick pass kept the locks of items it found full and would now wait for another item's lock:
    two transactions doing so could deadlock, so it starts again with a savepoint per item instead."""


class FeedbackStore:
    """Projects, items, reviewers, assignments and judgments in one database (thread-safe; a context manager).

    Opening creates the database if needed and migrates it to the latest schema.
    """

    def __init__(self, url: str):
        self.url = parse_url(url)
        self._engine = open_engine(self.url)
        migrate(self._engine, self.url)
        self._is_sqlite = self._engine.dialect.name == "sqlite"
        self._write_engine = self._engine.execution_options(medtune_write=True)
        # A read is one statement, or a few that need no common snapshot: on a server, autocommit spares the
        # BEGIN and ROLLBACK round trips (SQLite's DEFERRED read transaction costs no round trip).
        self._read_engine = (
            self._engine if self._is_sqlite else self._engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        # SQLite has one writer at a time anyway: queueing in-process writers on a lock hands over at once,
        # where SQLite's busy handler would sleep and poll.
        self._write_lock = threading.Lock() if self._is_sqlite else nullcontext()
        self._project_ids: dict[str, int] = {}

    def close(self) -> None:
        """Release every database connection."""
        self._engine.dispose()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back on any error."""
        with self._write_lock, self._write_engine.begin() as connection:
            yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._read_engine.connect() as connection:
            yield connection

    # -- projects and items ------------------------------------------------------------------------------------

    def create_project(
        self, name: str, *, reviewers_per_item: int | None = None, lease_minutes: float | None = None
    ) -> None:
        """Create project ``name`` (idempotent). Settings given for an existing project replace its settings;
        settings left out keep theirs (new projects: 1 reviewer per item, 30-minute leases).

        Raises:
            FeedbackError: an empty name, reviewers_per_item < 1, or lease_minutes <= 0.
        """
        name = check_name(name, "project")
        if reviewers_per_item is not None and (isinstance(reviewers_per_item, bool) or reviewers_per_item < 1):
            raise FeedbackError(f"reviewers per item must be a whole number >= 1, got {reviewers_per_item!r}.")
        if lease_minutes is not None and not lease_minutes > 0:
            raise FeedbackError(f"lease minutes must be > 0, got {lease_minutes!r}.")
        settings = {"reviewers_per_item": reviewers_per_item, "lease_minutes": lease_minutes}
        given = {key: value for key, value in settings.items() if value is not None}
        for attempt in range(2):
            try:
                with self._write() as connection:
                    found = connection.scalar(select(Project.id).where(Project.name == name))
                    if found is None:
                        defaults = {"reviewers_per_item": 1, "lease_minutes": 30.0}
                        connection.execute(insert(Project).values(name=name, **(defaults | given)))
                    elif given:
                        connection.execute(update(Project).where(Project.id == found).values(**given))
                        if reviewers_per_item is not None:
                            complete = Item.judgment_count >= reviewers_per_item
                            connection.execute(update(Item).where(Item.project_id == found).values(complete=complete))
                return
            except IntegrityError:  # created concurrently by another process: update it instead
                if attempt:
                    raise

    def project_names(self) -> list[str]:
        """Every project's name, sorted."""
        with self._read() as connection:
            return list(connection.scalars(select(Project.name).order_by(Project.name)))

    def add_items(self, project: str, items: Iterable[NewItem]) -> tuple[int, int]:
        """Queue machine translations in ``project`` (which must exist); returns (added, already present).

        An item already in the project (same source, translation and model id) is not added again.
        """
        with self._write() as connection:
            project_row = _project(connection, project)
            rows = [(item_id(project_row.name, i.source, i.translation, i.model_id), i) for i in items]
            present: set[str] = set()
            for start in range(0, len(rows), 500):  # stay under the drivers' bound-parameter limits
                chunk = [key for key, _ in rows[start : start + 500]]
                present |= set(connection.scalars(select(Item.id).where(Item.id.in_(chunk))))
            new = []
            for key, item in rows:
                if key not in present:
                    present.add(key)
                    new.append(
                        {
                            "id": key,
                            "project_id": project_row.id,
                            "source": item.source,
                            "translation": item.translation,
                            "reference": item.reference,
                            "model_id": item.model_id,
                            "model_version": item.model_version,
                            "external_id": item.external_id,
                            "created_at": utc_now(),
                        }
                    )
            if new:
                connection.execute(insert(Item), new)
                connection.execute(q.COUNT_ITEMS, {"project": project_row.id, "added": len(new)})
        if new and not self._is_sqlite:
            # Until autovacuum's next round (up to a minute) the planner has no statistics on the new items and
            # plans the per-request lookups as scans over every item of the project.
            with self._read() as connection:
                connection.exec_driver_sql("ANALYZE items")
        return len(new), len(rows) - len(new)

    def items(self, project: str) -> list[ItemView]:
        """The project's items in the order they were queued."""
        with self._read() as connection:
            project_row = _project(connection, project)
            rows = connection.execute(
                select(*q.ITEM_VIEW).join(Project).where(Item.project_id == project_row.id).order_by(Item.seq)
            )
            return [ItemView(*row) for row in rows]

    # -- reviewers ---------------------------------------------------------------------------------------------

    def add_reviewer(self, name: str, *, simulated: bool = False, replace_token: bool = False) -> str:
        """Create reviewer ``name`` and return their sign-in token (shown once: only its SHA-256 is stored).

        A reviewer that exists without a token (created by an import or ensure_reviewer) gets one; one that
        has a token gets a new one (the old stops working) only with ``replace_token``.

        Raises:
            FeedbackError: the name is empty or already has a token.
        """
        name = check_name(name, "reviewer")
        token = secrets.token_urlsafe(32)
        with self._write() as connection:
            found = connection.execute(select(Reviewer.id, Reviewer.token_sha256).where(Reviewer.name == name)).first()
            if found is None:
                connection.execute(
                    insert(Reviewer).values(name=name, simulated=simulated, token_sha256=token_hash(token))
                )
            elif found.token_sha256 is None or replace_token:
                connection.execute(
                    update(Reviewer).where(Reviewer.id == found.id).values(token_sha256=token_hash(token))
                )
            else:
                raise FeedbackError(
                    f"reviewer {name!r} already exists and has a token (tokens are shown once and never stored); "
                    "choose another name, or issue a new token (the old one stops working) with --new-token."
                )
        return token

    def ensure_reviewer(self, name: str, *, simulated: bool = False) -> ReviewerView:
        """Reviewer ``name``, created without a token (so it cannot sign in) if missing; for simulated reviewers."""
        name = check_name(name, "reviewer")
        with self._write() as connection:
            if connection.scalar(select(Reviewer.id).where(Reviewer.name == name)) is None:
                connection.execute(insert(Reviewer).values(name=name, simulated=simulated))
            return _reviewer(connection, Reviewer.name == name)

    def reviewer_by_token(self, token: str) -> ReviewerView | None:
        """The reviewer whose token this is, or None."""
        if not token:
            return None
        digest = token_hash(token)
        with self._read() as connection:
            found = connection.execute(q.REVIEWER_BY_TOKEN, {"digest": digest}).first()
        # The lookup is by a hash of 256 random bits; compare_digest keeps the final check constant-time.
        if found is None or not hmac.compare_digest(found.token_sha256, digest):
            return None
        return ReviewerView(found.id, found.name, found.simulated)

    def reviewer(self, name: str) -> ReviewerView | None:
        """Reviewer ``name``, or None."""
        with self._read() as connection:
            return _reviewer(connection, Reviewer.name == name)

    # -- assignment --------------------------------------------------------------------------------------------

    def next_item(
        self, reviewer: ReviewerView, project: str | None = None, *, now: datetime | None = None
    ) -> ItemView | None:
        """The item ``reviewer`` should judge next (in ``project``, or any project), or None when nothing is left.

        Their own open assignment comes first (unexpired, latest first; then expired ones whose slot is still
        free, with a fresh lease); otherwise a fresh item is assigned: the earliest queued that has fewer than
        K judgments plus live leases and that this reviewer never judged or skipped.
        """
        now = now or utc_now()
        try:
            with self._write() as connection:
                return self._next_item(connection, reviewer, project, now, quick=True)
        except _MustWaitHoldingLocks:  # rare: nothing was written; the transaction rolled back
            pass
        with self._write() as connection:
            return self._next_item(connection, reviewer, project, now, quick=False)

    def _next_item(
        self, connection: Connection, reviewer: ReviewerView, project: str | None, now: datetime, quick: bool
    ) -> ItemView | None:
        """next_item inside its transaction. ``quick``: fresh candidates found full keep their lock (no savepoint
        per candidate); raises _MustWaitHoldingLocks rather than wait for another lock while holding those."""
        self._lock_reviewer(connection, reviewer)
        scoped = project is not None
        params = {
            "reviewer": reviewer.id,
            "now": now,
            "project": self._project_id(connection, project) if scoped else None,
        }
        for row in connection.execute(q.OWN_OPEN[scoped], params).all():
            *view, assignment_id, expires, k, lease_minutes = row
            if expires > now:
                return ItemView(*view)
            if self._free_slot(connection, view[0], k, now, reviewer.id):
                lease = {"assigned_at": now, "lease_expires_at": now + timedelta(minutes=lease_minutes)}
                connection.execute(q.SET_ASSIGNMENT, {"assignment": assignment_id, **lease})
                return ItemView(*view)
        after, holding_full = -1, False
        while True:
            candidates = connection.execute(q.FRESH[scoped], params | {"after": after}).all()
            if not candidates:
                return None
            after = candidates[-1].seq
            busy = []
            for row in candidates:
                free = self._free_slot(
                    connection, row[0], row[-2], now, q.NO_REVIEWER, skip_locked=True, keep_lock=quick
                )
                if free is None:
                    busy.append(row)
                elif free:
                    return self._assign(connection, reviewer, row, now)
                else:
                    holding_full = quick and not self._is_sqlite
            if busy and holding_full:
                raise _MustWaitHoldingLocks
            # Every candidate was full or being assigned right now: wait for those locks, then recount.
            for row in busy:
                if self._free_slot(connection, row[0], row[-2], now, q.NO_REVIEWER):
                    return self._assign(connection, reviewer, row, now)

    def _assign(self, connection: Connection, reviewer: ReviewerView, row: Row, now: datetime) -> ItemView:
        *view, _seq, project_id, _k, lease_minutes = row
        lease_expires_at = now + timedelta(minutes=lease_minutes)
        connection.execute(
            q.ADD_ASSIGNMENT,
            {
                "item_id": view[0],
                "project_id": project_id,
                "reviewer_id": reviewer.id,
                "state": OPEN,
                "assigned_at": now,
                "lease_expires_at": lease_expires_at,
            },
        )
        _count_for_reviewer(connection, project_id, reviewer.id, assigned=1)
        return ItemView(*view)

    def _project_id(self, connection: Connection, name: str) -> int:
        """Project ``name``'s id, remembered: projects are never renamed or removed, and every request names one."""
        if name not in self._project_ids:
            self._project_ids[name] = _project(connection, name).id
        return self._project_ids[name]

    def _lock_reviewer(self, connection: Connection, reviewer: ReviewerView) -> None:
        """On servers, one reviewer's requests run one at a time (a row lock), so two tabs cannot take two items
        or judge one item twice. SQLite needs no lock: BEGIN IMMEDIATE already serialises every writer."""
        if not self._is_sqlite and connection.scalar(q.LOCK_REVIEWER, {"reviewer": reviewer.id}) is None:
            raise FeedbackError(f"reviewer {reviewer.name!r} does not exist in this feedback database.")

    def _free_slot(
        self,
        connection: Connection,
        key: str,
        k: int,
        now: datetime,
        exclude: int,
        skip_locked: bool = False,
        keep_lock: bool = False,
    ) -> bool | None:
        """Whether item ``key`` has a free slot (judgments + live leases of reviewers other than ``exclude`` < K),
        with the item locked; None when ``skip_locked`` and another transaction holds the lock.

        The count runs after the lock as its own statement, so on PostgreSQL it sees every assignment committed
        by whoever held the lock before us: an item is never handed to more than K reviewers at once.
        ``keep_lock`` (with ``skip_locked``): a full item stays locked until the transaction ends, sparing the
        savepoint round trips; the caller must then not wait for any other lock (see _MustWaitHoldingLocks).
        """
        taken = {"item": key, "now": now, "exclude": exclude}
        if self._is_sqlite:
            return connection.scalar(q.SLOTS_TAKEN, taken) < k
        if skip_locked and keep_lock:
            if connection.scalar(q.LOCK_ITEM_UNLESS_BUSY, {"item": key}) is None:
                return None
            return connection.scalar(q.SLOTS_TAKEN, taken) < k
        # A savepoint per item, rolled back when we do not take it: locks on items we pass over are released at
        # once, so a transaction holds at most one item lock and concurrent assignments cannot deadlock.
        savepoint = connection.begin_nested()
        locked = connection.scalar(q.LOCK_ITEM_UNLESS_BUSY if skip_locked else q.LOCK_ITEM, {"item": key})
        if locked is not None and connection.scalar(q.SLOTS_TAKEN, taken) < k:
            savepoint.commit()
            return True
        savepoint.rollback()
        return None if locked is None else False

    def _open_assignment(self, connection: Connection, reviewer: ReviewerView, key: str) -> Row:
        """The reviewer's open assignment of item ``key`` (id, state, lease_expires_at, project_id, k, lease_minutes).

        Raises UnknownItem, AlreadyJudged or NotAssigned.
        """
        self._lock_reviewer(connection, reviewer)
        found = connection.execute(q.ASSIGNMENT_OF, {"reviewer": reviewer.id, "item": key}).first()
        if found is None:
            raise UnknownItem(f"item_id {key!r}: no such item in the feedback database.")
        if found.state == JUDGED:
            raise AlreadyJudged(f"item_id {key!r}: reviewer {reviewer.name!r} has already judged it (undo it first).")
        if found.state != OPEN:
            state = "skipped it" if found.state == SKIPPED else "was not assigned it"
            raise NotAssigned(f"item_id {key!r}: reviewer {reviewer.name!r} {state}; ask for the next item first.")
        return found

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
            with self._write() as connection:
                assignment = self._open_assignment(connection, reviewer, item_id)
                if assignment.lease_expires_at <= now and not self._free_slot(
                    connection, item_id, assignment.k, now, reviewer.id
                ):
                    raise NotAssigned(
                        f"item_id {item_id!r}: the lease of reviewer {reviewer.name!r} expired and the item went to "
                        "other reviewers; ask for the next item."
                    )
                judgment = {
                    "assignment": assignment.id,
                    "item": item_id,
                    "project": assignment.project_id,
                    "reviewer": reviewer.id,
                    "k": assignment.k,
                    "change": 1,
                    "assigned": 0,
                    "judged": 1,
                    "score_given": score,
                    "post_edit_given": post_edit,
                    "flags_given": list(flags),
                    "comment_given": comment,
                    "seconds_given": None if seconds is None else float(seconds),
                    "now": now,
                }
                if self._is_sqlite:
                    for step in q.JUDGMENT_STEPS:
                        connection.execute(step, judgment)
                    judgment_id = connection.execute(q.ADD_JUDGMENT_ROW, judgment).inserted_primary_key[0]
                else:
                    judgment_id = connection.scalar(q.ADD_JUDGMENT_AT_ONCE, judgment)
                return judgment_id
        except IntegrityError:
            # A concurrent duplicate submission of the same item by the same reviewer lost the race.
            with self._read() as connection:
                if connection.scalar(q.HAS_JUDGED, {"item": item_id, "reviewer": reviewer.id}):
                    raise AlreadyJudged(
                        f"item_id {item_id!r}: reviewer {reviewer.name!r} has already judged it."
                    ) from None
            raise

    def skip(self, reviewer: ReviewerView, item_id: str, *, now: datetime | None = None) -> None:
        """Give an assigned item back: its slot is freed and it is never served to this reviewer again.

        Raises UnknownItem, NotAssigned or AlreadyJudged as submit does.
        """
        with self._write() as connection:
            assignment = self._open_assignment(connection, reviewer, item_id)
            skipped = {"assignment": assignment.id, "state": SKIPPED, "lease_expires_at": now or utc_now()}
            connection.execute(q.SET_ASSIGNMENT, skipped)

    def undo_last(self, reviewer: ReviewerView, *, now: datetime | None = None) -> int | None:
        """Delete ``reviewer``'s latest judgment made through an assignment and reopen that assignment for them
        (so next_item gives the item back); returns the deleted judgment's id, or None when there is none."""
        now = now or utc_now()
        with self._write() as connection:
            self._lock_reviewer(connection, reviewer)
            last = connection.execute(
                select(
                    Judgment.id,
                    Judgment.item_id,
                    Judgment.assignment_id,
                    Judgment.project_id,
                    Project.reviewers_per_item,
                    Project.lease_minutes,
                )
                .join(Item, Judgment.item_id == Item.id)
                .join(Project, Item.project_id == Project.id)
                .where(Judgment.reviewer_id == reviewer.id, Judgment.assignment_id.is_not(None))
                .order_by(Judgment.id.desc())
                .limit(1)
            ).first()
            if last is None:
                return None
            connection.execute(delete(Judgment).where(Judgment.id == last.id))
            connection.execute(q.COUNT_JUDGMENT, {"item": last.item_id, "change": -1, "k": last.reviewers_per_item})
            _count_for_reviewer(connection, last.project_id, reviewer.id, judged=-1)
            # The judged slot becomes a live lease again: it still counts towards K, so no one else took it.
            lease = {"assigned_at": now, "lease_expires_at": now + timedelta(minutes=last.lease_minutes)}
            connection.execute(q.SET_ASSIGNMENT, {"assignment": last.assignment_id, "state": OPEN, **lease})
            return last.id

    def progress(self, reviewer: ReviewerView, project: str | None = None, *, now: datetime | None = None) -> Progress:
        """How far ``reviewer`` is: judgments made, out of those plus their open assignments and the fresh items
        still available to them.

        Fresh items are counted per project as the fewer of the items they never touched and the slots still
        free (K per item, less judgments and live leases): exact for one reviewer or K = 1, an upper bound
        otherwise, and one query of index counts instead of a scan per item (the page asks on every item).
        """
        now = now or utc_now()
        with self._read() as connection:
            scoped = project is not None
            params = {
                "reviewer": reviewer.id,
                "now": now,
                "project": self._project_id(connection, project) if scoped else None,
            }
            rows = connection.execute(q.PROGRESS[scoped], params).all()
        done = total = 0
        for k, n_items, judged, leased, mine_done, imported, touched, open_own in rows:
            fresh = max(0, min(n_items - touched - imported, n_items * k - judged - leased))
            done += mine_done
            total += mine_done + open_own + fresh
        return Progress(done=done, total=total)

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
                name = check_name(row.reviewer or default_reviewer, "reviewer")
            except FeedbackError as exc:
                raise ImportRowError(index, str(exc)) from None
            checked.append((index, row, score, flags, name))
        self.create_project(project)
        now = utc_now()
        with self._write() as connection:
            project_row = _project(connection, project)
            reviewer_ids: dict[str, int] = {}
            for name in sorted({name for *_, name in checked}):
                if connection.scalar(select(Reviewer.id).where(Reviewer.name == name)) is None:
                    connection.execute(insert(Reviewer).values(name=name, simulated=False))
                reviewer_ids[name] = connection.scalar(select(Reviewer.id).where(Reviewer.name == name))
            if not self._is_sqlite:
                # Their kept counts change below; locked first and in id order, as their own requests lock them,
                # so an import and a reviewer's request (or two imports) cannot deadlock.
                for reviewer_id in sorted(reviewer_ids.values()):
                    connection.execute(q.LOCK_REVIEWER, {"reviewer": reviewer_id})
            stored_by_reviewer: Counter[int] = Counter()
            added_items = 0
            known_items: set[str] = set()
            seen: dict[tuple[str, str], int] = {}
            for index, row, score, flags, name in checked:
                key = item_id(project_row.name, row.source, row.translation)
                if key not in known_items and connection.scalar(select(Item.seq).where(Item.id == key)) is None:
                    connection.execute(
                        insert(Item).values(
                            id=key,
                            project_id=project_row.id,
                            source=row.source,
                            translation=row.translation,
                            reference=row.reference,
                        )
                    )
                    added_items += 1
                known_items.add(key)
                if (key, name) in seen:
                    raise ImportRowError(
                        index, f"reviewer {name!r} already judged this translation in row {seen[key, name]}."
                    )
                seen[key, name] = index
                judged = exists().where(Judgment.item_id == key, Judgment.reviewer_id == reviewer_ids[name])
                if connection.scalar(select(judged)):
                    raise ImportRowError(
                        index, f"reviewer {name!r} already has a judgment of this translation in the store."
                    )
                connection.execute(
                    insert(Judgment).values(
                        item_id=key,
                        project_id=project_row.id,
                        reviewer_id=reviewer_ids[name],
                        score=score,
                        post_edit=row.post_edit,
                        flags=list(flags),
                        comment=row.comment,
                        seconds=None if row.seconds is None else float(row.seconds),
                        imported=True,
                        created_at=now,
                    )
                )
                connection.execute(q.COUNT_JUDGMENT, {"item": key, "change": 1, "k": project_row.reviewers_per_item})
                stored_by_reviewer[reviewer_ids[name]] += 1
            connection.execute(q.COUNT_ITEMS, {"project": project_row.id, "added": added_items})
            for reviewer_id, stored in stored_by_reviewer.items():
                _count_for_reviewer(connection, project_row.id, reviewer_id, judged=stored)
            return len(checked)

    def judgments(self, project: str | None = None) -> list[JudgmentView]:
        """Every judgment (in ``project``, or all), ordered by id."""
        statement = (
            select(
                Judgment.id,
                Item.id,
                Project.name,
                Reviewer.name,
                Reviewer.simulated,
                Judgment.imported,
                Judgment.score,
                Judgment.post_edit,
                Judgment.flags,
                Judgment.comment,
                Judgment.seconds,
                Judgment.created_at,
                Item.source,
                Item.translation,
                Item.reference,
                Item.model_id,
            )
            .join(Item, Judgment.item_id == Item.id)
            .join(Project, Item.project_id == Project.id)
            .join(Reviewer, Judgment.reviewer_id == Reviewer.id)
            .order_by(Judgment.id)
        )
        with self._read() as connection:
            if project is not None:
                statement = statement.where(Item.project_id == _project(connection, project).id)
            rows = connection.execute(statement).all()
        return [JudgmentView(*row[:8], tuple(row[8] or ()), *row[9:]) for row in rows]


def _project(connection: Connection, name: str) -> Row:
    found = connection.execute(q.PROJECT_BY_NAME, {"name": name}).first()
    if found is None:
        known = ", ".join(connection.scalars(select(Project.name).order_by(Project.name))) or "none yet"
        raise UnknownProject(f"--project {name!r}: no such project in the feedback database (projects: {known}).")
    return found


def _count_for_reviewer(
    connection: Connection, project_id: int, reviewer_id: int, *, assigned: int = 0, judged: int = 0
) -> None:
    """Add to a reviewer's kept counts in a project. Callers hold the reviewer's lock (or SQLite's write lock),
    so the first count's insert cannot race another."""
    counts = {"project": project_id, "reviewer": reviewer_id, "assigned": assigned, "judged": judged}
    if connection.execute(q.COUNT_FOR_REVIEWER, counts).rowcount == 0:
        connection.execute(q.ADD_REVIEWER_COUNTS, counts)


def _reviewer(connection: Connection, condition) -> ReviewerView | None:
    found = connection.execute(select(Reviewer.id, Reviewer.name, Reviewer.simulated).where(condition)).first()
    return None if found is None else ReviewerView(*found)
