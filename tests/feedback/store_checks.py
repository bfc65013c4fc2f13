"""Checks on the feedback store's database shared by the store tests."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from medtune.feedback.models import Assignment, Item, Judgment, Project, ReviewerCounts


def assert_kept_counts_match(store) -> None:
    """Every count the store keeps equals a fresh recount: each item's judgments and completeness against K,
    each project's items, and each reviewer's assignments and judgments per project."""
    counted = select(func.count()).where(Judgment.item_id == Item.id).scalar_subquery()
    with store._read() as connection:
        rows = connection.execute(
            select(Item.judgment_count, counted, Item.complete, Project.reviewers_per_item).join(Project)
        ).all()
        assert rows and all(kept == actual and complete == (actual >= k) for kept, actual, complete, k in rows), rows
        items = select(func.count()).where(Item.project_id == Project.id).scalar_subquery()
        projects = connection.execute(select(Project.name, Project.item_count, items)).all()
        assert all(kept == actual for _, kept, actual in projects), projects
        kept = {
            (p, r): (a, j)
            for p, r, a, j in connection.execute(
                select(
                    ReviewerCounts.project_id,
                    ReviewerCounts.reviewer_id,
                    ReviewerCounts.assignments,
                    ReviewerCounts.judgments,
                )
            )
        }
        assigned = Counter(
            tuple(row) for row in connection.execute(select(Assignment.project_id, Assignment.reviewer_id))
        )
        judged = Counter(tuple(row) for row in connection.execute(select(Judgment.project_id, Judgment.reviewer_id)))
    recounted = {pair: (assigned[pair], judged[pair]) for pair in assigned | judged}
    # A pair whose counts went back to zero (an undone judgment) may keep its row.
    assert {pair: counts for pair, counts in kept.items() if counts != (0, 0)} == recounted
