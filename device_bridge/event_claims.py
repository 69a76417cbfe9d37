"""The durable claim of a device event: act only if recorded.

A device event is handled by whoever inserts its claim row (unique key = device uid +
event id) first; that insert happens before any door moves. Every other delivery of the
same event (a QoS 1 re-send, a second bridge process, a replay after a restart) finds the
row and is logged, never acted on. A claim is held for a lease only: it is finished once
the event's effect is written, and one still unfinished after its lease (its handler
crashed or raised past the error row) is taken over, by a redelivery or by the bridge's
resume loop, and handled again, once. If a door command already went out under the old
holder (`command_id`), the takeover writes the row from that command's outcome instead
of opening the door a second time.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Literal

from tortoise.exceptions import IntegrityError

from anxin.clock import utcnow
from models import DeviceEventClaim, DeviceEventState

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # a claim taken over this often is closed with an error row, not retried

Refusal = Literal["duplicate", "in_progress"]


async def claim(
    event_key: str, device_id: int, event_type: str, payload: dict[str, Any], lease_s: float
) -> tuple[DeviceEventClaim | None, Refusal | None]:
    """(the claim, None) when this delivery is to be handled; (None, why) when it is not."""
    now = utcnow()
    try:
        row = await DeviceEventClaim.create(
            event_key=event_key,
            device_id=device_id,
            event_type=event_type,
            lease_until=now + timedelta(seconds=lease_s),
            payload=payload,
        )
        return row, None
    except IntegrityError:
        pass
    existing = await DeviceEventClaim.get_or_none(event_key=event_key)
    if existing is None or existing.state == DeviceEventState.DONE:
        return None, "duplicate"
    if existing.lease_until > now:
        return None, "in_progress"  # its holder is still within its time
    taken = await take_over(existing, lease_s)
    return (taken, None) if taken is not None else (None, "in_progress")


async def take_over(row: DeviceEventClaim, lease_s: float) -> DeviceEventClaim | None:
    """Take an expired claim; None when another process took it first."""
    now = utcnow()
    updated = await DeviceEventClaim.filter(
        id=row.id,
        state=DeviceEventState.HANDLING,
        attempts=row.attempts,
        lease_until__lte=now,
    ).update(attempts=row.attempts + 1, lease_until=now + timedelta(seconds=lease_s))
    if not updated:
        return None
    await row.refresh_from_db()
    log.warning(
        "device event %s: claim expired unfinished, taken over (attempt %d)",
        row.event_key,
        row.attempts,
    )
    return row


class ClaimLost(RuntimeError):
    """The lease ran out and another holder took the event over: this one must stop."""


async def note_command(row: DeviceEventClaim, command_id: str, pending: dict[str, Any]) -> None:
    """Before a door command goes out: what a takeover must write instead of re-opening.
    Only the current holder may send: raises ClaimLost when the claim was taken over."""
    updated = await DeviceEventClaim.filter(
        id=row.id, attempts=row.attempts, state=DeviceEventState.HANDLING
    ).update(command_id=command_id, pending=pending)
    if not updated:
        raise ClaimLost(row.event_key)
    row.command_id, row.pending = command_id, pending


async def finish(row: DeviceEventClaim, outcome: str) -> None:
    await DeviceEventClaim.filter(id=row.id).update(
        state=DeviceEventState.DONE,
        outcome=outcome[:64],
        payload=None,
        pending=None,
        finished_at=utcnow(),
    )


async def expired(limit: int = 100) -> list[DeviceEventClaim]:
    """Claims whose lease ran out unfinished, oldest first (for the resume loop)."""
    return (
        await DeviceEventClaim.filter(state=DeviceEventState.HANDLING, lease_until__lte=utcnow())
        .order_by("lease_until")
        .limit(limit)
    )


async def purge(older_than_s: float) -> int:
    """Drop finished claims past retention (their age alone now refuses a replay)."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    return await DeviceEventClaim.filter(
        state=DeviceEventState.DONE, received_at__lt=cutoff
    ).delete()
