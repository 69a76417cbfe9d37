"""The `anxin` command line: migrations, staff accounts, the demo seed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from auth.passwords import verify_password
from boot.demo import DEMO_STAFF, seed_demo
from models import Building, City, Community, Room, StaffAccount, StaffRole, Unit
from tests.stack import Stack, fresh_postgres_database, postgres_available

ROOT = Path(__file__).resolve().parents[1]


def anxin(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    # A child process: the CLI initialises Tortoise, which is process-global.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANXIN_")}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env["PYTHONPATH"] = str(ROOT)
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "boot.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_help() -> None:
    proc = anxin("--help")
    assert proc.returncode == 0
    for command in ("serve", "demo", "migrate", "makemigrations", "create-staff"):
        assert command in proc.stdout


def test_makemigrations_check_agrees() -> None:
    proc = anxin("makemigrations", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "models and migrations agree" in proc.stdout


def test_migrate_sqlite_file_twice(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "anxin.sqlite3"
    url = f"sqlite://{db}"
    for _ in range(2):  # applying again is a no-op, not an error
        proc = anxin("migrate", database_url=url)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "migrations applied" in proc.stdout
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"resident", "membership", "staff_account", "refresh_token", "audit_log"} <= tables


async def test_migrate_postgres() -> None:
    if not await postgres_available():
        pytest.skip("PostgreSQL not reachable")
    async with fresh_postgres_database() as url:
        for _ in range(2):
            proc = anxin("migrate", database_url=url)
            assert proc.returncode == 0, proc.stderr[-2000:]
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            tables = {
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname='public'"
                )
            }
        finally:
            await conn.close()
    assert {"resident", "membership", "staff_account", "refresh_token", "audit_log"} <= tables


def test_create_staff(tmp_path: Path) -> None:
    path = tmp_path / "staff.sqlite3"
    url = f"sqlite://{path}"
    assert anxin("migrate", database_url=url).returncode == 0
    now = "2024-01-01 00:00:00+00:00"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO city (id, name, name_en, created_at, updated_at) VALUES (1, ?, '', ?, ?)",
            ("测试市", now, now),
        )
        conn.execute(
            "INSERT INTO community (id, city_id, name, name_en, address, timezone,"
            " face_storage_policy, face_self_enrollment, pass_public_key, pass_key_id,"
            " created_at, updated_at)"
            " VALUES (1, 1, ?, '', '', 'Asia/Shanghai', 'edge', 'liveness', '', '', ?, ?)",
            ("测试小区", now, now),
        )
    args = ("create-staff", "zhang", "--community", "1", "--role", "approver")
    short = anxin(*args, "--password", "short", database_url=url)
    assert short.returncode != 0 and "at least" in short.stderr
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM staff_account").fetchone()[0] == 0

    for _ in range(2):  # running it again adds nothing
        ok = anxin(*args, "--password", "a-long-enough-password", database_url=url)
        assert ok.returncode == 0, ok.stderr[-2000:]
    with sqlite3.connect(path) as conn:
        staff = conn.execute("SELECT id, password_hash FROM staff_account").fetchall()
        roles = conn.execute("SELECT staff_id, community_id, role FROM staff_role").fetchall()
    assert len(staff) == 1 and staff[0][1].startswith("$argon2id$")
    assert verify_password(staff[0][1], "a-long-enough-password")
    assert roles == [(staff[0][0], 1, "approver")]


async def test_seed_demo_is_idempotent(stack: Stack) -> None:
    first = await seed_demo("demo-password-123")
    counts = (
        await City.filter(name="示范市").count(),
        await Community.filter(name="安心花园").count(),
        await Building.filter(community_id=first.community_id).count(),
        await Unit.filter(community_id=first.community_id).count(),
        await Room.filter(community_id=first.community_id).count(),
        await StaffRole.filter(community_id=first.community_id).count(),
    )
    again = await seed_demo("another-password")
    assert again.community_id == first.community_id
    assert again.staff_password is None  # existing staff keep their password
    assert counts == (
        await City.filter(name="示范市").count(),
        await Community.filter(name="安心花园").count(),
        await Building.filter(community_id=first.community_id).count(),
        await Unit.filter(community_id=first.community_id).count(),
        await Room.filter(community_id=first.community_id).count(),
        await StaffRole.filter(community_id=first.community_id).count(),
    )
    assert counts[2:] == (3, 6, 72, len(DEMO_STAFF))
    if first.staff_password is not None:  # this database had no demo yet
        password = first.staff_password
        assert password == "demo-password-123"
        admin = await StaffAccount.get(username="admin")
        assert verify_password(admin.password_hash, password)
        r = await stack.client.post(
            "/api/v1/auth/staff/login", json={"username": "admin", "password": password}
        )
        assert r.status_code == 200, r.text
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}
        mine = (await stack.client.get("/api/v1/staff/communities", headers=h)).json()["items"]
        assert [(c["name"], c["roles"]) for c in mine] == [("安心花园", ["admin"])]
        for username, role in DEMO_STAFF:
            staff = await StaffAccount.get(username=username)
            assert await StaffRole.filter(
                staff_id=staff.id, community_id=first.community_id, role=role
            ).exists()


def test_an_api_worker_freezes_its_startup_heap(tmp_path: Path) -> None:
    """A worker built by `anxin serve --workers N` (boot.asgi.create) leaves what start-up
    built out of the cycle collector's scans, so a full collection under load does not
    walk the ~230,000 objects of the app (a 150 ms stall of the worker)."""
    from anxin.crypto import generate_key_spec

    env = {k: v for k, v in os.environ.items() if not k.startswith("ANXIN_")}
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=f"sqlite://{tmp_path / 'w.sqlite3'}",
        ANXIN_DATA_DIR=str(tmp_path / "data"),
        ANXIN_JWT_SECRET="x" * 64,
        ANXIN_FACE_KEYS=generate_key_spec("test"),
        ANXIN_WECHAT_APPID="wx0000000000demo",
        ANXIN_WECHAT_SECRET="a-test-app-secret",
    )
    env.pop("REDIS_URL", None)
    code = (
        "import gc\n"
        "from boot.asgi import create\n"
        "create()\n"
        "print(gc.get_freeze_count(), len(gc.get_objects()))\n"  # what a collection walks
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    frozen, scanned = map(int, proc.stdout.split())
    assert frozen > 100_000 and scanned < frozen // 10
