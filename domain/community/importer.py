"""Importing residents from a CSV or Excel file: every row checked first, then all or nothing.

Columns (Chinese or English headers): 楼栋/building, 单元/unit, 房号/room, 姓名/name,
手机号/phone, 身份/role (业主/owner, 家属/family, 租户/tenant), optional 入住日期/move_in.
Missing buildings, units and rooms are created. Each row becomes an invitation for whoever
holds that phone number (domain/households/invitations.py): the resident accepts it in the
mini-program after binding the phone. An import never creates or changes an account and
never approves a membership, and its answer is the same whether a number is registered.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from anxin.clock import utcnow
from anxin.errors import Invalid, TooLarge
from auth.permissions import Action, Principal, authorize
from domain import audit
from models import Building, Invitation, InvitationState, MembershipRole, Room, Unit

MAX_ROWS = 20_000
MAX_COLUMNS = 32  # the sheet has 7 meaningful columns; the rest is never read
MAX_BYTES = 5 * 1024 * 1024
# An .xlsx is a zip: what it may decompress to is checked before openpyxl opens it (a
# 400 KB upload can inflate to 400 MB). Python's zipfile stops at the declared size of a
# member and fails on a CRC mismatch, so the declared sizes bound what is really read.
XLSX_MAX_MEMBERS = 64
XLSX_MAX_MEMBER_BYTES = 32 * 1024 * 1024
XLSX_MAX_TOTAL_BYTES = 48 * 1024 * 1024
XLSX_MAX_SHARED_STRINGS_BYTES = 16 * 1024 * 1024  # held in memory whole by openpyxl
XLSX_MAX_RATIO = 100  # uncompressed / compressed, for members over 1 MB
MAX_ERRORS_LISTED = 200
PHONE_RE = re.compile(r"^1[3-9]\d{9}$")

HEADERS = {
    "building": ("楼栋", "楼号", "building"),
    "unit": ("单元", "unit"),
    "room": ("房号", "房间", "room"),
    "name": ("姓名", "name"),
    "phone": ("手机号", "手机", "电话", "phone"),
    "role": ("身份", "关系", "role"),
    "move_in": ("入住日期", "move_in"),
}
ROLES = {
    "业主": MembershipRole.OWNER,
    "owner": MembershipRole.OWNER,
    "家属": MembershipRole.FAMILY,
    "家庭成员": MembershipRole.FAMILY,
    "family": MembershipRole.FAMILY,
    "租户": MembershipRole.TENANT,
    "tenant": MembershipRole.TENANT,
}
LIMITS = {"building": 32, "unit": 32, "room": 16, "name": 64}


@dataclass
class ImportRow:
    line: int
    building: str
    unit: str
    room: str
    name: str
    phone: str
    role: MembershipRole
    move_in: date | None


@dataclass
class ImportResult:
    """Counts that depend only on the file and on this community's own rows: nothing here
    says whether a phone number belongs to anyone."""

    rows: int
    invitations_created: int
    invitations_unchanged: int  # the same room and phone already had a pending invitation
    rooms_created: int


def _error(line: int, field: str, code: str, zh: str, en: str) -> dict[str, Any]:
    return {"row": line, "field": field, "code": code, "message_zh": zh, "message_en": en}


def read_table(filename: str, data: bytes) -> list[list[str]]:
    if len(data) > MAX_BYTES:
        raise TooLarge("file_too_large", "文件超过5MB", "file larger than 5 MB")
    if data[:4] == b"PK\x03\x04" or filename.lower().endswith(".xlsx"):
        return _read_xlsx(data)
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise Invalid("file_unreadable", "无法识别文件编码", "cannot decode the file")
    if "\x00" in text:
        raise Invalid("file_unreadable", "文件不是CSV或Excel格式", "not a CSV or Excel file")
    reader = csv.reader(io.StringIO(text))
    rows: list[list[str]] = []
    try:
        for row in reader:
            if any(c.strip() for c in row):
                rows.append(row[:MAX_COLUMNS])
                if len(rows) > MAX_ROWS + 1:  # enough to say "too many rows"
                    break
        return rows
    except csv.Error as exc:  # e.g. a field over the csv module's size limit
        raise Invalid(
            "file_unreadable",
            f"CSV格式错误（第{reader.line_num}行）",
            f"malformed CSV at line {reader.line_num}",
            {"line": reader.line_num},
        ) from exc


def _too_large(what_zh: str, what_en: str, details: dict[str, Any]) -> TooLarge:
    return TooLarge(
        "file_too_large_uncompressed",
        f"Excel文件解压后过大（{what_zh}）",
        f"the Excel file decompresses to too much ({what_en})",
        details,
    )


def check_xlsx_bounds(data: bytes) -> None:
    """Refuse an .xlsx whose zip would decompress past the bounds, reading only its
    directory (nothing is inflated here)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise Invalid("file_unreadable", "无法读取Excel文件", "cannot read the Excel file") from exc
    if len(members) > XLSX_MAX_MEMBERS:
        raise _too_large("文件数过多", "too many parts", {"members": len(members)})
    total = 0
    for m in members:
        total += m.file_size
        limit = (
            XLSX_MAX_SHARED_STRINGS_BYTES
            if m.filename.lower().endswith("sharedstrings.xml")
            else XLSX_MAX_MEMBER_BYTES
        )
        if m.file_size > limit:
            raise _too_large("单个部件过大", "one part too large", {"part": m.filename[:100]})
        if m.file_size > 1024 * 1024 and m.file_size > XLSX_MAX_RATIO * max(m.compress_size, 1):
            raise _too_large("压缩比异常", "compression ratio too high", {"part": m.filename[:100]})
    if total > XLSX_MAX_TOTAL_BYTES:
        raise _too_large("总量过大", "too large in total", {"bytes": total})


def _read_xlsx(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    check_xlsx_bounds(data)
    rows: list[list[str]] = []
    try:
        sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
        # Cells are read lazily: a damaged sheet may fail here rather than on opening.
        for values in sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True):
            if len(rows) > MAX_ROWS + 1:
                break
            cells = [_cell_text(v) for v in values]
            if any(c.strip() for c in cells):
                rows.append(cells)
    except Exception as exc:
        raise Invalid("file_unreadable", "无法读取Excel文件", "cannot read the Excel file") from exc
    return rows


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone or room number typed as a number: 13800138000.0
    return str(value)


def parse_rows(table: list[list[str]]) -> tuple[list[ImportRow], list[dict[str, Any]]]:
    if not table:
        raise Invalid("file_empty", "文件没有内容", "the file is empty")
    header = [h.strip().lower() for h in table[0]]
    columns: dict[str, int] = {}
    for key, names in HEADERS.items():
        for i, h in enumerate(header):
            if h in names:
                columns[key] = i
    missing = [k for k in ("building", "unit", "room", "name", "phone", "role") if k not in columns]
    if missing:
        raise Invalid(
            "import_header_invalid",
            "表头缺少必需的列",
            "required columns missing",
            {"missing": missing},
        )
    if len(table) - 1 > MAX_ROWS:
        raise Invalid(
            "import_too_many_rows",
            f"一次最多导入{MAX_ROWS}行",
            f"at most {MAX_ROWS} rows per import",
        )
    rows: list[ImportRow] = []
    errors: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for line, raw in enumerate(table[1:], start=2):
        cell = {k: (raw[i].strip() if i < len(raw) else "") for k, i in columns.items()}
        row_errors = []
        for key in ("building", "unit", "room", "name", "phone", "role"):
            if not cell[key]:
                row_errors.append(_error(line, key, "required", "必填", "required"))
        for key, limit in LIMITS.items():
            if len(cell[key]) > limit:
                row_errors.append(
                    _error(
                        line,
                        key,
                        "too_long",
                        f"超过{limit}个字符",
                        f"longer than {limit} characters",
                    )
                )
        if cell["phone"] and not PHONE_RE.match(cell["phone"]):
            row_errors.append(
                _error(
                    line,
                    "phone",
                    "phone_invalid",
                    "手机号格式不正确",
                    "not a mainland mobile number",
                )
            )
        role = ROLES.get(cell["role"].lower()) if cell["role"] else None
        if cell["role"] and role is None:
            row_errors.append(
                _error(
                    line,
                    "role",
                    "role_invalid",
                    "身份须为业主、家属或租户",
                    "role must be owner, family or tenant",
                )
            )
        move_in = None
        if cell.get("move_in"):
            try:
                move_in = date.fromisoformat(cell["move_in"][:10])
            except ValueError:
                row_errors.append(
                    _error(
                        line,
                        "move_in",
                        "date_invalid",
                        "日期格式应为YYYY-MM-DD",
                        "date must be YYYY-MM-DD",
                    )
                )
        row_key = (cell["building"], cell["unit"], cell["room"], cell["phone"])
        if not row_errors and row_key in seen:
            row_errors.append(
                _error(
                    line,
                    "phone",
                    "duplicate_row",
                    f"与第{seen[row_key]}行重复",
                    f"duplicates row {seen[row_key]}",
                )
            )
        seen.setdefault(row_key, line)
        if row_errors:
            errors.extend(row_errors)
            continue
        assert role is not None
        rows.append(
            ImportRow(
                line,
                cell["building"],
                cell["unit"],
                cell["room"],
                cell["name"],
                cell["phone"],
                role,
                move_in,
            )
        )
    return rows, errors


Progress = Callable[[int, int], Awaitable[None]]  # (rows done, rows in all)


async def import_residents(
    principal: Principal,
    community_id: int,
    filename: str,
    data: bytes,
    invitation_ttl_days: int = 90,
    progress: Progress | None = None,
) -> ImportResult:
    """`progress` is called as rows are applied (the console draws its bar from it)."""
    authorize(principal, Action.COMMUNITY_MANAGE, community_id)
    rows, errors = parse_rows(read_table(filename, data))
    if errors:
        raise Invalid(
            "import_invalid",
            f"{len({e['row'] for e in errors})}行有错误，未导入任何数据",
            "some rows are invalid; nothing was imported",
            {"error_count": len(errors), "errors": errors[:MAX_ERRORS_LISTED]},
        )
    async with in_transaction():
        result = await _apply(community_id, rows, principal.id, invitation_ttl_days, progress)
    await audit.record(
        "residents.imported",
        **principal.audit_actor(),
        community_id=community_id,
        target_type="community",
        target_id=community_id,
        details={"file": _printable(filename)[:100], **result.__dict__},
    )
    return result


def _printable(text: str) -> str:
    return "".join(c for c in text if c.isprintable())


async def _apply(
    community_id: int,
    rows: list[ImportRow],
    staff_id: int,
    ttl_days: int,
    progress: Progress | None = None,
) -> ImportResult:
    buildings = {b.name: b for b in await Building.filter(community_id=community_id)}
    units = {(u.building_id, u.name): u for u in await Unit.filter(community_id=community_id)}
    rooms = {(r.unit_id, r.number): r for r in await Room.filter(community_id=community_id)}
    rooms_created = 0
    room_of_row: dict[int, Room] = {}
    for done, row in enumerate(rows):
        if progress is not None and done % 25 == 0:
            await progress(done, len(rows))
        building = buildings.get(row.building)
        if building is None:
            building = buildings[row.building] = await Building.create(
                community_id=community_id, name=row.building
            )
        unit = units.get((building.id, row.unit))
        if unit is None:
            unit = units[(building.id, row.unit)] = await Unit.create(
                building_id=building.id, community_id=community_id, name=row.unit
            )
        room = rooms.get((unit.id, row.room))
        if room is None:
            room = rooms[(unit.id, row.room)] = await Room.create(
                unit_id=unit.id, building_id=building.id, community_id=community_id, number=row.room
            )
            rooms_created += 1
        room_of_row[row.line] = room

    now = utcnow()
    pending = set(
        await Invitation.filter(
            community_id=community_id, state=InvitationState.PENDING, expires_at__gt=now
        ).values_list("room_id", "phone")
    )
    expires_at = now + timedelta(days=ttl_days)
    invitations = []
    for row in rows:
        room = room_of_row[row.line]
        if (room.id, row.phone) in pending:
            continue
        pending.add((room.id, row.phone))
        invitations.append(
            Invitation(
                community_id=community_id,
                room_id=room.id,
                phone=row.phone,
                name=row.name,
                role=row.role,
                move_in=row.move_in,
                invited_by_id=staff_id,
                expires_at=expires_at,
            )
        )
    await Invitation.bulk_create(invitations, batch_size=1000)
    return ImportResult(len(rows), len(invitations), len(rows) - len(invitations), rooms_created)
