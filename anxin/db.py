"""Database wiring: one Tortoise config for the server, the CLI and the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url

from anxin.settings import Settings

APP_LABEL = "anxin"


def _sqlite_comments_without_semicolons() -> None:
    """Tortoise 1.1's SQLite schema editor splits DDL on every ';', also inside the
    /* comment */ it writes from a model's docstring, which breaks CREATE TABLE. Escape
    ';' in comments so a docstring can hold any sentence."""
    from tortoise.migrations.schema_editor.sqlite import SqliteSchemaEditor

    original = SqliteSchemaEditor._get_escape_translation_table.__func__  # type: ignore[attr-defined]

    def table(cls: type) -> list[str]:
        t = original(cls)
        t[ord(";")] = ","
        return t

    SqliteSchemaEditor._get_escape_translation_table = classmethod(table)  # type: ignore[method-assign,assignment]


_sqlite_comments_without_semicolons()


# SQLite connection pragmas (Tortoise runs `PRAGMA key=value` for each query parameter
# of the URL; it already sets journal_mode=WAL). With WAL, synchronous=NORMAL skips the
# fsync on every commit and syncs at checkpoints instead: the database stays consistent
# after a crash, and a process crash loses nothing; a power loss or OS crash may lose
# the transactions committed since the last checkpoint. That is the trade we take for
# the embedded deployment (a commit otherwise costs an fsync: ~10 ms on a slow disk).
# busy_timeout lets a second process (CLI, a second bridge) wait for the write lock
# instead of failing at once with "database is locked". A URL that names a pragma keeps
# its own value.
SQLITE_PRAGMAS = {"synchronous": "NORMAL", "busy_timeout": "5000"}


def _with_sqlite_pragmas(database_url: str) -> str:
    base, _, query = database_url.partition("?")
    given = {part.split("=", 1)[0] for part in query.split("&") if part}
    extra = [f"{k}={v}" for k, v in SQLITE_PRAGMAS.items() if k not in given]
    if not extra:
        return database_url
    return base + "?" + "&".join([*(p for p in query.split("&") if p), *extra])


class _KeepSessionConnection(asyncpg.connection.Connection):
    """A pooled connection handed back without the reset query: Tortoise takes a pool
    connection per statement, and asyncpg's default reset (advisory locks, cursors,
    LISTEN, session settings: none of which this service uses) is one more round trip
    each time, doubling the cost of every query. An open transaction is still rolled
    back on release (asyncpg does that whatever this returns)."""

    def get_reset_query(self) -> str:
        return ""


def tortoise_config(database_url: str) -> dict[str, Any]:
    connection: str | dict[str, Any] = database_url
    if database_url.startswith("postgresql://"):
        database_url = "postgres://" + database_url.removeprefix("postgresql://")
    if database_url.startswith("postgres://"):
        connection = expand_db_url(database_url)
        connection["credentials"].setdefault("connection_class", _KeepSessionConnection)
    if database_url.startswith("sqlite://"):
        connection = _with_sqlite_pragmas(database_url)
    return {
        "connections": {"default": connection},
        "apps": {
            APP_LABEL: {
                "models": ["models"],
                "migrations": "migrations",
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _ensure_sqlite_dir(database_url: str) -> None:
    if database_url.startswith("sqlite://") and ":memory:" not in database_url:
        Path(database_url.removeprefix("sqlite://").partition("?")[0]).parent.mkdir(
            parents=True, exist_ok=True
        )


async def migrate(database_url: str) -> None:
    """Apply every migration in `migrations/` (the one way the schema changes)."""
    from tortoise.migrations.api.migrate import migrate as run_migrations

    _ensure_sqlite_dir(database_url)
    await run_migrations(config=tortoise_config(database_url))
    await Tortoise.close_connections()


async def init_db(settings: Settings, *, apply_migrations: bool = True) -> None:
    if apply_migrations:
        await migrate(settings.database_url)
    _ensure_sqlite_dir(settings.database_url)
    # The global fallback lets requests and background tasks outside the task that ran
    # the lifespan (ASGI servers, asgi-lifespan in tests) see the same connections.
    await Tortoise.init(config=tortoise_config(settings.database_url), _enable_global_fallback=True)


# Facts read from the database that never change once written (a community's time zone:
# set when the community is created, never updated), kept by each process while its
# connections are open and emptied when they close (a process stopping, a test moving to
# another database). Nothing a decision depends on belongs here.
IMMUTABLE_FACTS: dict[tuple[str, int], Any] = {}


async def close_db() -> None:
    IMMUTABLE_FACTS.clear()
    await Tortoise.close_connections()
    # Tortoise caches SQL per connection *name*; a later init on another dialect in the
    # same process (the test suite runs SQLite, then PostgreSQL) must not reuse it.
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    EXECUTOR_CACHE.clear()


async def make_migrations(name: str | None = None) -> list[str]:
    """Write a migration for whatever the models changed; returns the files written."""
    from tortoise.migrations.autodetector import MigrationAutodetector
    from tortoise.migrations.writer import format_migration_name

    config = tortoise_config("sqlite://:memory:")
    await Tortoise.init(config=config)
    try:
        writers = await MigrationAutodetector(Tortoise.apps, config["apps"]).changes()
    finally:
        await Tortoise.close_connections()
    written = []
    for writer in writers:
        if name:
            writer.name = format_migration_name(int(writer.name.split("_", 1)[0]), name)
        written.append(str(writer.write()))
    return written


async def pending_model_changes() -> int:
    """How many migration files the models would need now (0 when in step)."""
    from tortoise.migrations.autodetector import MigrationAutodetector

    config = tortoise_config("sqlite://:memory:")
    await Tortoise.init(config=config)
    try:
        return len(await MigrationAutodetector(Tortoise.apps, config["apps"]).changes())
    finally:
        await Tortoise.close_connections()
