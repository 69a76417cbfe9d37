"""Residents open their doors from the mini-program."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.contract import (
    PAGE_DEFAULT,
    RESIDENT,
    STAFF,
    Cursor,
    Limit,
    Page,
    api_router,
    errors,
    page_list,
)
from api.deps import PrincipalDep, ResidentCallerDep, RuntimeDep, noted
from api.doors.schemas import DoorOpened, DoorOut, StaffOpenIn
from api.idempotency import IdempotencyKey, fingerprint, run_once
from api.schemas import PathId
from auth.permissions import require_resident
from domain.doors import service

resident_router = api_router("/api/v1", tags=[RESIDENT])
staff_router = api_router("/api/v1/staff", tags=[STAFF])


@resident_router.get(
    "/doors", response_model=Page[DoorOut], summary="我可以开的门 · doors I may open"
)
async def list_my_doors(
    request: Request, caller: ResidentCallerDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[DoorOut]:
    # The caller's row and the doors in one statement; the caller is refused as every
    # route refuses it.
    principal, doors = await service.caller_doors(caller.subject_id)
    noted(request, principal)
    doors, nxt = page_list(doors, cursor, limit, lambda d: d.id)
    items = [
        DoorOut(
            id=d.id,
            name=d.name,
            kind=d.kind,
            community_id=d.community_id,
            building_id=d.building_id,
            unit_id=d.unit_id,
            place=d.place,
            online=d.online,
        )
        for d in doors
    ]
    return Page(items=items, next=nxt)


@resident_router.post(
    "/doors/{device_id}/open",
    response_model=DoorOpened,
    responses=errors(409, 429, 502, 504),
    summary="远程开门 · open a door remotely (send an Idempotency-Key: a retry never opens twice)",
)
async def open_door(
    request: Request,
    device_id: PathId,
    caller: ResidentCallerDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> DoorOpened:
    # The caller's row and the door in one statement, read before the key is claimed;
    # the caller is refused as every route refuses it.
    principal, device = await service.caller_and_door(caller.subject_id, device_id)
    resident = require_resident(noted(request, principal))

    async def action() -> DoorOpened:
        result = await service.open_remotely(runtime, resident, device)
        return DoorOpened(
            event_id=result.event_id, command_id=result.command_id, latency_ms=result.latency_ms
        )

    return await run_once(
        scope=f"resident:{resident.id}",
        operation="openDoor",
        key=idempotency_key,
        request_fingerprint=fingerprint(device_id),
        action=action,
    )


@staff_router.post(
    "/devices/{device_id}/open",
    response_model=DoorOpened,
    responses=errors(409, 502, 504),
    summary="值班开门 · a guard opens a door now (with a reason; logged and audited)",
)
async def staff_open_door(
    device_id: PathId, body: StaffOpenIn, principal: PrincipalDep, runtime: RuntimeDep
) -> DoorOpened:
    result = await service.staff_open(runtime, principal, device_id, body.reason)
    return DoorOpened(
        event_id=result.event_id, command_id=result.command_id, latency_ms=result.latency_ms
    )


router = APIRouter()
for _r in (resident_router, staff_router):
    router.include_router(_r)
