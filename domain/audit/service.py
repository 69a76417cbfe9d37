"""Reading the audit log: who did what, in one community, newest first."""

from __future__ import annotations

from auth.permissions import Action, Principal, authorize
from models import AuditLog


async def read(
    principal: Principal,
    community_id: int,
    *,
    action: str = "",
    actor_id: int | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[AuditLog]:
    """`action`: an exact action or a prefix ending in "." (e.g. "staff.")."""
    authorize(principal, Action.AUDIT_READ, community_id)
    query = AuditLog.filter(community_id=community_id)
    if action.endswith("."):
        query = query.filter(action__startswith=action)
    elif action:
        query = query.filter(action=action)
    if actor_id is not None:
        query = query.filter(actor_id=actor_id)
    if before is not None:
        query = query.filter(id__lt=before)
    return await query.order_by("-id").limit(limit)
