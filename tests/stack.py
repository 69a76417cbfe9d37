"""The running service under test, on either backend.

`sqlite`: the embedded default (SQLite file, in-process bus and counters).
`postgres`: PostgreSQL (a fresh database per run), Redis (a fresh key prefix per run) and
Mosquitto (a fresh topic root per run).
Each is a whole app started through its lifespan and reached over ASGI; the fake WeChat
server runs on loopback for both.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from anxin.crypto import generate_key_spec
from anxin.runtime import Runtime
from anxin.settings import Settings, get_settings
from miniprogram_mock.fake_wechat import FAKE_APPID, FAKE_SECRET

PG_ADMIN_URL = os.environ.get("ANXIN_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ANXIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MQTT_URL = os.environ.get("ANXIN_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def configure_test_secrets() -> None:
    """The process environment a configured server would have: a random JWT secret, a
    face key, and the fake WeChat's credentials (fine outside production)."""
    os.environ.setdefault("ANXIN_JWT_SECRET", secrets.token_urlsafe(48))
    os.environ.setdefault("ANXIN_FACE_KEYS", generate_key_spec("test1"))
    os.environ.setdefault("ANXIN_WECHAT_APPID", FAKE_APPID)
    os.environ.setdefault("ANXIN_WECHAT_SECRET", FAKE_SECRET)
    get_settings.cache_clear()


@dataclass
class Stack:
    backend: str
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    wechat_url: str

    @property
    def runtime(self) -> Runtime:
        return self.app.state.runtime


async def postgres_available() -> bool:
    try:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    name = f"anxin_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def purge_redis_prefix(prefix: str) -> None:
    import redis.asyncio as aioredis

    r = aioredis.from_url(REDIS_URL)
    try:
        keys = [k async for k in r.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await r.delete(*keys)
    finally:
        await r.aclose()


def stack_settings(backend: str, database_url: str, wechat_url: str, data_dir: Path) -> Settings:
    configure_test_secrets()  # face keys and WeChat credentials from the environment
    run = secrets.token_hex(4)
    extra: dict[str, object] = {}
    if backend == "postgres":
        # The server stack: PostgreSQL, Redis and Mosquitto. SQLite runs the embedded
        # default: in-process bus and counters, amqtt broker on loopback.
        extra["redis_url"] = REDIS_URL
        extra["mqtt_url"] = MQTT_URL
    return Settings(
        database_url=database_url,
        wechat_base_url=wechat_url,
        redis_prefix=f"anxin-test-{run}:",
        topic_root=f"anxin-test-{run}",
        data_dir=data_dir,
        jwt_secret=secrets.token_urlsafe(32),
        # Hundreds of test residents log in from one address within a minute; the login
        # rate-limit tests lower these on their own.
        wechat_login_per_ip_per_minute=1_000_000,
        wechat_login_global_per_minute=1_000_000,
        **extra,
    )


@asynccontextmanager
async def running_stack(backend: str, wechat_url: str, data_dir: Path) -> AsyncIterator[Stack]:
    from boot.roles import build_app

    @asynccontextmanager
    async def database() -> AsyncIterator[str]:
        if backend == "postgres":
            async with fresh_postgres_database() as url:
                yield url
        else:
            yield f"sqlite://{data_dir / 'anxin.sqlite3'}"

    async with database() as database_url:
        settings = stack_settings(backend, database_url, wechat_url, data_dir)
        app = build_app(settings)
        try:
            async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://anxin.test", timeout=30
                ) as client:
                    yield Stack(backend, app, client, settings, wechat_url)
        finally:
            if settings.redis_url:
                await purge_redis_prefix(settings.redis_prefix)
