"""Event handlers that need nothing but the community's own records: cards and alarms.

Faces, passes, codes, plates and intercom calls register their handlers from their
own capability modules.
"""

from __future__ import annotations

from anxin.runtime import Runtime
from anxin.scheduler import JobContext, registry
from device_bridge import event_claims
from device_bridge.service import BRIDGE, AccessAttempt, EventContext
from domain.access.policy import Decision, card_by_number, resident_may_enter
from domain.alarms.service import raise_alarm
from models import AccessMethod, AlarmKind


async def on_card_swipe(ctx: EventContext) -> AccessAttempt:
    # A disabled card is still looked up, so the log says why its holder was refused
    # (moved out, blocked...) or that the card itself was disabled, not "unknown card".
    card = await card_by_number(ctx.device.community_id, ctx.event.card_no)
    decision = await resident_may_enter(
        ctx.device, card.resident_id if card else None, AccessMethod.CARD
    )
    if card is None:
        decision.reason = "unknown_card" if decision.reason == "unknown_person" else decision.reason
    elif not card.active and decision.granted:
        decision = Decision.deny("card_disabled", resident_id=card.resident_id)
    if decision.alarm is not None:
        await raise_alarm(
            ctx.bridge.runtime,
            ctx.device.community_id,
            decision.alarm,
            device_id=ctx.device.id,
            event_key=ctx.event_key,
            details={"method": "card", "resident_id": decision.resident_id},
        )
    return AccessAttempt(
        AccessMethod.CARD,
        decision,
        person_id=str(decision.resident_id) if decision.resident_id else None,
    )


async def on_door_state(ctx: EventContext) -> None:
    kinds = {"held_open": AlarmKind.HELD_OPEN, "forced_open": AlarmKind.FORCED_OPEN}
    kind = kinds.get(ctx.event.state)
    if kind is not None:
        await raise_alarm(
            ctx.bridge.runtime,
            ctx.device.community_id,
            kind,
            device_id=ctx.device.id,
            event_key=ctx.event_key,
            details={"door": ctx.event.door, "device": ctx.device.name},
        )


async def on_fence_alarm(ctx: EventContext) -> None:
    if ctx.event.alarm == "cleared":
        return
    await raise_alarm(
        ctx.bridge.runtime,
        ctx.device.community_id,
        AlarmKind.FENCE,
        device_id=ctx.device.id,
        event_key=ctx.event_key,
        details={"zone": ctx.event.zone, "alarm": ctx.event.alarm, "device": ctx.device.name},
    )


async def job_purge_event_claims(ctx: JobContext) -> int:
    return int(await event_claims.purge(ctx.runtime.settings.event_claim_ttl_s))


def install(runtime: Runtime) -> None:
    registry.add_job(
        "purge_device_event_claims", job_purge_event_claims, seconds=3600, replace=True
    )
    bridge = runtime.get(BRIDGE)
    bridge.register_event("card_swipe", on_card_swipe)
    bridge.register_event("door_state", on_door_state)
    bridge.register_event("fence_alarm", on_fence_alarm)
