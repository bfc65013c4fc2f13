"""The feedback store's per-request statements, built once with bound parameters.

The reviewer page asks the store for an item, its progress and a judgment on every click. Building a
SQLAlchemy statement costs about ten times running it on SQLite, and a statement object reused keeps its
compiled form, so the statements those calls run are built here, once, and executed with parameters.
Parameters are named after what they hold: ``reviewer``, ``project``, ``item``, ``now`` and so on.
"""

from __future__ import annotations

from sqlalchemy import and_, bindparam, exists, false, func, insert, select, update
from sqlalchemy.orm import aliased

from medtune.feedback.models import JUDGED, OPEN, Assignment, Item, Judgment, Project, Reviewer, ReviewerCounts

# Reviewer ids are positive: "exclude no one" is this id.
NO_REVIEWER = -1
# Fresh items fetched per query; more are fetched if all of them are taken meanwhile.
CANDIDATES = 16

# The columns of an ItemView, in its field order.
ITEM_VIEW = (
    Item.id,
    Project.name,
    Item.source,
    Item.translation,
    Item.reference,
    Item.model_id,
    Item.model_version,
    Item.external_id,
)

PROJECT_BY_NAME = select(Project.id, Project.name, Project.reviewers_per_item, Project.lease_minutes).where(
    Project.name == bindparam("name")
)
REVIEWER_BY_TOKEN = select(Reviewer.id, Reviewer.name, Reviewer.simulated, Reviewer.token_sha256).where(
    Reviewer.token_sha256 == bindparam("digest")
)
# PostgreSQL: one reviewer's requests run one at a time. FOR NO KEY UPDATE does not block the foreign-key
# checks of concurrent inserts (FOR UPDATE would).
LOCK_REVIEWER = select(Reviewer.id).where(Reviewer.id == bindparam("reviewer")).with_for_update(key_share=True)


def slots_taken(item, now, exclude):
    """Judgments of ``item`` plus open, unexpired leases on it other than reviewer ``exclude``'s."""
    judged = select(func.count()).select_from(Judgment).where(Judgment.item_id == item).scalar_subquery()
    leased = (
        select(func.count())
        .select_from(Assignment)
        .where(
            Assignment.item_id == item,
            Assignment.state == OPEN,
            Assignment.lease_expires_at > now,
            Assignment.reviewer_id != exclude,
        )
        .scalar_subquery()
    )
    return judged + leased


SLOTS_TAKEN = select(slots_taken(bindparam("item"), bindparam("now"), bindparam("exclude")))
LOCK_ITEM = select(Item.seq).where(Item.id == bindparam("item")).with_for_update(key_share=True)
LOCK_ITEM_UNLESS_BUSY = (
    select(Item.seq).where(Item.id == bindparam("item")).with_for_update(skip_locked=True, key_share=True)
)


def _in_project(statement, scoped: bool):
    return statement.where(Item.project_id == bindparam("project")) if scoped else statement


def _own_open(scoped: bool):
    """The reviewer's open assignments: unexpired first, then latest first (after an undo the undone item comes
    back before the one that was showing)."""
    statement = (
        select(
            *ITEM_VIEW, Assignment.id, Assignment.lease_expires_at, Project.reviewers_per_item, Project.lease_minutes
        )
        .join(Project, Item.project_id == Project.id)
        .join(Assignment, Assignment.item_id == Item.id)
        .where(Assignment.reviewer_id == bindparam("reviewer"), Assignment.state == OPEN)
        .order_by(
            (Assignment.lease_expires_at > bindparam("now")).desc(),
            Assignment.assigned_at.desc(),
            Assignment.id.desc(),
        )
    )
    return _in_project(statement, scoped)


def _fresh(scoped: bool):
    """Up to CANDIDATES items after queue position ``after`` that are short of K judgments, have a free slot,
    and were never assigned to or judged by the reviewer, in queue order (walks only incomplete items)."""
    reviewer = bindparam("reviewer")
    touched = exists().where(Assignment.item_id == Item.id, Assignment.reviewer_id == reviewer)
    judged = exists().where(Judgment.item_id == Item.id, Judgment.reviewer_id == reviewer)
    statement = (
        select(*ITEM_VIEW, Item.seq, Item.project_id, Project.reviewers_per_item, Project.lease_minutes)
        .join(Project, Item.project_id == Project.id)
        .where(Item.complete == false(), Item.seq > bindparam("after"), ~touched, ~judged)
        .where(slots_taken(Item.id, bindparam("now"), NO_REVIEWER) < Project.reviewers_per_item)
        .order_by(Item.seq)
        .limit(CANDIDATES)
    )
    return _in_project(statement, scoped)


OWN_OPEN = {scoped: _own_open(scoped) for scoped in (False, True)}
FRESH = {scoped: _fresh(scoped) for scoped in (False, True)}

ASSIGNMENT_OF = (
    select(
        Assignment.id,
        Assignment.state,
        Assignment.lease_expires_at,
        Item.project_id,
        Project.reviewers_per_item.label("k"),
        Project.lease_minutes,
    )
    .select_from(Item)
    .join(Project, Item.project_id == Project.id)
    .outerjoin(Assignment, and_(Assignment.item_id == Item.id, Assignment.reviewer_id == bindparam("reviewer")))
    .where(Item.id == bindparam("item"))
)
ADD_ASSIGNMENT = insert(Assignment)
SET_ASSIGNMENT = update(Assignment).where(Assignment.id == bindparam("assignment"))
# An item's judgment count and completeness, in step with a judgment added (change +1) or removed (-1).
COUNT_JUDGMENT = (
    update(Item)
    .where(Item.id == bindparam("item"))
    .values(
        judgment_count=Item.judgment_count + bindparam("change"),
        complete=Item.judgment_count + bindparam("change") >= bindparam("k"),
    )
)
# A project's kept item count, in step with items added.
COUNT_ITEMS = (
    update(Project).where(Project.id == bindparam("project")).values(item_count=Project.item_count + bindparam("added"))
)
# A reviewer's kept counts in a project, in step with an assignment made (assigned +1) or a judgment added or
# removed (judged +1/-1). Zero rows updated: the reviewer's first in the project, so ADD_REVIEWER_COUNTS instead.
COUNT_FOR_REVIEWER = (
    update(ReviewerCounts)
    .where(ReviewerCounts.project_id == bindparam("project"), ReviewerCounts.reviewer_id == bindparam("reviewer"))
    .values(
        assignments=ReviewerCounts.assignments + bindparam("assigned"),
        judgments=ReviewerCounts.judgments + bindparam("judged"),
    )
)
ADD_REVIEWER_COUNTS = insert(ReviewerCounts).values(
    project_id=bindparam("project"),
    reviewer_id=bindparam("reviewer"),
    assignments=bindparam("assigned"),
    judgments=bindparam("judged"),
)

# A judgment: its assignment marked judged, the item's and the reviewer's kept counts, then the judgment itself,
# all from one set of parameters (named apart from every column, so none turns into an extra SET).
JUDGMENT_STEPS = (
    update(Assignment).where(Assignment.id == bindparam("assignment")).values(state=JUDGED),
    COUNT_JUDGMENT,
    COUNT_FOR_REVIEWER,
)
ADD_JUDGMENT_ROW = insert(Judgment).values(
    item_id=bindparam("item"),
    project_id=bindparam("project"),
    reviewer_id=bindparam("reviewer"),
    assignment_id=bindparam("assignment"),
    score=bindparam("score_given"),
    post_edit=bindparam("post_edit_given"),
    flags=bindparam("flags_given"),
    comment=bindparam("comment_given"),
    seconds=bindparam("seconds_given"),
    imported=false(),
    created_at=bindparam("now"),
)
# PostgreSQL runs the steps as data-modifying CTEs of the insert: one round trip instead of four.
ADD_JUDGMENT_AT_ONCE = ADD_JUDGMENT_ROW.add_cte(
    *(step.cte(f"judgment_step_{n}") for n, step in enumerate(JUDGMENT_STEPS))
).returning(Judgment.id)
HAS_JUDGED = select(
    exists().where(Judgment.item_id == bindparam("item"), Judgment.reviewer_id == bindparam("reviewer"))
)


def _progress(scoped: bool):
    """Per project: K, items, judgments, live leases, and the reviewer's judgments, imported judgments,
    assignments and open assignments. Items and judgments come from the kept counts (a row per reviewer);
    the rest count index entries of live leases and of the reviewer's own rows."""

    def count(model, *conditions):
        return select(func.count()).select_from(model).where(model.project_id == Project.id, *conditions)

    reviewer, now = bindparam("reviewer"), bindparam("now")
    mine = aliased(ReviewerCounts)
    judged = select(func.coalesce(func.sum(ReviewerCounts.judgments), 0)).where(ReviewerCounts.project_id == Project.id)
    statement = select(
        Project.reviewers_per_item,
        Project.item_count,
        judged.scalar_subquery(),
        count(Assignment, Assignment.state == OPEN, Assignment.lease_expires_at > now).scalar_subquery(),
        func.coalesce(mine.judgments, 0),
        count(Judgment, Judgment.reviewer_id == reviewer, Judgment.assignment_id.is_(None)).scalar_subquery(),
        func.coalesce(mine.assignments, 0),
        count(Assignment, Assignment.reviewer_id == reviewer, Assignment.state == OPEN).scalar_subquery(),
    ).outerjoin(mine, and_(mine.project_id == Project.id, mine.reviewer_id == reviewer))
    return statement.where(Project.id == bindparam("project")) if scoped else statement


PROGRESS = {scoped: _progress(scoped) for scoped in (False, True)}
