"""Writing door decisions down: one access-event row per decision, always with its reason."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError

from domain.access.policy import Decision
from models import AccessEvent, AccessMethod, AccessResult, Device


async def record_access(
    device: Device | None,
    community_id: int,
    method: AccessMethod,
    decision: Decision,
    *,
    result: AccessResult | None = None,
    event_key: str | None = None,
    command_id: str = "",
    requested_by_id: int | None = None,
    plate: str = "",
    snapshot_ref: str = "",
    occurred_at: datetime | None = None,
) -> AccessEvent | None:
    """The row, or None when `event_key` was already written (a redelivered event)."""
    if result is None:
        result = AccessResult.GRANTED if decision.granted else AccessResult.DENIED
    fields: dict[str, Any] = dict(
        community_id=community_id,
        device_id=device.id if device else None,
        method=method,
        result=result,
        reason=decision.reason,
        resident_id=decision.resident_id,
        room_id=decision.room_id,
        pass_id=decision.pass_id,
        requested_by_id=requested_by_id,
        plate=plate,
        score=decision.score,
        snapshot_ref=snapshot_ref,
        command_id=command_id,
        event_key=event_key,
    )
    if occurred_at is not None:
        fields["occurred_at"] = occurred_at
    try:
        return await AccessEvent.create(**fields)
    except IntegrityError:
        if event_key is None:
            raise
        return None
