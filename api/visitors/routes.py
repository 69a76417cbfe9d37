"""Intercom answers, household door codes and vehicles (residents); blocklists and the
visitor register (staff)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import Field

from anxin.timefmt import local_iso
from api.deps import PrincipalDep, ResidentDep, RuntimeDep
from api.schemas import Offset, Ok, PathId, Strict
from domain.visitors import blocklist, codes, intercom, register, vehicles
from domain.visitors.rooms import room_label
from models import BlockKind, BlocklistEntry, Device, Vehicle

router = APIRouter(prefix="/api/v1", tags=["visitors"])


class CodeIn(Strict):
    code: str = Field(min_length=1, max_length=16)


class VehicleIn(Strict):
    plate: str = Field(min_length=1, max_length=16)


class BlockIn(Strict):
    kind: BlockKind
    reason: str = Field(min_length=1, max_length=200)
    resident_id: int | None = Field(None, gt=0, le=2**31 - 1)
    plate: str | None = Field(None, max_length=16)


def vehicle_out(v: Vehicle) -> dict[str, Any]:
    return {"id": v.id, "room_id": v.room_id, "plate": v.plate}


def block_out(b: BlocklistEntry) -> dict[str, Any]:
    return {
        "id": b.id,
        "kind": b.kind.value,
        "resident_id": b.resident_id,
        "plate": b.plate,
        "reason": b.reason,
        "active": b.active,
        "created_at": local_iso(b.created_at, "Asia/Shanghai"),
    }


# ---------------------------------------------------------------- intercom


@router.get("/intercom/calls", summary="正在呼叫我家的对讲 · calls ringing for my household")
async def ringing(resident: ResidentDep) -> list[dict[str, Any]]:
    calls = await intercom.ringing_calls(resident.id)
    doors = {d.id: d.name for d in await Device.filter(id__in={c.device_id for c in calls})}
    return [
        intercom.call_out(c, doors.get(c.device_id, ""), await room_label(c.room_id)) for c in calls
    ]


@router.post(
    "/intercom/calls/{call_id}/accept",
    summary="接听并开门 · answer and open",
    responses={409: {}, 504: {}},
)
async def accept(call_id: PathId, resident: ResidentDep, runtime: RuntimeDep) -> dict[str, Any]:
    return intercom.answered_out(await intercom.accept_call(runtime, resident, call_id))


@router.post("/intercom/calls/{call_id}/decline", summary="拒绝 · decline", responses={409: {}})
async def decline(call_id: PathId, resident: ResidentDep, runtime: RuntimeDep) -> dict[str, Any]:
    return intercom.call_out(await intercom.decline_call(runtime, resident, call_id))


# ---------------------------------------------------------------- household code


@router.put("/households/{room_id}/door-code", summary="设置亲友开门密码 · set the door code")
async def set_code(
    room_id: PathId, body: CodeIn, resident: ResidentDep, runtime: RuntimeDep
) -> dict[str, Any]:
    row = await codes.set_code(runtime, resident.id, room_id, body.code)
    return {"room_id": room_id, "set": True, "updated_at": row.updated_at}


@router.post(
    "/households/{room_id}/door-code/new",
    summary="一键更换开门密码 · a new random door code in one tap",
)
async def new_code(room_id: PathId, resident: ResidentDep, runtime: RuntimeDep) -> dict[str, Any]:
    """The change offered when a member leaves: the old code stops at once; the new one
    is shown to this member only, once (only its keyed hash is kept)."""
    code = await codes.regenerate_code(runtime, resident.id, room_id)
    return {"room_id": room_id, "code": code}


@router.delete("/households/{room_id}/door-code", summary="删除开门密码 · remove the door code")
async def clear_code(room_id: PathId, resident: ResidentDep) -> Ok:
    await codes.clear_code(resident.id, room_id)
    return Ok()


# ---------------------------------------------------------------- vehicles


@router.get("/households/{room_id}/vehicles", summary="登记车辆 · household vehicles")
async def list_vehicles(room_id: PathId, resident: ResidentDep) -> list[dict[str, Any]]:
    return [vehicle_out(v) for v in await vehicles.household_vehicles(resident.id, room_id)]


@router.post("/households/{room_id}/vehicles", status_code=201, summary="登记车辆 · add a vehicle")
async def add_vehicle(room_id: PathId, body: VehicleIn, resident: ResidentDep) -> dict[str, Any]:
    return vehicle_out(await vehicles.add_vehicle(resident.id, room_id, body.plate))


@router.delete("/households/{room_id}/vehicles/{vehicle_id}", summary="删除车辆 · remove")
async def remove_vehicle(room_id: PathId, vehicle_id: PathId, resident: ResidentDep) -> Ok:
    await vehicles.remove_vehicle(resident.id, room_id, vehicle_id)
    return Ok()


# ---------------------------------------------------------------- staff: blocklist, register


@router.get("/staff/communities/{community_id}/blocklist", summary="黑名单 · blocklist")
async def list_blocks(community_id: PathId, principal: PrincipalDep) -> list[dict[str, Any]]:
    return [block_out(b) for b in await blocklist.list_entries(principal, community_id)]


@router.post(
    "/staff/communities/{community_id}/blocklist", status_code=201, summary="加入黑名单 · add"
)
async def add_block(community_id: PathId, body: BlockIn, principal: PrincipalDep) -> dict[str, Any]:
    entry = await blocklist.add_entry(
        principal, community_id, body.kind, body.reason, body.resident_id, body.plate
    )
    return block_out(entry)


@router.delete("/staff/blocklist/{entry_id}", summary="移出黑名单 · remove")
async def remove_block(entry_id: PathId, principal: PrincipalDep) -> dict[str, Any]:
    return block_out(await blocklist.remove_entry(principal, entry_id))


@router.get(
    "/staff/communities/{community_id}/visitor-register", summary="访客登记簿 · visitor register"
)
async def visitor_register(
    community_id: PathId,
    principal: PrincipalDep,
    room_id: int | None = Query(None, gt=0, le=2**31 - 1),
    since: date | None = None,
    until: date | None = None,
    method: register.VisitMethod | None = None,
    limit: int = Query(500, ge=1, le=register.MAX_ROWS),
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    return await register.visits(
        principal,
        community_id,
        room_id=room_id,
        since=since,
        until=until,
        method=method,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/staff/communities/{community_id}/visitor-register.csv",
    summary="导出访客登记簿 · export (CSV, UTF-8 with BOM)",
)
async def visitor_register_csv(
    community_id: PathId,
    principal: PrincipalDep,
    room_id: int | None = Query(None, gt=0, le=2**31 - 1),
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
