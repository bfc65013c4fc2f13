"""Fixtures for the feedback tests: a feedback database on each backend, SQLite and a real PostgreSQL server.

* ``feedback_db_url``: a fresh, empty database URL per test, parametrized ``sqlite`` / ``postgresql``.
* ``feedback_store``: a ``FeedbackStore`` opened on it (closed after the test).
* ``postgres_admin_url``: the throwaway PostgreSQL server's maintenance URL (session-scoped).

The PostgreSQL server is started once per session from the system binaries (initdb + pg_ctl on 127.0.0.1, a
free port, run as the ``postgres`` user when we are root) and stopped at the end. ``MEDTUNE_TEST_POSTGRES_URL``
(a URL whose user may create databases) replaces it. Without binaries the PostgreSQL tests skip, except
under ``CI=true``, where they fail: CI installs PostgreSQL (.ci/run).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from medtune.feedback.store import FeedbackStore

BACKENDS = ("sqlite", "postgresql")


def _postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _missing_postgres(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must test the feedback store on PostgreSQL (.ci/run installs it with apt).")
    pytest.skip(reason)


def _as_server_user(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: run them as the postgres user.
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL URL (database ``postgres``) on which the tests may create and drop databases."""
    given = os.environ.get("MEDTUNE_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    bin_dir = _postgres_bin()
    if bin_dir is None:
        _missing_postgres("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    if os.geteuid() == 0:
        try:
            server_user = pwd.getpwnam("postgres")
        except KeyError:
            _missing_postgres("running as root and there is no 'postgres' user to run the PostgreSQL server as")
    # Not pytest's tmp_path: its parent folders are private to root, and the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="medtune-pg-"))
    if os.geteuid() == 0:
        os.chown(folder, server_user.pw_uid, server_user.pw_gid)
    data, log = folder / "data", folder / "server.log"
    port = _free_port()

    def run(*command: str) -> None:
        subprocess.run(_as_server_user([str(bin_dir / command[0]), *command[1:]]), check=True, capture_output=True)

    try:
        run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        # fsync off: a throwaway server; the store's durability is SQLite's and PostgreSQL's own business.
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=200"
        run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip()[-800:]
        server_log = log.read_text(errors="replace")[-800:] if log.exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"could not start a throwaway PostgreSQL server ({exc.cmd[0]}): {detail}\n{server_log}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


def _psycopg_dsn(url: str) -> str:
    """A libpq connection string for a SQLAlchemy URL (psycopg does not read the +driver part)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def postgres_db_url(postgres_admin_url) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    name = f"medtune_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_psycopg_dsn(postgres_admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(postgres_admin_url).set(database=name)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    yield url.render_as_string(hide_password=False)
    with psycopg.connect(_psycopg_dsn(postgres_admin_url), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def feedback_db_url(request, tmp_path) -> str:
    """A fresh, empty feedback database URL, once on SQLite (a file in tmp_path) and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    return request.getfixturevalue("postgres_db_url")


@pytest.fixture
def feedback_store(feedback_db_url) -> Iterator[FeedbackStore]:
    """A FeedbackStore on ``feedback_db_url`` (migrated, empty), closed after the test."""
    store = FeedbackStore(feedback_db_url)
    yield store
    store.close()
