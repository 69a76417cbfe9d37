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

from anxin.errors import TooLarge
from domain.community import importer
from models import (
    AuditLog,
    Building,
    Invitation,
    InvitationState,
    Membership,
    Resident,
    Room,
    StaffRoleName,
)
from tests.helpers import World, error_code, make_staff, make_world, staff_headers
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
        await Invitation.filter(community_id=community_id).count(),
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
        "invitations_created": 3002,
        "invitations_unchanged": 0,
        "rooms_created": 3000,
    }
    assert elapsed < 60, f"import of 3,000 rows took {elapsed:.1f}s"
    assert await Building.filter(community_id=world.community.id).count() == 6
    assert await Room.filter(community_id=world.community.id).count() == 3000
    # Invitations only: no account is made, no membership approved.
    assert await Membership.filter(community_id=world.community.id).count() == 0
    assert not await Resident.filter(phone=rows[0][4]).exists()
    assert (
        await Invitation.filter(
            community_id=world.community.id, state=InvitationState.PENDING
        ).count()
        == 3002
    )
    assert await Invitation.filter(phone=rows[0][4]).count() == 2
    audit = await AuditLog.get(action="residents.imported", community_id=world.community.id)
    assert audit.details["rows"] == 3002 and audit.details["file"] == "residents.csv"

    # The same file again changes nothing: flats and open invitations are matched.
    r = await stack.client.post(
        f"/api/v1/staff/communities/{world.community.id}/residents/import",
        files={"file": ("residents.csv", csv_bytes(rows), "text/csv")},
        headers=admin_h,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["invitations_created"] == 0 and body["invitations_unchanged"] == 3002
    assert body["rooms_created"] == 0


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
    assert not await Invitation.filter(phone=good[0][4]).exists()


async def test_failure_while_writing_rolls_back_everything(
    stack: Stack, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database error after buildings and rooms were written leaves none."""
    from auth.permissions import load_principal
    from models import StaffAccount

    rows = [["6栋", "1单元", f"{i:03d}", f"人{i}", phone(), "业主"] for i in range(1, 51)]
    before = await snapshot(env.world.community.id)

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(Invitation, "bulk_create", broken)
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
    inv = await Invitation.get(phone=p).prefetch_related("room__building")
    assert inv.name == "欧阳娜娜"
    assert inv.room.number == "301" and inv.room.building.name == "7栋"
    assert inv.role.value == "tenant"


async def test_utf8_bom_csv_with_english_headers(stack: Stack, env: Env) -> None:
    p = phone()
    header = ["Building", "Unit", "Room", "Name", "Phone", "Role", "move_in"]
    data = "\ufeff".encode() + csv_bytes(
        [["8", "1", "101", "Li Lei", p, "owner", "2024-03-01"]], header=header
    )
    r = await upload(stack, env, "residents.csv", data)
    assert r.status_code == 200, r.text
    assert (await Invitation.get(phone=p)).move_in == date(2024, 3, 1)


async def test_xlsx(stack: Stack, env: Env) -> None:
    p1, p2 = phone(), phone()
    rows = [
        ["9栋", "1单元", 101, "韩梅梅", int(p1), "业主"],  # numbers typed as numbers
        ["9栋", "1单元", "102", "李雷", p2, "家属", None],
    ]
    data = xlsx_bytes(rows, header=[*HEADER, "入住日期"])
    r = await upload(stack, env, "residents.xlsx", data)
    assert r.status_code == 200, r.text
    assert r.json()["invitations_created"] == 2
    assert await Invitation.filter(phone=p1, room__number="101").exists()


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


def zip_bomb_xlsx(inflated_mb: int = 200) -> bytes:
    """A real workbook whose sheet is replaced by a valid sheet that inflates to
    `inflated_mb` MB (rows of one repeated cell), made here, never stored."""
    import zipfile

    base = zipfile.ZipFile(io.BytesIO(xlsx_bytes([["1栋", "1单元", "101", "甲", phone(), "业主"]])))
    out = io.BytesIO()
    row = b'<row><c t="inlineStr"><is><t>x</t></is></c></row>'
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bomb:
        for item in base.infolist():
            if item.filename != "xl/worksheets/sheet1.xml":
                bomb.writestr(item, base.read(item))
                continue
            with bomb.open(item.filename, "w", force_zip64=True) as f:
                f.write(b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.')
                f.write(b'org/spreadsheetml/2006/main"><sheetData>')
                chunk = row * (1024 * 1024 // len(row))
                for _ in range(inflated_mb):
                    f.write(chunk)
                f.write(b"</sheetData></worksheet>")
    return out.getvalue()


async def test_zip_bomb_is_refused_before_it_is_opened(
    stack: Stack, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = zip_bomb_xlsx(200)
    assert len(bomb) < importer.MAX_BYTES  # a small upload...
    opened: list[int] = []
    import openpyxl

    real = openpyxl.load_workbook
    monkeypatch.setattr(
        openpyxl, "load_workbook", lambda *a, **k: opened.append(1) or real(*a, **k)
    )
    before = await snapshot(env.world.community.id)
    r = await upload(stack, env, "bomb.xlsx", bomb)
    assert r.status_code == 413, r.text
    assert error_code(r) == "file_too_large_uncompressed"
    assert r.json()["error"]["message_zh"] and r.json()["error"]["message_en"]
    assert opened == []  # refused from the zip directory alone
    assert await snapshot(env.world.community.id) == before


@pytest.mark.parametrize("what", ["members", "ratio", "shared-strings"])
def test_xlsx_bounds_each(what: str) -> None:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        if what == "members":
            for i in range(importer.XLSX_MAX_MEMBERS + 1):
                z.writestr(f"part{i}.xml", b"<x/>")
        elif what == "ratio":
            z.writestr("xl/worksheets/sheet1.xml", b"\0" * (2 * 1024 * 1024))  # ~1000:1
        else:
            z.writestr("xl/sharedStrings.xml", b"<sst>" + b"a" * (17 * 1024 * 1024))
    with pytest.raises(TooLarge) as exc:
        importer.check_xlsx_bounds(out.getvalue())
    assert exc.value.code == "file_too_large_uncompressed"
    importer.check_xlsx_bounds(xlsx_bytes([["1栋", "1单元", "101", "甲", phone(), "业主"]]))


def test_wide_rows_are_cut_to_the_column_bound() -> None:
    wide = csv_bytes([["1栋", "1单元", "101", "甲", phone(), "业主", *["x"] * 5000]])
    table = importer.read_table("wide.csv", wide)
    assert all(len(row) <= importer.MAX_COLUMNS for row in table)
