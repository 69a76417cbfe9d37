"""The mini-program's typed TypeScript client (clients/miniprogram), generated from
docs/openapi.json with openapi-typescript and called through openapi-fetch, walks a
resident through login -> join -> open door against the running server (both backends).

Compiling the walk with `tsc` (strict) is the type check: a breaking change in the API,
once the client is regenerated, fails here as a compile error.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import uvicorn

from models import AccessEvent, StaffRoleName
from tests.devices import register_device, simulator
from tests.helpers import STAFF_PASSWORD, make_staff, make_world
from tests.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "miniprogram"
NODE = shutil.which("node")


def _need_node() -> str:
    if NODE and (CLIENT / "node_modules" / ".bin" / "tsc").exists():
        return NODE
    reason = "node or clients/miniprogram/node_modules missing (bash scripts/test installs them)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _npx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLIENT / "node_modules" / ".bin" / args[0]), *args[1:]],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def walk_js() -> Path:
    _need_node()
    built = _npx("tsc", "-p", ".")
    assert built.returncode == 0, built.stdout + built.stderr
    return CLIENT / "build" / "scripts" / "walk.js"


def test_generated_types_match_the_committed_document() -> None:
    _need_node()
    out = CLIENT / "build" / "schema.check.d.ts"
    out.parent.mkdir(exist_ok=True)
    gen = _npx("openapi-typescript", "../../docs/openapi.json", "-o", str(out))
    assert gen.returncode == 0, gen.stderr
    assert out.read_text() == (CLIENT / "src" / "schema.d.ts").read_text(), (
        "clients/miniprogram/src/schema.d.ts is stale: run `npm run generate` there"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_generated_client_walks_login_join_open(stack: Stack, walk_js: Path) -> None:
    world = await make_world(units=1, rooms_per_unit=2)
    staff = await make_staff(world.community, StaffRoleName.ADMIN)
    from tests.helpers import staff_headers

    admin_h = await staff_headers(stack, staff)
    gate = await register_device(
        stack, world.community.id, admin_h, kind="face_gate", methods=["face", "remote"]
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(stack.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):  # uvicorn has no started event to await
            if server.started:
                break
            await asyncio.sleep(0.02)  # noqa: ASYNC110
        room = world.rooms[1]
        env = {
            **os.environ,
            "ANXIN_URL": f"http://127.0.0.1:{port}",
            "WECHAT_URL": stack.wechat_url,
            "STAFF_USERNAME": staff.username,
            "STAFF_PASSWORD": STAFF_PASSWORD,
            "COMMUNITY_ID": str(world.community.id),
            "BUILDING": world.buildings[0].name,
            "UNIT": world.units[0].name,
            "ROOM": room.number,
        }
        async with simulator(stack, gate):
            proc = await asyncio.create_subprocess_exec(
                _need_node(),
                str(walk_js),
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        server.should_exit = True
        await serving
    assert proc.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["state_before"] == "pending" and result["state_after"] == "approved"
    assert result["door_id"] == gate["id"] and result["opened"] is True
    assert result["event_id"] == result["retry_event_id"] and result["replayed"] == "true"
    assert (result["missing_status"], result["missing_code"]) == (404, "not_found")
    assert result["missing_message"] == "door not found"  # the client asked for English
    opened = AccessEvent.filter(device_id=gate["id"], reason="remote_open", room_id=room.id)
    assert await opened.count() == 1
