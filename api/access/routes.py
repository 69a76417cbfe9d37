"""Staff read the access log and handle alarms."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query, Response

from anxin.timefmt import local_iso
from api.access.schemas import AccessEventOut, AlarmOut, AlarmUpdate
from api.contract import (
    PAGE_DEFAULT,
    STAFF,
    Cursor,
    Limit,
    Page,
    api_router,
    community_tz,
    errors,
    keyset_page,
)
from api.deps import PrincipalDep, RuntimeDep
from api.schemas import INT32_MAX, PathId
from domain.access import service
from domain.access.policy import reason_text
from domain.alarms import service as alarms
from models import AccessEvent, AccessMethod, AccessResult, Alarm, AlarmState

router = api_router("/api/v1/staff", tags=[STAFF])


def event_out(e: AccessEvent, tz: str) -> AccessEventOut:
    return AccessEventOut(
        id=e.id,
        device_id=e.device_id,
        method=e.method,
        result=e.result,
        reason=e.reason,
        reason_zh=reason_text(e.reason, "zh"),
        reason_en=reason_text(e.reason, "en"),
        resident_id=e.resident_id,
        room_id=e.room_id,
        pass_id=e.pass_id,
        requested_by_id=e.requested_by_id,
        plate=e.plate,
        score=e.score,
        snapshot=bool(e.snapshot_ref),
        command_id=e.command_id,
        occurred_at=local_iso(e.occurred_at, tz) or "",
        recorded_at=local_iso(e.created_at, tz) or "",
        timezone=tz,
    )


def alarm_out(a: Alarm, tz: str) -> AlarmOut:
    zh, en = alarms.ALARM_TEXT[a.kind]
    return AlarmOut(
        id=a.id,
        kind=a.kind,
        title_zh=zh,
        title_en=en,
        state=a.state,
        device_id=a.device_id,
        details=a.details or {},
        note=a.note,
        created_at=local_iso(a.created_at, tz) or "",
        handled_at=local_iso(a.handled_at, tz),
        timezone=tz,
    )


@router.get(
    "/communities/{community_id}/access-events",
    response_model=Page[AccessEventOut],
    summary="The access log, newest first",
)
async def list_access_events(
    community_id: PathId,
    principal: PrincipalDep,
    method: AccessMethod | None = None,
    result: AccessResult | None = None,
    resident_id: int | None = Query(None, gt=0, le=INT32_MAX),
    device_id: int | None = Query(None, gt=0, le=INT32_MAX),
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[AccessEventOut]:
    page, nxt = await keyset_page(
        lambda n, before: service.access_events(
            principal,
            community_id,
            method=method,
            result=result,
            resident_id=resident_id,
            device_id=device_id,
            since=since,
            until=until,
            limit=n,
            before=before,
        ),
        cursor,
        limit,
    )
    tz = await community_tz(community_id)
    return Page(items=[event_out(e, tz) for e in page], next=nxt)


@router.get(
    "/communities/{community_id}/alarms",
    response_model=Page[AlarmOut],
    summary="Alarms, newest first",
)
async def list_alarms(
    community_id: PathId,
    principal: PrincipalDep,
    state: AlarmState | None = None,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[AlarmOut]:
    page, nxt = await keyset_page(
        lambda n, before: alarms.list_alarms(
            principal, community_id, state=state, limit=n, before=before
        ),
        cursor,
        limit,
    )
    tz = await community_tz(community_id)
    return Page(items=[alarm_out(a, tz) for a in page], next=nxt)


@router.get(
    "/access-events/{event_id}/snapshot",
    response_class=Response,
    responses={
        200: {
            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the gate's photo",
        },
        **errors(410),
    },
    summary="The gate's snapshot of one access event (JPEG; each view audited)",
)
async def get_access_event_snapshot(
    event_id: Annotated[int, Path(gt=0, le=2**63 - 1)], principal: PrincipalDep, runtime: RuntimeDep
) -> Response:
    data = await service.snapshot(runtime, principal, event_id)
    return Response(data, media_type="image/jpeg", headers={"cache-control": "no-store"})


@router.post(
    "/alarms/{alarm_id}",
    response_model=AlarmOut,
    responses=errors(409),
    summary="Acknowledge or close an alarm",
)
async def handle_alarm(alarm_id: PathId, body: AlarmUpdate, principal: PrincipalDep) -> AlarmOut:
    a = await alarms.handle_alarm(principal, alarm_id, body.state, body.note)
    return alarm_out(a, await community_tz(a.community_id))
