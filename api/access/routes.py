"""Staff read the access log and handle alarms."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import Field

from anxin.timefmt import local_iso
from api.deps import PrincipalDep, RuntimeDep
from api.schemas import Offset, PathId, QueryId, Strict, When
from domain.access import service
from domain.access.policy import REASONS_EN, REASONS_ZH
from domain.alarms import service as alarms
from models import AccessEvent, AccessMethod, AccessResult, Alarm, AlarmState, Community

router = APIRouter(prefix="/api/v1/staff", tags=["access log"])


class AlarmUpdate(Strict):
    state: AlarmState
    note: str = Field("", max_length=200)


def event_out(e: AccessEvent, tz: str) -> dict[str, Any]:
    return {
        "id": e.id,
        "device_id": e.device_id,
        "method": e.method.value,
        "result": e.result.value,
        "reason": e.reason,
        "reason_zh": REASONS_ZH.get(e.reason, e.reason),
        "reason_en": REASONS_EN.get(e.reason, e.reason),
        "resident_id": e.resident_id,
        "room_id": e.room_id,
        "pass_id": e.pass_id,
        "requested_by_id": e.requested_by_id,
        "plate": e.plate,
        "score": e.score,
        "snapshot": bool(e.snapshot_ref),
        "command_id": e.command_id,
        "occurred_at": local_iso(e.occurred_at, tz),
        "recorded_at": local_iso(e.created_at, tz),
    }


def alarm_out(a: Alarm, tz: str) -> dict[str, Any]:
    zh, en = alarms.ALARM_TEXT[a.kind]
    return {
        "id": a.id,
        "kind": a.kind.value,
        "title_zh": zh,
        "title_en": en,
        "state": a.state.value,
        "device_id": a.device_id,
        "details": a.details,
        "note": a.note,
        "created_at": local_iso(a.created_at, tz),
        "handled_at": local_iso(a.handled_at, tz),
    }


async def _tz(community_id: int) -> str:
    community = await Community.get(id=community_id)
    return community.timezone


@router.get("/communities/{community_id}/access-events")
async def access_events(
    community_id: PathId,
    principal: PrincipalDep,
    method: AccessMethod | None = None,
    result: AccessResult | None = None,
    resident_id: QueryId = None,
    device_id: QueryId = None,
    # Without an offset, or a bare date, in the community's zone.
    since: When | None = None,
    until: When | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    rows = await service.access_events(
        principal,
        community_id,
        method=method,
        result=result,
        resident_id=resident_id,
        device_id=device_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    tz = await _tz(community_id)
    return [event_out(e, tz) for e in rows]


@router.get(
    "/access-events/{event_id}/snapshot",
    summary="The gate's snapshot of one access event (JPEG; each view audited)",
    response_class=Response,
)
async def access_event_snapshot(
    event_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> Response:
    data = await service.snapshot(runtime, principal, event_id)
    return Response(data, media_type="image/jpeg", headers={"cache-control": "no-store"})


@router.get("/communities/{community_id}/alarms")
async def list_alarms(
    community_id: PathId,
    principal: PrincipalDep,
    state: AlarmState | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    rows = await alarms.list_alarms(principal, community_id, state, limit, offset)
    tz = await _tz(community_id)
    return [alarm_out(a, tz) for a in rows]


@router.post("/alarms/{alarm_id}")
async def update_alarm(
    alarm_id: PathId, body: AlarmUpdate, principal: PrincipalDep
) -> dict[str, Any]:
    a = await alarms.handle_alarm(principal, alarm_id, body.state, body.note)
    return alarm_out(a, await _tz(a.community_id))
