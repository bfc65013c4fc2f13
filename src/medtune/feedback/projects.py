"""Checks on project names that every command reading the store makes the same way."""

from __future__ import annotations

from medtune.errors import MedtuneError
from medtune.feedback.store import FeedbackStore


def require_project(store: FeedbackStore, project: str) -> None:
    """Refuse a project the store does not hold, listing the ones it does.

    Raises:
        MedtuneError: no such project (naming --project and the projects found).
    """
    names = store.project_names()
    if project not in names:
        known = ", ".join(repr(n) for n in names) or "none yet (create one with 'medtune feedback queue' or 'import')"
        raise MedtuneError(f"No project {project!r} in the feedback store; check --project. Projects: {known}.")
