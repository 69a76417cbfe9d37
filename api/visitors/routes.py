"""Intercom answers, household door codes and vehicles (residents); blocklists and the
visitor register (staff)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Query
from fastapi.responses import Response

from anxin.timefmt import local_iso
from api.contract import (
    PAGE_DEFAULT,
    RESIDENT,
    STAFF,
    Cursor,
    Limit,
    Page,
    api_router,
    community_tz,
    errors,
    keyset_page,
    page_list,
)
from api.deps import PrincipalDep, ResidentDep, RuntimeDep
from api.idempotency import IdempotencyKey, fingerprint, run_once
from api.schemas import INT32_MAX, Ok, PathId
from api.visitors.schemas import (
    BlockIn,
    BlockOut,
    CallAnswered,
    CallOut,
    CodeIn,
    DoorCodeSet,
    NewDoorCode,
    VehicleIn,
    VehicleOut,
    VisitOut,
)
from domain.visitors import blocklist, codes, intercom, register, vehicles
from domain.visitors.rooms import room_label
from models import BlocklistEntry, Device, Room, Vehicle

resident_router = api_router("/api/v1", tags=[RESIDENT])
staff_router = api_router("/api/v1/staff", tags=[STAFF])
router = APIRouter()


def vehicle_out(v: Vehicle) -> VehicleOut:
    return VehicleOut(id=v.id, room_id=v.room_id, plate=v.plate)


def block_out(b: BlocklistEntry, tz: str) -> BlockOut:
    return BlockOut(
        id=b.id,
        kind=b.kind,
        resident_id=b.resident_id,
        plate=b.plate,
        reason=b.reason,
        active=b.active,
        created_at=local_iso(b.created_at, tz) or "",
        timezone=tz,
    )


async def _room_tz(room_id: int) -> str:
    room = await Room.get_or_none(id=room_id)
    return await community_tz(room.community_id) if room else await community_tz(0)


# ---------------------------------------------------------------- intercom


@resident_router.get(
    "/intercom/calls",
    response_model=Page[CallOut],
    summary="正在呼叫我家的对讲 · calls ringing for my household",
)
async def list_ringing_calls(
    resident: ResidentDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[CallOut]:
    calls, nxt = page_list(await intercom.ringing_calls(resident.id), cursor, limit, lambda c: c.id)
    doors = {d.id: d.name for d in await Device.filter(id__in={c.device_id for c in calls})}
    items = []
    for c in calls:
        tz = await community_tz(c.community_id)
        label = await room_label(c.room_id)
        items.append(CallOut(**intercom.call_out(c, doors.get(c.device_id, ""), label, tz)))
    return Page(items=items, next=nxt)


@resident_router.post(
    "/intercom/calls/{call_id}/accept",
    response_model=CallAnswered,
    responses=errors(409, 502, 504),
    summary="接听并开门 · answer and open (Idempotency-Key: a retry never opens twice)",
)
async def accept_intercom_call(
    call_id: PathId,
    resident: ResidentDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> CallAnswered:
    async def action() -> CallAnswered:
        answered = await intercom.accept_call(runtime, resident, call_id)
        tz = await community_tz(answered.call.community_id)
        return CallAnswered(**intercom.answered_out(answered, tz))

    return await run_once(
        scope=f"resident:{resident.id}",
        operation="acceptIntercomCall",
        key=idempotency_key,
        request_fingerprint=fingerprint(call_id),
        action=action,
    )


@resident_router.post(
    "/intercom/calls/{call_id}/decline",
    response_model=CallOut,
    responses=errors(409),
    summary="拒绝 · decline",
)
async def decline_intercom_call(
    call_id: PathId, resident: ResidentDep, runtime: RuntimeDep
) -> CallOut:
    call = await intercom.decline_call(runtime, resident, call_id)
    return CallOut(**intercom.call_out(call, tz=await community_tz(call.community_id)))


# ---------------------------------------------------------------- household code


@resident_router.put(
    "/households/{room_id}/door-code",
    response_model=DoorCodeSet,
    summary="设置亲友开门密码 · set the door code",
)
async def set_door_code(
    room_id: PathId, body: CodeIn, resident: ResidentDep, runtime: RuntimeDep
) -> DoorCodeSet:
    row = await codes.set_code(runtime, resident.id, room_id, body.code)
    tz = await _room_tz(room_id)
    return DoorCodeSet(room_id=room_id, updated_at=local_iso(row.updated_at, tz) or "", timezone=tz)


@resident_router.post(
    "/households/{room_id}/door-code/new",
    response_model=NewDoorCode,
    summary="一键更换开门密码 · a new random door code in one tap",
)
async def regenerate_door_code(
    room_id: PathId, resident: ResidentDep, runtime: RuntimeDep
) -> NewDoorCode:
    """The change offered when a member leaves: the old code stops at once; the new one
    is shown to this member only, once (only its keyed hash is kept)."""
    code = await codes.regenerate_code(runtime, resident.id, room_id)
    return NewDoorCode(room_id=room_id, code=code)


@resident_router.delete(
    "/households/{room_id}/door-code",
    response_model=Ok,
    summary="删除开门密码 · remove the door code",
)
async def clear_door_code(room_id: PathId, resident: ResidentDep) -> Ok:
    await codes.clear_code(resident.id, room_id)
    return Ok()


# ---------------------------------------------------------------- vehicles


@resident_router.get(
    "/households/{room_id}/vehicles",
    response_model=Page[VehicleOut],
    summary="登记车辆 · household vehicles",
)
async def list_vehicles(
    room_id: PathId, resident: ResidentDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[VehicleOut]:
    rows, nxt = page_list(
        await vehicles.household_vehicles(resident.id, room_id), cursor, limit, lambda v: v.id
    )
    return Page(items=[vehicle_out(v) for v in rows], next=nxt)


@resident_router.post(
    "/households/{room_id}/vehicles",
    status_code=201,
    response_model=VehicleOut,
    responses=errors(409),
    summary="登记车辆 · add a vehicle",
)
async def add_vehicle(room_id: PathId, body: VehicleIn, resident: ResidentDep) -> VehicleOut:
    return vehicle_out(await vehicles.add_vehicle(resident.id, room_id, body.plate))


@resident_router.delete(
    "/households/{room_id}/vehicles/{vehicle_id}",
    response_model=Ok,
    summary="删除车辆 · remove a vehicle",
)
async def remove_vehicle(room_id: PathId, vehicle_id: PathId, resident: ResidentDep) -> Ok:
    await vehicles.remove_vehicle(resident.id, room_id, vehicle_id)
    return Ok()


# ---------------------------------------------------------------- staff: blocklist, register


@staff_router.get(
    "/communities/{community_id}/blocklist",
    response_model=Page[BlockOut],
    summary="黑名单 · blocklist, newest first",
)
async def list_blocklist(
    community_id: PathId,
    principal: PrincipalDep,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[BlockOut]:
    rows, nxt = page_list(
        await blocklist.list_entries(principal, community_id),
        cursor,
        limit,
        lambda b: b.id,
        descending=True,
    )
    tz = await community_tz(community_id)
    return Page(items=[block_out(b, tz) for b in rows], next=nxt)


@staff_router.post(
    "/communities/{community_id}/blocklist",
    status_code=201,
    response_model=BlockOut,
    responses=errors(409),
    summary="加入黑名单 · add to the blocklist",
)
async def add_to_blocklist(
    community_id: PathId, body: BlockIn, principal: PrincipalDep
) -> BlockOut:
    entry = await blocklist.add_entry(
        principal, community_id, body.kind, body.reason, body.resident_id, body.plate
    )
    return block_out(entry, await community_tz(community_id))


@staff_router.delete(
    "/blocklist/{entry_id}",
    response_model=BlockOut,
    summary="移出黑名单 · remove from the blocklist",
)
async def remove_from_blocklist(entry_id: PathId, principal: PrincipalDep) -> BlockOut:
    entry = await blocklist.remove_entry(principal, entry_id)
    return block_out(entry, await community_tz(entry.community_id))


@staff_router.get(
    "/communities/{community_id}/visitor-register",
    response_model=Page[VisitOut],
    summary="访客登记簿 · visitor register, newest first",
)
async def list_visitor_register(
    community_id: PathId,
    principal: PrincipalDep,
    room_id: int | None = Query(None, gt=0, le=INT32_MAX),
    since: date | None = None,
    until: date | None = None,
    method: register.VisitMethod | None = None,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[VisitOut]:
    page, nxt = await keyset_page(
        lambda n, before: register.visits(
            principal,
            community_id,
            room_id=room_id,
            since=since,
            until=until,
            method=method,
            limit=n,
            before=before,
        ),
        cursor,
        limit,
        key=lambda v: v["event_id"],
    )
    tz = await community_tz(community_id)
    return Page(items=[VisitOut(**v, timezone=tz) for v in page], next=nxt)


@staff_router.get(
    "/communities/{community_id}/visitor-register.csv",
    response_class=Response,
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "UTF-8 with BOM; at most 10,000 rows, newest first",
        }
    },
    summary="导出访客登记簿 · export (CSV, UTF-8 with BOM)",
)
async def export_visitor_register(
    community_id: PathId,
    principal: PrincipalDep,
    room_id: int | None = Query(None, gt=0, le=INT32_MAX),
    since: date | None = None,
    until: date | None = None,
    method: register.VisitMethod | None = None,
) -> Response:
    rows = await register.visits(
        principal,
        community_id,
        room_id=room_id,
        since=since,
        until=until,
        method=method,
        limit=register.MAX_ROWS,
    )
    name = f"visitors-{community_id}-{since or 'all'}-{until or 'all'}.csv"
    return Response(
        register.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


for _r in (resident_router, staff_router):
    router.include_router(_r)
