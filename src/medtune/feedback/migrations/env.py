"""Alembic environment for the feedback store: run by ``medtune.feedback.store`` on a connection it opened.

The store passes its connection in ``config.attributes["connection"]``, so the migration runs inside the
store's own transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: under an advisory lock).
"""

from __future__ import annotations

from alembic import context

from medtune.feedback.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
