"""Opening the feedback database: the engine (SQLite in WAL mode, or any SQLAlchemy URL) and its migrations.

SQLite writes start with ``BEGIN IMMEDIATE`` so two writers never both read-then-write the same rows;
PostgreSQL writes rely on row locks taken by the store (``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, NoSuchModuleError

from medtune.errors import MedtuneError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Seconds a writer waits for another process's SQLite write lock before giving up.
SQLITE_BUSY_SECONDS = 30
# A pooled server connection idle longer than this is pinged before use (the server may have restarted meanwhile).
IDLE_PING_SECONDS = 1.0
# Server connections kept open, and opened on top under bursts: the web app runs at most 40 requests at once
# (anyio's thread pool), each holding one connection.
POOL_SIZE, POOL_OVERFLOW = 16, 24
# Any fixed number: serialises concurrent first-time migrations of one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x6D6564747E6E


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL, with plain ``postgresql://`` mapped to the psycopg 3 driver medtune installs."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise MedtuneError(
            f"--db {url!r} is neither a file path nor a database URL; give a path such as feedback.db "
            "or a URL such as postgresql://user@host/dbname."
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def shown(url: URL) -> str:
    """The URL for messages, password hidden."""
    return url.render_as_string(hide_password=True)


def open_engine(url: URL) -> Engine:
    """An engine for ``url``: SQLite gets WAL, foreign keys, a busy timeout and ``BEGIN IMMEDIATE`` on writes.

    Raises:
        MedtuneError: the driver is missing (names the extra to install) or the SQLite folder does not exist.
    """
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    try:
        engine = create_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise MedtuneError(
            f"--db {shown(url)}: the database driver is not installed ({exc}). For PostgreSQL run "
            "pip install 'medtune[postgres]'; other databases need their SQLAlchemy driver."
        ) from None
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection before use only when it sat idle over IDLE_PING_SECONDS, replacing it if dead.

    SQLAlchemy's pool_pre_ping pings on every checkout: a round trip per store call, a fifth of a reviewer
    request's. A server restart happens while connections sit idle; one that drops a busy connection fails
    that request, and SQLAlchemy then renews the whole pool.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection, record) -> None:
        record.info["medtune_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.get("medtune_idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
            dbapi_connection.rollback()
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc  # the pool connects afresh


def _sqlite_engine(url: URL) -> Engine:
    if url.database and url.database != ":memory:":
        folder = Path(url.database).parent
        if not folder.is_dir():
            raise MedtuneError(
                f"--db {url.database}: the folder {folder} does not exist; create it or choose another path."
            )
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # medtune emits BEGIN itself (below): pysqlite's implicit BEGIN is DEFERRED, which lets two writers deadlock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL keeps every committed transaction through a killed process (what the reviewer server
        # must survive) without an fsync per commit, which would cap a store at ~100 judgments/s on common disks;
        # only an OS crash or power cut may roll back the last commits, and never corrupts the file.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        mode = "IMMEDIATE" if connection.get_execution_options().get("medtune_write") else "DEFERRED"
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def alembic_config() -> Config:
    """Alembic's configuration for the migrations shipped inside the package (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(engine: Engine, url: URL) -> str:
    """Bring the database to the latest revision in one transaction; a database already there is left alone.

    Returns the revision. Raises MedtuneError when the database cannot be opened or was written by a newer medtune.
    """
    config = alembic_config()
    scripts = ScriptDirectory.from_config(config)
    head = scripts.get_current_head()
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.execution_options(medtune_write=True).connect() as connection:
            if sqlite:
                # SQLite migrations copy and drop tables; with foreign keys on, dropping a table would fire its
                # ON DELETE actions on the rows pointing at it. Off outside the transaction (inside, it is ignored).
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
            try:
                with connection.begin():
                    if engine.dialect.name == "postgresql":
                        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
                    current = MigrationContext.configure(connection).get_current_revision()
                    if current == head:
                        return head
                    if current is not None and current not in {s.revision for s in scripts.walk_revisions()}:
                        raise MedtuneError(
                            f"--db {shown(url)}: the feedback database is at schema revision {current!r}, which "
                            f"this medtune does not know (latest: {head!r}); it was written by a newer medtune, "
                            "so upgrade medtune."
                        )
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                    if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                        raise MedtuneError(
                            f"--db {shown(url)}: migrating the feedback database would break its references; "
                            "nothing was changed. Please report this with the database attached."
                        )
            finally:
                if sqlite:
                    connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
    except DBAPIError as exc:
        raise MedtuneError(
            f"--db {shown(url)}: cannot open the feedback database ({exc.orig}). Check the path or URL, "
            "that the server is running, and that the file is a medtune feedback database."
        ) from None
    return head
