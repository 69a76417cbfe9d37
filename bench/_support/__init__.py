"""What the benchmarks share: which MQTT broker to measure through, a throwaway
embedded-default configuration, and a fresh database for one run."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from anxin.crypto import generate_key_spec
from anxin.settings import Settings
from device_bridge.broker import start_private_mosquitto
from miniprogram_mock.fake_wechat import FAKE_APPID, FAKE_SECRET


def throwaway_secrets() -> dict[str, Any]:
    """Fresh secrets for a benchmark's private server (nothing falls back to a default)."""
    return {
        "jwt_secret": secrets.token_urlsafe(48),
        "face_keys": generate_key_spec("bench"),
        "wechat_appid": FAKE_APPID,
        "wechat_secret": FAKE_SECRET,
    }


def start_broker() -> tuple[Any, str, str]:
    """(private broker or None, MQTT URL or "" for the embedded amqtt, a name to print).

    MQTT_URL wins; else a private Mosquitto with `set_tcp_nodelay true` when the binary
    exists (the production setting; the shared one on this machine lacks it); else amqtt.
    """
    if url := os.environ.get("MQTT_URL", ""):
        return None, url, "env MQTT_URL"
    if shutil.which("mosquitto"):
        broker = start_private_mosquitto()
        return broker, broker.url, "mosquitto (private, tcp_nodelay)"
    return None, "", "amqtt (embedded)"


def bench_settings(name: str, mqtt_url: str) -> tuple[Settings, Path]:
    """Settings for a fresh SQLite file under a temporary folder (removed by the caller)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"anxin-bench-{name}-"))
    settings = Settings(
        database_url=f"sqlite://{tmp / 'bench.sqlite3'}",
        data_dir=tmp,
        mqtt_url=mqtt_url,
        topic_root=f"bench-{name}",
        **throwaway_secrets(),
    )
    return settings, tmp


@asynccontextmanager
async def bench_database(tmp: Path) -> AsyncIterator[str]:
    """A SQLite file under `tmp`, or, when DATABASE_URL is PostgreSQL, a fresh database
    created for the run and dropped afterwards. BENCH_SQLITE_QS adds SQLite pragmas."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite://{tmp / 'bench.sqlite3'}" + os.environ.get("BENCH_SQLITE_QS", "")
        return
    import asyncpg

    name = f"anxin_bench_{secrets.token_hex(4)}"
    admin_url = url.replace("postgresql://", "postgres://", 1)
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
