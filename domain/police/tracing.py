"""Outsider tracing (外来人员排查): who entered, at which doors, in a time window.

Only the security role may ask, and every query records the reason and the case number
given (an append-only `TraceQuery` row plus the audit log). The answer separates
residents from everybody else (visitors, delivery riders, visitor vehicles, unknown
plates). An export is audited; one over `bulk_rows` lines needs a second security
officer's approval before the requester may download it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from tortoise.transactions import in_transaction

from anxin.clock import utcnow
from anxin.errors import conflict, forbidden, invalid, not_found
from anxin.timefmt import local_iso
from auth.permissions import Action, Principal, authorize, scoped_row
from domain import audit
from models import (
    AccessEvent,
    AccessMethod,
    AccessResult,
    Community,
    Device,
    ExportState,
    Resident,
    Room,
    TraceExport,
    TraceQuery,
    VisitorPass,
)

Kind = Literal["resident", "visitor", "rider", "vehicle"]
KINDS: tuple[Kind, ...] = ("resident", "visitor", "rider", "vehicle")
KIND_ZH = {"resident": "住户", "visitor": "访客", "rider": "外卖快递", "vehicle": "车辆"}
MAX_WINDOW = timedelta(days=31)
MAX_ROWS = 20_000
ExportFormat = Literal["csv", "xlsx"]


@dataclass(frozen=True)
class TraceRequest:
    since: datetime
    until: datetime
    device_ids: list[int]
    kinds: list[Kind]
    reason: str
    case_no: str


# Access-policy reasons that mean "a resident (or a resident's registered vehicle) came in";
# everything else granted is someone from outside: a pass, a delivery, an intercom answer,
# a household code given to a relative, a visitor's plate.
RESIDENT_REASONS = ("resident", "registered_plate")
NOT_ENTRIES = ("vehicle_exit",)


def _kind(e: AccessEvent) -> Kind:
    if e.method == AccessMethod.PLATE:
        return "vehicle"
    if e.reason == "delivery_pass":
        return "rider"
    if e.reason in RESIDENT_REASONS:
        return "resident"
    return "visitor"


def _is_resident(e: AccessEvent) -> bool:
    return e.reason in RESIDENT_REASONS


async def _rows(community_id: int, req: TraceRequest) -> list[dict[str, Any]]:
    q = AccessEvent.filter(
        community_id=community_id,
        result=AccessResult.GRANTED,
        occurred_at__gte=req.since,
        occurred_at__lt=req.until,
    )
    if req.device_ids:
        q = q.filter(device_id__in=req.device_ids)
    q = q.exclude(reason__in=NOT_ENTRIES)
    events = await q.order_by("occurred_at", "id").limit(MAX_ROWS)
    events = [e for e in events if _kind(e) in req.kinds]
    tz = (await Community.get(id=community_id)).timezone
    devices = {
        d.id: d for d in await Device.filter(id__in=list({e.device_id for e in events}) or [0])
    }
    residents = {
        r.id: r for r in await Resident.filter(id__in=list({e.resident_id for e in events}) or [0])
    }
    passes = {
        p.id: p for p in await VisitorPass.filter(id__in=list({e.pass_id for e in events}) or [0])
    }
    rooms = {
        r.id: r
        for r in await Room.filter(
            id__in=list({e.room_id for e in events}) or [0]
        ).prefetch_related("building", "unit")
    }
    out = []
    for e in events:
        device = devices.get(e.device_id or 0)
        room = rooms.get(e.room_id or 0)
        person = residents.get(e.resident_id or 0)
        visitor = passes.get(e.pass_id or 0)
        out.append(
            {
                "event_id": e.id,
                "time": local_iso(e.occurred_at, tz),
                "door": (device.place or device.name) if device else "",
                "device_id": e.device_id,
                "kind": _kind(e),
                "resident": _is_resident(e),
                "method": e.method.value,
                "name": person.name if person else (visitor.visitor_name if visitor else ""),
                "phone": (person.phone or "")
                if person
                else (visitor.visitor_phone if visitor else ""),
                "plate": e.plate or (visitor.plate if visitor else ""),
                "room": f"{room.building.name}{room.unit.name}{room.number}" if room else "",
                "pass_id": e.pass_id,
            }
        )
    return out


def _check(req: TraceRequest) -> None:
    if len(req.reason.strip()) < 4:
        raise invalid("reason_required", "须填写查询事由", "a reason is required")
    if not req.case_no.strip():
        raise invalid("case_no_required", "须填写案件编号", "a case number is required")
    if req.until <= req.since:
        raise invalid("invalid_window", "结束时间须晚于开始时间", "until must be after since")
    if req.until - req.since > MAX_WINDOW:
        raise invalid("window_too_long", "单次查询不超过31天", "at most 31 days per query")
    if not req.kinds or any(k not in KINDS for k in req.kinds):
        raise invalid("invalid_kinds", "人员类别无效", "unknown kind")


async def trace(principal: Principal, community_id: int, req: TraceRequest) -> dict[str, Any]:
    authorize(principal, Action.TRACE_QUERY, community_id)
    _check(req)
    if req.device_ids:
        found = await Device.filter(id__in=req.device_ids, community_id=community_id).count()
        if found != len(set(req.device_ids)):
            raise not_found("door")
    rows = await _rows(community_id, req)
    async with in_transaction():
        query = await TraceQuery.create(
            community_id=community_id,
            staff_id=principal.id,
            reason=req.reason.strip(),
            case_no=req.case_no.strip(),
            since=req.since,
            until=req.until,
            device_ids=sorted(set(req.device_ids)),
            kinds=list(req.kinds),
            result_count=len(rows),
        )
        await audit.record(
            "police.trace.query",
            **principal.audit_actor(),
            community_id=community_id,
            target_type="trace_query",
            target_id=query.id,
            details={"reason": query.reason, "case_no": query.case_no, "rows": len(rows)},
        )
    return {
        "query_id": query.id,
        "count": len(rows),
        "truncated": len(rows) >= MAX_ROWS,
        "residents": [r for r in rows if r["resident"]],
        "non_residents": [r for r in rows if not r["resident"]],
    }


def query_out(q: TraceQuery) -> dict[str, Any]:
    return {
        "id": q.id,
        "staff_id": q.staff_id,
        "reason": q.reason,
        "case_no": q.case_no,
        "since": q.since,
        "until": q.until,
        "device_ids": q.device_ids,
        "kinds": q.kinds,
        "result_count": q.result_count,
        "created_at": q.created_at,
    }


async def list_queries(
    principal: Principal, community_id: int, *, limit: int, before: int | None = None
) -> list[TraceQuery]:
    """Newest first; `before`: a query id (the page's keyset cursor)."""
    authorize(principal, Action.TRACE_QUERY, community_id)
    q = TraceQuery.filter(community_id=community_id)
    if before is not None:
        q = q.filter(id__lt=before)
    return await q.order_by("-id").limit(limit)


async def request_export(
    principal: Principal, query_id: int, fmt: ExportFormat, bulk_rows: int
) -> TraceExport:
    """Ask to export a query's answer; a bulk export waits for a second approver."""
    query = await scoped_row(principal, Action.TRACE_QUERY, TraceQuery, query_id, "trace query")
    if query.staff_id != principal.id:
        raise forbidden("only who ran the query may export it", "仅查询人本人可导出")
    bulk = query.result_count > bulk_rows
    export = await TraceExport.create(
        query_id=query.id,
        community_id=query.community_id,
        requested_by_id=principal.id,
        format=fmt,
        rows=query.result_count,
        bulk=bulk,
        state=ExportState.PENDING if bulk else ExportState.APPROVED,
    )
    await audit.record(
        "police.trace.export_requested",
        **principal.audit_actor(),
        community_id=query.community_id,
        target_type="trace_export",
        target_id=export.id,
        details={"query_id": query.id, "rows": export.rows, "bulk": bulk, "format": fmt},
    )
    return export


async def list_exports(
    principal: Principal,
    community_id: int,
    *,
    state: ExportState | None = None,
    limit: int,
    before: int | None = None,
) -> list[TraceExport]:
    """Newest first; `before`: an export id (the page's keyset cursor)."""
    authorize(principal, Action.TRACE_QUERY, community_id)
    q = TraceExport.filter(community_id=community_id)
    if state is not None:
        q = q.filter(state=state)
    if before is not None:
        q = q.filter(id__lt=before)
    return await q.order_by("-id").limit(limit)


async def decide_export(
    principal: Principal, export_id: int, approve: bool, note: str
) -> TraceExport:
    export = await scoped_row(principal, Action.TRACE_APPROVE, TraceExport, export_id, "export")
    if export.requested_by_id == principal.id:
        raise forbidden("a second officer must approve", "须由另一名治安人员审批")
    async with in_transaction():
        locked = await TraceExport.filter(id=export.id).select_for_update().first()
        if locked is None or locked.state != ExportState.PENDING:
            raise conflict("export_decided", "该导出已处理", "export already decided")
        locked.state = ExportState.APPROVED if approve else ExportState.REJECTED
        locked.approver_id = principal.id
        locked.decided_at = utcnow()
        locked.decision_note = note
        await locked.save()
        await audit.record(
            f"police.trace.export_{'approved' if approve else 'rejected'}",
            **principal.audit_actor(),
            community_id=locked.community_id,
            target_type="trace_export",
            target_id=locked.id,
            details={"note": note, "requested_by": locked.requested_by_id},
        )
    return locked


def export_out(e: TraceExport) -> dict[str, Any]:
    return {
        "id": e.id,
        "query_id": e.query_id,
        "requested_by_id": e.requested_by_id,
        "format": e.format,
        "rows": e.rows,
        "bulk": e.bulk,
        "state": e.state.value,
        "approver_id": e.approver_id,
        "decided_at": e.decided_at,
        "decision_note": e.decision_note,
        "downloaded_at": e.downloaded_at,
    }


COLUMNS = [
    ("time", "时间 Time"),
    ("door", "门 Door"),
    ("kind_zh", "类别 Kind"),
    ("resident_zh", "住户 Resident"),
    ("name", "姓名 Name"),
    ("phone", "电话 Phone"),
    ("plate", "车牌 Plate"),
    ("room", "房号 Room"),
    ("method", "方式 Method"),
]


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A cell that starts like a formula is quoted (CSV / spreadsheet injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _table(rows: list[dict[str, Any]]) -> list[list[str]]:
    out = [[title for _, title in COLUMNS]]
    for r in rows:
        r = {**r, "kind_zh": KIND_ZH[r["kind"]], "resident_zh": "是" if r["resident"] else "否"}
        out.append([_cell(r.get(key)) for key, _ in COLUMNS])
    return out


def render(rows: list[dict[str, Any]], fmt: ExportFormat) -> bytes:
    table = _table(rows)
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf).writerows(table)
        return "\ufeff".encode() + buf.getvalue().encode("utf-8")  # BOM: Excel reads UTF-8
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("排查 Tracing")
    for line in table:
        ws.append(line)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def export_file_meta(export: TraceExport) -> tuple[str, str]:
    """(media type, file name) of an export's download."""
    return MEDIA_TYPES[export.format], f"trace-{export.query_id}.{export.format}"


async def download_export(principal: Principal, export_id: int) -> tuple[bytes, TraceExport]:
    """The file, for the requester only, once approved (or not bulk); audited."""
    export = await scoped_row(principal, Action.TRACE_QUERY, TraceExport, export_id, "export")
    if export.requested_by_id != principal.id:
        raise forbidden("only the requester may download", "仅申请人可下载")
    if export.state == ExportState.PENDING:
        raise conflict(
            "approval_required", "批量导出须经第二人审批", "waiting for a second approver"
        )
    if export.state != ExportState.APPROVED:
        raise conflict("export_rejected", "导出申请已被驳回", "export was rejected")
    query = await TraceQuery.get(id=export.query_id)
    req = TraceRequest(
        since=query.since,
        until=query.until,
        device_ids=list(query.device_ids),
        kinds=list(query.kinds),
        reason=query.reason,
        case_no=query.case_no,
    )
    rows = await _rows(query.community_id, req)
    body = render(rows, export.format)
    export.downloaded_at = utcnow()
    await export.save(update_fields=["downloaded_at"])
    await audit.record(
        "police.trace.export_downloaded",
        **principal.audit_actor(),
        community_id=export.community_id,
        target_type="trace_export",
        target_id=export.id,
        details={"query_id": query.id, "rows": len(rows), "case_no": query.case_no},
    )
    return body, export
