"""Residents open their doors from the mini-program."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from api.deps import PrincipalDep, ResidentDep, RuntimeDep
from api.schemas import PathId, Strict
from domain.doors import service

router = APIRouter(prefix="/api/v1", tags=["doors"])


@router.get("/doors", summary="我可以开的门 · doors I may open")
async def my_doors(resident: ResidentDep) -> list[dict[str, Any]]:
    return [
        {
            "id": d.id,
            "name": d.name,
            "kind": d.kind.value,
            "community_id": d.community_id,
            "building_id": d.building_id,
            "unit_id": d.unit_id,
            "place": d.place,
            "online": d.online,
        }
        for d in await service.my_doors(resident.id)
    ]


@router.post(
    "/doors/{device_id}/open",
    summary="远程开门 · open a door remotely",
    responses={403: {}, 404: {}, 429: {}, 502: {}, 504: {}},
)
async def open_door(
    device_id: PathId, resident: ResidentDep, runtime: RuntimeDep
) -> dict[str, Any]:
    result = await service.open_remotely(runtime, resident, device_id)
    return {
        "opened": True,
        "event_id": result.event_id,
        "command_id": result.command_id,
        "latency_ms": result.latency_ms,
    }


class StaffOpenIn(Strict):
    reason: str = Field(min_length=1, max_length=200)


@router.post(
    "/staff/devices/{device_id}/open",
    tags=["doors"],
    summary="值班开门 · a guard opens a door now (with a reason; logged and audited)",
    responses={403: {}, 404: {}, 409: {}, 502: {}, 504: {}},
)
async def staff_open_door(
    device_id: PathId, body: StaffOpenIn, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    result = await service.staff_open(runtime, principal, device_id, body.reason)
    return {
        "opened": True,
        "event_id": result.event_id,
        "command_id": result.command_id,
        "latency_ms": result.latency_ms,
    }
