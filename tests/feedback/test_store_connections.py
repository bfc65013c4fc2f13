"""The store's PostgreSQL connections: reads in autocommit, and pooled connections pinged only after sitting idle."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from medtune.feedback import database
from medtune.feedback.store import FeedbackStore, NewItem


def _terminate_other_connections(url: str) -> int:
    """Make the server drop every other connection to the test database (as a restart would); returns how many."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(ended)


def test_an_idle_pooled_connection_the_server_dropped_is_replaced(postgres_db_url, monkeypatch):
    monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)  # every pooled connection counts as idle
    with FeedbackStore(postgres_db_url) as store:
        store.create_project("p")
        assert _terminate_other_connections(postgres_db_url) >= 1
        assert store.project_names() == ["p"]  # the dead connection was pinged and replaced, not used
        assert store.add_items("p", [NewItem("s", "t")]) == (1, 0)


def test_a_busy_pooled_connection_is_not_pinged(postgres_db_url, monkeypatch):
    # The other side of the trade: a connection back in use within IDLE_PING_SECONDS is used as it is, so the
    # server dropping it fails that one call (and SQLAlchemy renews the pool for the next).
    monkeypatch.setattr(database, "IDLE_PING_SECONDS", 3600.0)
    with FeedbackStore(postgres_db_url) as store:
        store.create_project("p")
        assert _terminate_other_connections(postgres_db_url) >= 1
        with pytest.raises(OperationalError):
            store.project_names()
        assert store.project_names() == ["p"]


def test_reads_run_outside_a_transaction_and_writes_inside_one(postgres_db_url):
    with FeedbackStore(postgres_db_url) as store:
        with store._read() as connection:
            connection.exec_driver_sql("SELECT 1")
            # Autocommit: the statement ran without BEGIN, so no transaction is left open on the server.
            assert connection.connection.driver_connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with store._write() as connection:
            connection.exec_driver_sql("SELECT 1")
            assert (
                connection.connection.driver_connection.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
            )
