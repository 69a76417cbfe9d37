"""The audit trail: every staff and security action is written down (`audit.record`);
reading it is `domain.audit.service`."""

from __future__ import annotations

from typing import Any

from tortoise.models import Model

from anxin.context import current_request_id
from models import AuditLog
from models.bulk import insert_linked


def _entry(
    action: str,
    *,
    actor_type: str,
    actor_id: int | None,
    community_id: int | None,
    target_type: str,
    target_id: object,
    details: dict[str, Any] | None,
) -> AuditLog:
    """An audit record not yet written, stamped with the request that made it."""
    return AuditLog(
        actor_type=actor_type,
        actor_id=actor_id,
        community_id=community_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        details=details or {},
        request_id=current_request_id(),
    )


async def record(
    action: str,
    *,
    actor_type: str,
    actor_id: int | None,
    community_id: int | None = None,
    target_type: str = "",
    target_id: object = "",
    details: dict[str, Any] | None = None,
) -> AuditLog:
    entry = _entry(
        action,
        actor_type=actor_type,
        actor_id=actor_id,
        community_id=community_id,
        target_type=target_type,
        target_id=target_id,
        details=details,
    )
    await entry.save()
    return entry


async def create_recorded(
    row: Model,
    action: str,
    *,
    actor_type: str,
    actor_id: int | None,
    community_id: int | None = None,
    target_type: str = "",
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Write the new `row` and its audit record (target: the row's id) together: one
    statement on PostgreSQL, one transaction elsewhere (never the row without its record,
    and one commit instead of two)."""
    entry = _entry(
        action,
        actor_type=actor_type,
        actor_id=actor_id,
        community_id=community_id,
        target_type=target_type,
        target_id="",
        details=details,
    )
    await insert_linked(row, entry, "target_id")
    return entry
