"""Importing residents from CSV (UTF-8 or GBK) and Excel: all rows or none."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from openpyxl import Workbook

from domain.community import importer
from models import AuditLog, Building, Membership, MembershipState, Resident, Room, StaffRoleName
from tests.helpers import World, error_code, make_staff, make_world, new_resident, staff_headers
from tests.stack import Stack

HEADER = ["楼栋", "单元", "房号", "姓名", "手机号", "身份"]


@dataclass
class Env:
    world: World
    admin_h: dict[str, str]


@pytest.fixture(scope="module")
async def env(stack: Stack) -> AsyncIterator[Env]:
    world = await make_world(units=1, rooms_per_unit=1)
    yield Env(world, await staff_headers(stack, await make_staff(world.community, _ADMIN)))


_ADMIN = StaffRoleName.ADMIN
_phone_seq = iter(range(10_000_000))


def phone() -> str:
    return f"135{next(_phone_seq):08d}"


def csv_bytes(rows: list[list[Any]], encoding: str = "utf-8", header: list[str] = HEADER) -> bytes:
    lines = [",".join(header), *(",".join(str(c) for c in row) for row in rows)]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def xlsx_bytes(rows: list[list[Any]], header: list[str] = HEADER) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(header)
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


async def upload(
    stack: Stack, env: Env, name: str, data: bytes, community_id: int | None = None
) -> Any:
    cid = community_id or env.world.community.id
    return await stack.client.post(
        f"/api/v1/staff/communities/{cid}/residents/import",
        files={"file": (name, data, "application/octet-stream")},
        headers=env.admin_h,
    )


async def snapshot(community_id: int) -> tuple[int, int, int, int]:
    return (
        await Building.filter(community_id=community_id).count(),
        await Room.filter(community_id=community_id).count(),
        await Membership.filter(community_id=community_id).count(),
        await Resident.all().count(),
    )


async def test_import_3000_rows_csv(stack: Stack, env: Env) -> None:
    world = await make_world(buildings=0)
    admin_h = await staff_headers(stack, await make_staff(world.community, _ADMIN))
    rows = []
    for i in range(3000):
        b, u, r = i // 500 + 1, (i // 100) % 5 + 1, i % 100 + 1
        rows.append([f"{b}栋", f"{u}单元", f"{r:03d}", f"住户{i}", phone(), "业主"])
    # Two people in one flat, and one person in two flats.
    rows.append(["1栋", "1单元", "001", "家属甲", phone(), "家属"])
    rows.append(["2栋", "1单元", "001", "住户0", rows[0][4], "租户"])
    started = time.perf_counter()
    r = await stack.client.post(
        f"/api/v1/staff/communities/{world.community.id}/residents/import",
        files={"file": ("residents.csv", csv_bytes(rows), "text/csv")},
        headers=admin_h,
    )
    elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text[:500]
    assert r.json() == {
        "rows": 3002,
        "residents_created": 3001,
        "memberships_created": 3002,
        "memberships_unchanged": 0,
        "rooms_created": 3000,
    }
    assert elapsed < 60, f"import of 3,000 rows took {elapsed:.1f}s"
    assert await Building.filter(community_id=world.community.id).count() == 6
    assert await Room.filter(community_id=world.community.id).count() == 3000
    assert (
        await Membership.filter(
            community_id=world.community.id, state=MembershipState.APPROVED
        ).count()
        == 3002
    )
    first = await Resident.get(phone=rows[0][4])
    assert first.name == "住户0" and first.openid is None
    assert await Membership.filter(resident_id=first.id).count() == 2
    audit = await AuditLog.get(action="residents.imported", community_id=world.community.id)
    assert audit.details["rows"] == 3002 and audit.details["file"] == "residents.csv"

    # The same file again changes nothing: people and flats are matched, not duplicated.
    r = await stack.client.post(
        f"/api/v1/staff/communities/{world.community.id}/residents/import",
        files={"file": ("residents.csv", csv_bytes(rows), "text/csv")},
        headers=admin_h,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["memberships_created"] == 0 and body["memberships_unchanged"] == 3002
    assert body["residents_created"] == 0 and body["rooms_created"] == 0


async def test_bad_rows_are_all_reported_and_nothing_imported(stack: Stack, env: Env) -> None:
    good = [["5栋", "1单元", f"{i:03d}", f"好人{i}", phone(), "业主"] for i in range(1, 200)]
    dup_phone = phone()
    bad = [
        ["5栋", "1单元", "900", "", phone(), "业主"],  # name missing
        ["5栋", "1单元", "901", "王五", "12345", "业主"],  # bad phone
        ["5栋", "1单元", "902", "王五", phone(), "房东"],  # bad role
        ["楼" * 33, "1单元", "903", "王五", phone(), "业主"],  # building too long
        ["5栋", "1单元", "9" * 17, "名" * 65, phone(), "业主"],  # two fields too long
        ["5栋", "1单元", "904", "赵六", dup_phone, "业主"],
        ["5栋", "1单元", "904", "赵六", dup_phone, "业主"],  # duplicate of the row before
        ["5栋", "1单元"],  # short row
    ]
    rows = good[:100] + bad + good[100:]
    before = await snapshot(env.world.community.id)
    audit_before = await AuditLog.filter(action="residents.imported").count()

    r = await upload(stack, env, "residents.csv", csv_bytes(rows))
    assert r.status_code == 422 and error_code(r) == "import_invalid"
    err = r.json()["error"]
    assert err["message_en"] == "some rows are invalid; nothing was imported"
    assert "未导入任何数据" in err["message_zh"]
    found = {(e["row"], e["field"], e["code"]) for e in err["details"]["errors"]}
    first_bad = 2 + 100  # line 1 is the header
    assert {
        (first_bad, "name", "required"),
        (first_bad + 1, "phone", "phone_invalid"),
        (first_bad + 2, "role", "role_invalid"),
        (first_bad + 3, "building", "too_long"),
        (first_bad + 4, "room", "too_long"),
        (first_bad + 4, "name", "too_long"),
        (first_bad + 6, "phone", "duplicate_row"),
        (first_bad + 7, "room", "required"),
    } <= found
    assert err["details"]["error_count"] == len(err["details"]["errors"])
    assert all(e["message_zh"] and e["message_en"] for e in err["details"]["errors"])
    assert await snapshot(env.world.community.id) == before
    assert await AuditLog.filter(action="residents.imported").count() == audit_before
    assert not await Resident.filter(phone=good[0][4]).exists()


async def test_failure_while_writing_rolls_back_everything(
    stack: Stack, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database error after buildings, rooms and residents were written leaves none."""
    from auth.permissions import load_principal
    from models import StaffAccount

    rows = [["6栋", "1单元", f"{i:03d}", f"人{i}", phone(), "业主"] for i in range(1, 51)]
    before = await snapshot(env.world.community.id)

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(Membership, "bulk_create", broken)
    admin = await StaffAccount.filter(roles__community_id=env.world.community.id).first()
    assert admin is not None
    principal = await load_principal("staff", admin.id)
    with pytest.raises(RuntimeError, match="disk full"):
        await importer.import_residents(principal, env.world.community.id, "x.csv", csv_bytes(rows))
    assert await snapshot(env.world.community.id) == before
    assert not await Building.filter(community_id=env.world.community.id, name="6栋").exists()


async def test_gbk_csv(stack: Stack, env: Env) -> None:
    p = phone()
    data = csv_bytes([["7栋", "2单元", "301", "欧阳娜娜", p, "租户"]], encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    r = await upload(stack, env, "住户名单.csv", data)
    assert r.status_code == 200, r.text
    resident = await Resident.get(phone=p)
    assert resident.name == "欧阳娜娜"
    m = await Membership.get(resident_id=resident.id).prefetch_related("room__building")
    assert m.room.number == "301" and m.room.building.name == "7栋" and m.role.value == "tenant"


async def test_utf8_bom_csv_with_english_headers(stack: Stack, env: Env) -> None:
    p = phone()
    header = ["Building", "Unit", "Room", "Name", "Phone", "Role", "move_in"]
    data = "\ufeff".encode() + csv_bytes(
        [["8", "1", "101", "Li Lei", p, "owner", "2024-03-01"]], header=header
    )
    r = await upload(stack, env, "residents.csv", data)
    assert r.status_code == 200, r.text
    m = await Membership.get(resident__phone=p)
    assert m.move_in == date(2024, 3, 1)


async def test_xlsx(stack: Stack, env: Env) -> None:
    p1, p2 = phone(), phone()
    rows = [
        ["9栋", "1单元", 101, "韩梅梅", int(p1), "业主"],  # numbers typed as numbers
        ["9栋", "1单元", "102", "李雷", p2, "家属", None],
    ]
    data = xlsx_bytes(rows, header=[*HEADER, "入住日期"])
    r = await upload(stack, env, "residents.xlsx", data)
    assert r.status_code == 200, r.text
    assert r.json()["memberships_created"] == 2
    assert await Membership.filter(resident__phone=p1, room__number="101").exists()


async def test_xlsx_with_bad_rows_imports_nothing(stack: Stack, env: Env) -> None:
    before = await snapshot(env.world.community.id)
    rows = [
        ["10栋", "1单元", "101", "甲", phone(), "业主"],
        ["10栋", "1单元", "102", "乙", "x", ""],
    ]
    r = await upload(stack, env, "residents.xlsx", xlsx_bytes(rows))
    assert r.status_code == 422 and error_code(r) == "import_invalid"
    codes = {(e["row"], e["code"]) for e in r.json()["error"]["details"]["errors"]}
    assert codes == {(3, "phone_invalid"), (3, "required")}
    assert await snapshot(env.world.community.id) == before


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("empty.csv", b"", 422, "file_empty"),
        ("header-only.csv", "楼栋,单元\n".encode(), 422, "import_header_invalid"),
        ("binary.csv", bytes(range(256)) * 4, 422, "file_unreadable"),
        ("fake.xlsx", b"PK\x03\x04 not really a zip", 422, "file_unreadable"),
        ("nul.csv", "楼栋,单元,房号,姓名,手机号,身份\n1\x00".encode(), 422, "file_unreadable"),
        (
            "huge-field.csv",
            "楼栋,单元,房号,姓名,手机号,身份\n1,1,1,".encode() + b"x" * 200_000 + b",1,1\n",
            422,
            "file_unreadable",
        ),
        ("big.csv", b"x" * (importer.MAX_BYTES + 10), 413, "file_too_large"),
    ],
    ids=["empty", "header-only", "binary", "fake-xlsx", "nul", "huge-field", "too-big"],
)
async def test_unreadable_files(
    stack: Stack, env: Env, name: str, data: bytes, status: int, code: str
) -> None:
    before = await snapshot(env.world.community.id)
    r = await upload(stack, env, name, data)
    assert r.status_code == status, r.text[:300]
    assert error_code(r) == code
    assert await snapshot(env.world.community.id) == before


async def test_too_many_rows(stack: Stack, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "MAX_ROWS", 10)
    rows = [["11栋", "1单元", f"{i}", "x", phone(), "业主"] for i in range(11)]
    r = await upload(stack, env, "r.csv", csv_bytes(rows))
    assert r.status_code == 422 and error_code(r) == "import_too_many_rows"


async def test_missing_file_field(stack: Stack, env: Env) -> None:
    r = await stack.client.post(
        f"/api/v1/staff/communities/{env.world.community.id}/residents/import",
        headers=env.admin_h,
    )
    assert r.status_code == 422 and error_code(r) == "validation_error"


async def test_imported_resident_sees_household_after_binding_phone(stack: Stack, env: Env) -> None:
    p = phone()
    r = await upload(stack, env, "r.csv", csv_bytes([["12栋", "1单元", "101", "周七", p, "业主"]]))
    assert r.status_code == 200
    app = await new_resident(stack)
    assert (await app.bind_phone(p)).status_code == 200
    mine = (await app.get("/api/v1/me/memberships")).json()["items"]
    assert [(m["building"], m["room"], m["state"]) for m in mine] == [("12栋", "101", "approved")]
    await app.aclose()
