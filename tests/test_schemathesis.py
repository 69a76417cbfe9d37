"""Schemathesis against the app (served on a free port from the test's own stack), for
every operation, with a resident's and a staff admin's token and bounded examples: no
response may break its declared schema or status codes, and none may be a 5xx.

The resident lives in the community, so the door they may open exists and its simulator
answers: remote opens succeed (or are rate-limited, 429, as declared) instead of timing
out. Both backends.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import uvicorn

from models import Resident, StaffRoleName
from tests.devices import register_device, simulator
from tests.helpers import approved_resident, make_staff, make_world, staff_headers
from tests.stack import Stack

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)
# Deleting the account ends the resident's session: every operation fuzzed after it would
# only see 401 (and the resident would be gone, which the test checks is not so). Account
# deletion is covered by tests/test_leaving.py and the authorization matrix.
EXCLUDED = ["deleteMyAccount"]
MAX_EXAMPLES = int(os.environ.get("ANXIN_SCHEMATHESIS_EXAMPLES", "6"))
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _run(url: str, token: str, report: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "--config-file",
        str(CONFIG),
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        *[arg for oid in EXCLUDED for arg in ("--exclude-operation-id", oid)],
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "20261201",
        "--workers",
        "1",
        "--no-shrink",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "30",
        "--header",
        f"Authorization: Bearer {token}",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 900)
    return proc.returncode or 0, out.decode(errors="replace")


def _failures(out: str) -> str:
    """The failures section of a run's output (the part that says what broke)."""
    start = out.find("FAILURES")
    return out[start if start >= 0 else 0 :][:20000]


async def test_no_response_breaks_the_contract(stack: Stack, tmp_path: Path) -> None:
    world = await make_world(units=1, rooms_per_unit=2)
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    resident = await approved_resident(stack, world.rooms[0], admin_h)
    gate = await register_device(
        stack, world.community.id, admin_h, kind="face_gate", methods=["face", "remote"]
    )
    tokens = {
        "resident": resident.access_token or "",
        "staff": admin_h["Authorization"].split(" ", 1)[1],
    }
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(stack.app, host="127.0.0.1", port=port, lifespan="off", log_level="error")
    )
    serving = asyncio.create_task(server.serve())
    saved = stack.settings.open_ack_timeout_s
    stack.settings.open_ack_timeout_s = 2.0
    results: dict[str, tuple[int, str]] = {}
    try:
        for _ in range(500):  # uvicorn has no started event to await
            if server.started:
                break
            await asyncio.sleep(0.02)  # noqa: ASYNC110
        async with simulator(stack, gate):
            for who, token in tokens.items():
                results[who] = await _run(
                    f"http://127.0.0.1:{port}", token, tmp_path / f"{who}.xml"
                )
    finally:
        stack.settings.open_ack_timeout_s = saved
        server.should_exit = True
        await serving
        await resident.aclose()
    failed = {who: out for who, (code, out) in results.items() if code != 0}
    for who, out in failed.items():
        (tmp_path / f"{who}.log").write_text(out)
    report = "\n".join(f"--- as {who}:\n{_failures(out)}" for who, out in failed.items())
    assert not failed, report
    for _, out in results.values():
        assert "Tested:" in out  # it ran the operations (the summary says how many)
    # The resident's run stayed signed in to the end (nothing it fuzzed ended the account).
    assert await Resident.filter(openid=resident.openid).exists()
