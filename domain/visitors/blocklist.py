"""Staff keep blocklists of people and plates; a hit at any door raises an alarm."""

from __future__ import annotations

from typing import Any

from anxin.errors import invalid, not_found
from auth.permissions import Action, Principal, authorize
from domain import audit
from domain.passes.plates import parse_plate
from models import BlockKind, BlocklistEntry, Resident


async def list_entries(principal: Principal, community_id: int) -> list[BlocklistEntry]:
    authorize(principal, Action.BLOCKLIST_MANAGE, community_id)
    return await BlocklistEntry.filter(community_id=community_id, active=True).order_by("-id")


async def add_entry(
    principal: Principal,
    community_id: int,
    kind: BlockKind,
    reason: str,
    resident_id: int | None = None,
    plate: str | None = None,
) -> BlocklistEntry:
    authorize(principal, Action.BLOCKLIST_MANAGE, community_id)
    if kind == BlockKind.PERSON:
        if resident_id is None or not await Resident.exists(id=resident_id):
            raise invalid("resident_required", "请指定住户", "a person entry needs resident_id")
        fields: dict[str, Any] = {"resident_id": resident_id}
    else:
        if not plate:
            raise invalid("plate_required", "请填写车牌", "a plate entry needs plate")
        fields = {"plate": parse_plate(plate)}
    entry = await BlocklistEntry.create(
        community_id=community_id, kind=kind, reason=reason, created_by_id=principal.id, **fields
    )
    await audit.record(
        "blocklist.add",
        **principal.audit_actor(),
        community_id=community_id,
        target_type="blocklist",
        target_id=entry.id,
        details={"kind": kind.value, "reason": reason, **fields},
    )
    return entry


async def remove_entry(principal: Principal, entry_id: int) -> BlocklistEntry:
    entry = await BlocklistEntry.get_or_none(id=entry_id, active=True)
    if entry is None:
        raise not_found("blocklist entry")
    authorize(principal, Action.BLOCKLIST_MANAGE, entry.community_id)
    entry.active = False
    await entry.save(update_fields=["active"])
    await audit.record(
        "blocklist.remove",
        **principal.audit_actor(),
        community_id=entry.community_id,
        target_type="blocklist",
        target_id=entry.id,
    )
    return entry
