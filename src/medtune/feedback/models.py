"""The feedback store's tables (SQLAlchemy 2 declarative): projects, items, reviewers, assignments, judgments.

Only ``medtune.feedback.store`` reads and writes them; the Alembic migrations in ``migrations/versions``
create them. A change here needs a new migration (the store test checks the two agree).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Assignment states: handed to a reviewer (until its lease expires), judged by them, or skipped by them.
OPEN, JUDGED, SKIPPED = "open", "judged", "skipped"
ASSIGNMENT_STATES = (OPEN, JUDGED, SKIPPED)


class UTCDateTime(TypeDecorator):
    """A UTC timestamp stored without a zone (so SQLite and PostgreSQL compare it alike), read back zone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Project(Base):
    """A named batch of machine translations to review; each item wants ``reviewers_per_item`` judgments."""

    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint("reviewers_per_item >= 1", name="ck_projects_reviewers_per_item"),
        CheckConstraint("lease_minutes > 0", name="ck_projects_lease_minutes"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    reviewers_per_item: Mapped[int] = mapped_column(Integer, default=1)
    lease_minutes: Mapped[float] = mapped_column(Float, default=30.0)
    # The project's items, kept by the store in the same transaction as each item added: progress reads it on
    # every reviewer request, where counting would walk every item.
    item_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Item(Base):
    """One machine translation to judge. ``id`` is stable (a hash of project, source, translation and model id);
    ``seq`` keeps the order items were queued in, which is the order they are served in."""

    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_project_seq", "project_id", "seq"),
        # Looking for a fresh item walks only the items still short of K judgments, in queue order.
        Index("ix_items_open", "project_id", "complete", "seq"),
        Index("ix_items_open_all", "complete", "seq"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(Text)
    translation: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_id: Mapped[str] = mapped_column(String(500), default="")
    model_version: Mapped[str] = mapped_column(String(200), default="")
    external_id: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Judgments of the item, and whether they reach the project's K: kept by the store in the same transaction
    # as each judgment, import, undo or change of K.
    judgment_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    complete: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Reviewer(Base):
    """A person (or the simulated reviewer). Only the SHA-256 of the sign-in token is kept; imported
    reviewers have none and cannot sign in."""

    __tablename__ = "reviewers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Assignment(Base):
    """An item handed to a reviewer. One row per (item, reviewer) ever: a reviewer who judged or skipped
    an item is never handed it again. An open row counts towards the item's K until ``lease_expires_at``."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "reviewer_id", name="uq_assignments_item_reviewer"),
        CheckConstraint(f"state IN {ASSIGNMENT_STATES!r}", name="ck_assignments_state"),
        Index("ix_assignments_reviewer_state", "reviewer_id", "state"),
        Index("ix_assignments_item_state", "item_id", "state"),
        Index("ix_assignments_project_state", "project_id", "state", "lease_expires_at"),
        Index("ix_assignments_reviewer_project", "reviewer_id", "project_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    # The item's project, kept here too so per-project counts read one index instead of joining items.
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("reviewers.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default=OPEN)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Judgment(Base):
    """A reviewer's verdict on an item: score in [0, 1], optional post-edit, error flags, comment, time spent.
    At most one per (item, reviewer). Imported judgments have no assignment."""

    __tablename__ = "judgments"
    __table_args__ = (
        UniqueConstraint("item_id", "reviewer_id", name="uq_judgments_item_reviewer"),
        CheckConstraint("score >= 0 AND score <= 1", name="ck_judgments_score"),
        Index("ix_judgments_reviewer", "reviewer_id"),
        Index("ix_judgments_project_reviewer", "project_id", "reviewer_id", "assignment_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))  # as in assignments
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("reviewers.id", ondelete="CASCADE"))
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id", ondelete="SET NULL"), nullable=True)
    score: Mapped[float] = mapped_column(Float)
    post_edit: Mapped[str | None] = mapped_column(Text, nullable=True)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    imported: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class ReviewerCounts(Base):
    """One reviewer's assignments and judgments (imported ones included) in one project, kept by the store in the
    same transaction as each change, so progress sums a row per reviewer instead of counting every judgment.
    A row is written only under its reviewer's lock, so concurrent reviewers never wait on each other's."""

    __tablename__ = "reviewer_counts"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("reviewers.id", ondelete="CASCADE"), primary_key=True)
    assignments: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    judgments: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
