"""Checks on the feedback store's database shared by the store tests."""

from __future__ import annotations

from sqlalchemy import func, select

from medtune.feedback.models import Item, Judgment, Project


def assert_item_counts_match(store) -> None:
    """Each item's kept judgment count and completeness equal a fresh count of its judgments against K."""
    counted = select(func.count()).where(Judgment.item_id == Item.id).scalar_subquery()
    with store._read() as connection:
        rows = connection.execute(
            select(Item.judgment_count, counted, Item.complete, Project.reviewers_per_item).join(Project)
        ).all()
    assert rows and all(kept == actual and complete == (actual >= k) for kept, actual, complete, k in rows), rows
