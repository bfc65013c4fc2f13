"""The reviewer app as each uvicorn worker process builds it (``medtune feedback serve --workers N``).

uvicorn starts its workers as fresh processes that import the app by name, so the settings travel in
an environment variable, and each worker opens its own connection pool to the store.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from fastapi import FastAPI

SETTINGS_VARIABLE = "MEDTUNE_FEEDBACK_SERVE_SETTINGS"
APP_FACTORY = "medtune.feedback.worker_app:app_from_environment"


@dataclass(frozen=True)
class WorkerSettings:
    """What each worker needs to build the same app: the store URL and ``create_feedback_app``'s options."""

    url: str
    project: str | None
    glossary: str | None  # a glossary spec for load_glossary, or None for no highlighting
    rate_limit: float
    burst: int
    max_body_bytes: int

    def export(self) -> None:
        """Put the settings where the worker processes (started after this) will read them."""
        os.environ[SETTINGS_VARIABLE] = json.dumps(asdict(self))


def app_from_environment() -> FastAPI:
    """The reviewer app for the settings in ``$MEDTUNE_FEEDBACK_SERVE_SETTINGS`` (uvicorn's app factory)."""
    from medtune.data.glossary import load_glossary
    from medtune.feedback.app import create_feedback_app
    from medtune.feedback.store import FeedbackStore

    settings = WorkerSettings(**json.loads(os.environ[SETTINGS_VARIABLE]))
    # Not closed at exit: the worker process ends with it, and every commit is already durable.
    store = FeedbackStore(settings.url)
    return create_feedback_app(
        store,
        project=settings.project,
        glossary=load_glossary(settings.glossary) if settings.glossary else (),
        rate_limit=settings.rate_limit,
        burst=settings.burst,
        max_body_bytes=settings.max_body_bytes,
    )
