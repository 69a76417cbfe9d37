"""The layers hold: each process imports what its role needs, and nothing more.

A bridge process (`anxin bridge`, role `bridge`) is built, started and stopped in a fresh
interpreter; it must not have imported FastAPI, Starlette or any HTTP adapter module.
The import-linter contracts (pyproject.toml) are checked by `scripts/test`; this test
checks what those contracts cannot see: what a real process loads at run time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from anxin.runtime import Key, MissingService, Runtime
from anxin.settings import Settings
from boot.roles import ROLES, build_runtime
from device_bridge.service import BRIDGE
from domain.faces.library import FACE_LIBRARY
from domain.ports import DEVICES
from notifications.dispatcher import DISPATCHER

ROOT = Path(__file__).resolve().parents[1]
HTTP_MODULES = ("fastapi", "starlette", "uvicorn", "api", "console", "video", "police_link")

PROBE = """
import asyncio, json, sys
from anxin.settings import get_settings
from boot.roles import build_runtime

async def main():
    runtime = build_runtime(get_settings(), sys.argv[1])
    await runtime.start()
    await runtime.stop()
    roots = sorted({m.split(".")[0] for m in sys.modules})
    print(json.dumps({"roots": roots, "services": runtime.keys()}))

asyncio.run(main())
"""


def _run_role(role: str, tmp_path: Path) -> dict[str, list[str]]:
    # A clean environment but for the secrets a server refuses to start without.
    secrets_ = ("ANXIN_JWT_SECRET", "ANXIN_FACE_KEYS", "ANXIN_WECHAT_APPID", "ANXIN_WECHAT_SECRET")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANXIN_") or k in secrets_}
    for k in ("DATABASE_URL", "REDIS_URL", "MQTT_URL"):
        env.pop(k, None)
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=f"sqlite://{tmp_path / 'layers.sqlite3'}",
        ANXIN_DATA_DIR=str(tmp_path),
        ANXIN_EMBEDDED_BROKER_PORT="0",
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE, role],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_bridge_process_loads_no_http_adapter(tmp_path: Path) -> None:
    loaded = _run_role("bridge", tmp_path)
    assert not set(HTTP_MODULES) & set(loaded["roots"]), loaded["roots"]
    assert {"device_bridge", "domain"} <= set(loaded["roots"])
    assert loaded["services"] == [
        "bridge",
        "devices",
        "passes",
        "faces",
        "face_library",
        "terminal_replacements",
    ]


def test_an_all_in_one_process_has_every_capability() -> None:
    runtime = build_runtime(Settings(), "all")
    names = set(runtime.keys())
    assert {"bridge", "devices", "wechat", "dispatcher", "scheduler", "intercom_realtime"} <= names
    assert runtime.get(DEVICES) is runtime.get(BRIDGE)  # the bridge is the domain's port
    assert runtime.settings.run_bridge


def test_roles_decide_who_consumes_device_events() -> None:
    on = Settings(run_bridge=True)
    assert not build_runtime(on, "api").settings.run_bridge
    assert not build_runtime(on, "scheduler").settings.run_bridge
    assert build_runtime(Settings(run_bridge=False), "bridge").settings.run_bridge
    assert build_runtime(Settings(run_bridge=False)).role == "api"
    scheduler = build_runtime(on, "scheduler")
    assert scheduler.has(DISPATCHER) and scheduler.has(FACE_LIBRARY)
    assert not scheduler.has(Key("intercom_realtime"))
    with pytest.raises(ValueError):
        build_runtime(on, "everything")
    assert set(ROLES) == {"all", "api", "bridge", "scheduler", "police"}


def test_services_are_found_by_typed_keys_only() -> None:
    runtime = Runtime(Settings())
    with pytest.raises(MissingService):
        runtime.get(DISPATCHER)
    thing: Key[list[int]] = Key("thing")
    runtime.provide(thing, [1])
    with pytest.raises(ValueError):
        runtime.provide(thing, [2])
    assert runtime.get(thing) == [1] and runtime.keyring is runtime.keyring
    assert not hasattr(runtime, "add") and not hasattr(runtime, "services")
