"""The feedback database is created and migrated by Alembic from empty, on SQLite and PostgreSQL."""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from store_checks import assert_kept_counts_match

from medtune.errors import MedtuneError
from medtune.feedback.database import MIGRATIONS_DIR, alembic_config, parse_url
from medtune.feedback.models import Base
from medtune.feedback.store import FeedbackStore, NewItem, Progress, database_url

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"projects", "items", "reviewers", "assignments", "judgments", "reviewer_counts", "alembic_version"}


def _current(url: str) -> tuple[str | None, set[str], list]:
    engine = create_engine(parse_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            diff = compare_metadata(context, Base.metadata)
            return context.get_current_revision(), set(inspect(connection).get_table_names()), diff
    finally:
        engine.dispose()


def test_an_empty_database_is_migrated_to_head_and_reopening_changes_nothing(feedback_db_url):
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert _current(feedback_db_url)[1] == set()
    with FeedbackStore(feedback_db_url) as store:
        store.create_project("p")
        store.add_items("p", [NewItem("a", "b")])
    revision, tables, diff = _current(feedback_db_url)
    assert revision == head == "0004"
    assert tables == TABLES
    assert diff == []  # the migrations build exactly the tables models.py declares
    with FeedbackStore(feedback_db_url) as store:  # re-open: no migration, data kept
        assert [i.source for i in store.items("p")] == ["a"]
    assert _current(feedback_db_url)[0] == head


def test_a_database_at_an_older_revision_is_upgraded_with_its_data(feedback_db_url):
    """A store made by revision 0001 (assignments and judgments without their project) opens, upgraded, intact."""
    engine = create_engine(parse_url(feedback_db_url))
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        # No explicit ids: PostgreSQL's sequences must hand out the next ones after the upgrade.
        statements = [
            "INSERT INTO projects (name, reviewers_per_item, lease_minutes, created_at) VALUES ('p', 1, 30, :t)",
            "INSERT INTO reviewers (name, simulated, created_at) VALUES ('ann', false, :t)",
            *(
                "INSERT INTO items (id, project_id, source, translation, model_id, model_version, created_at) "
                f"SELECT '{key}', id, 's', '{key}', '', '', :t FROM projects"
                for key in ("i1", "i2", "i3")
            ),
            "INSERT INTO assignments (item_id, reviewer_id, state, assigned_at, lease_expires_at) "
            "SELECT 'i1', id, 'judged', :t, :t FROM reviewers",
            "INSERT INTO assignments (item_id, reviewer_id, state, assigned_at, lease_expires_at) "
            "SELECT 'i2', id, 'open', :t, :far FROM reviewers",
            "INSERT INTO judgments (item_id, reviewer_id, assignment_id, score, flags, imported, created_at) "
            "SELECT 'i1', reviewer_id, id, 0.75, '[\"fluency\"]', false, :t FROM assignments WHERE item_id = 'i1'",
        ]
        for statement in statements:
            connection.execute(text(statement), {"t": datetime(2026, 1, 5, 9), "far": datetime(2999, 1, 1)})
    engine.dispose()
    with FeedbackStore(feedback_db_url) as store:
        ann = store.reviewer("ann")
        (judgment,) = store.judgments("p")
        assert (judgment.item_id, judgment.score, judgment.flags) == ("i1", 0.75, ("fluency",))
        assert store.progress(ann, "p") == Progress(done=1, total=3)
        assert_kept_counts_match(store)  # 0003 and 0004 filled the kept counts from the rows there
        assert store.next_item(ann, "p").id == "i2"  # her open assignment survived the upgrade
        store.submit(ann, "i2", 0.5)
        assert store.next_item(ann, "p").id == "i3"
    revision, _tables, diff = _current(feedback_db_url)
    assert revision == "0004" and diff == []


def test_a_database_from_a_newer_medtune_is_refused(feedback_db_url):
    FeedbackStore(feedback_db_url).close()
    engine = create_engine(parse_url(feedback_db_url))
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(MedtuneError, match="schema revision '9999'.*newer medtune"):
        FeedbackStore(feedback_db_url)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    with FeedbackStore(database_url(str(tmp_path / "f.db"))) as store, store._engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_database_url_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert database_url(None) == f"sqlite:///{tmp_path / 'feedback.db'}"
    assert database_url("sub/f.db") == f"sqlite:///{tmp_path / 'sub' / 'f.db'}"
    assert database_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert parse_url("postgresql://u@h/db").drivername == "postgresql+psycopg"


def test_bad_locations_are_user_errors(tmp_path):
    with pytest.raises(MedtuneError, match="the folder .*missing.* does not exist"):
        FeedbackStore(database_url(str(tmp_path / "missing" / "f.db")))
    garbage = tmp_path / "not-a-db.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(MedtuneError, match="cannot open the feedback database"):
        FeedbackStore(database_url(str(garbage)))
    assert garbage.read_bytes() == b"this is not a database" * 100  # never overwritten
    with pytest.raises(MedtuneError, match="neither a file path nor a database URL"):
        FeedbackStore("::not a url://")


def test_the_migrations_ship_in_the_wheel():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["medtune.feedback"]
    shipped = {p for pattern in patterns for p in (ROOT / "src/medtune/feedback").glob(pattern)}
    needed = {p for p in MIGRATIONS_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert needed and needed <= shipped
