"""Checks on project names that every command reading the store makes the same way."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from medtune.errors import MedtuneError
from medtune.feedback.store import FeedbackStore, database_url


def require_project(store: FeedbackStore, project: str) -> None:
    """Refuse a project the store does not hold, listing the ones it does.

    Raises:
        MedtuneError: no such project (naming --project and the projects found).
    """
    names = store.project_names()
    if project not in names:
        known = ", ".join(repr(n) for n in names) or "none yet (create one with 'medtune feedback queue' or 'import')"
        raise MedtuneError(f"No project {project!r} in the feedback store; check --project. Projects: {known}.")


def existing_store_url(db: str | None) -> str:
    """The store URL for ``--db`` (:func:`database_url`), refusing a SQLite file that does not exist.

    For the commands that only read or judge what is there: a mistyped path would otherwise create a
    new, empty store beside the real one.

    Raises:
        MedtuneError: ``--db`` (or the default feedback.db) names a SQLite file that does not exist.
    """
    url = database_url(db)
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() == "sqlite" and path and path != ":memory:" and not Path(path).exists():
        raise MedtuneError(
            f"No feedback store at {path}: --db names a SQLite file that does not exist (default: feedback.db in the "
            "current folder). Check --db, or fill a store first with 'medtune feedback queue' or 'import'."
        )
    return url
