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

from anxin.batching import Batcher
from anxin.clock import utcnow
from device_bridge.doors import COMMAND_COLUMNS
from models import DeviceCommand, DeviceEventClaim, DeviceEventState
from models.bulk import Update, in_transaction, insert_many, insert_where_updated, update_each

log = logging.getLogger(__name__)

SERVER_OPEN = "server_open"  # the claim of an open the server starts (remote, staff, intercom)
MAX_ATTEMPTS = 3  # a claim taken over this often is closed with an error row, not retried

Refusal = Literal["duplicate", "in_progress"]


def _fields(
    event_key: str,
    device_id: int,
    event_type: str,
    payload: dict[str, Any],
    lease_s: float,
    command_id: str,
    pending: dict[str, Any] | None,
) -> dict[str, Any]:
    now = utcnow()
    return dict(
        event_key=event_key,
        device_id=device_id,
        event_type=event_type,
        state=DeviceEventState.HANDLING,
        lease_until=now + timedelta(seconds=lease_s),
        attempts=1,
        command_id=command_id,
        pending=pending,
        payload=payload,
        outcome="",
        received_at=now,
        finished_at=None,
    )


def new_claim(
    event_key: str,
    device_id: int,
    event_type: str,
    payload: dict[str, Any],
    lease_s: float,
    *,
    command_id: str = "",
    pending: dict[str, Any] | None = None,
) -> DeviceEventClaim:
    """A claim not yet written, for a key nobody else can have (a new command id): the
    caller writes it (with the command's row, before the command goes out)."""
    return DeviceEventClaim(
        **_fields(event_key, device_id, event_type, payload, lease_s, command_id, pending)
    )


async def claim(
    event_key: str,
    device_id: int,
    event_type: str,
    payload: dict[str, Any],
    lease_s: float,
    *,
    command_id: str = "",
    pending: dict[str, Any] | None = None,
) -> tuple[DeviceEventClaim | None, Refusal | None]:
    """(the claim, None) when this delivery is to be handled; (None, why) when it is not.
    A claim taken for a command the caller is about to send carries it from the start."""
    now = utcnow()
    fields = _fields(event_key, device_id, event_type, payload, lease_s, command_id, pending)
    if in_transaction(DeviceEventClaim):
        try:
            return await DeviceEventClaim.create(**fields), None
        except IntegrityError:
            pass
    else:
        # Group commit: the claims of every event that arrived meanwhile, one INSERT.
        row = await _NEW_CLAIMS.submit(fields)
        if row is not None:
            return row, None
    existing = await DeviceEventClaim.get_or_none(event_key=event_key)
    if existing is None or existing.state == DeviceEventState.DONE:
        return None, "duplicate"
    if existing.lease_until > now:
        return None, "in_progress"  # its holder is still within its time
    taken = await take_over(existing, lease_s)
    return (taken, None) if taken is not None else (None, "in_progress")


async def _insert_claims(items: list[dict[str, Any]]) -> list[DeviceEventClaim | None]:
    """One INSERT for a batch of claims; None for each one whose key was already taken
    (by an earlier row, or by an earlier item of this batch)."""
    first: dict[str, dict[str, Any]] = {}
    for item in items:
        first.setdefault(item["event_key"], item)
    written = await insert_many(
        DeviceEventClaim, list(first.values()), conflict="event_key", returning=("id", "event_key")
    )
    ids = {r["event_key"]: r["id"] for r in written}
    out: list[DeviceEventClaim | None] = []
    for item in items:
        key = item["event_key"]
        if first.get(key) is item and key in ids:
            row = DeviceEventClaim(id=ids[key], **item)
            row._saved_in_db = True
            out.append(row)
        else:
            out.append(None)
    return out


_NEW_CLAIMS: Batcher[dict[str, Any], DeviceEventClaim | None] = Batcher(_insert_claims)


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


async def note_command(
    row: DeviceEventClaim,
    command_id: str,
    pending: dict[str, Any],
    command: DeviceCommand | None = None,
) -> None:
    """Before a door command goes out: what a takeover must write instead of re-opening.
    Only the current holder may send: raises ClaimLost when the claim was taken over.
    The `command`'s row is written with the note and only with it (group-committed: one
    statement on PostgreSQL); `command.id` is set."""
    if in_transaction(DeviceEventClaim):
        noted = await DeviceEventClaim.filter(
            id=row.id, attempts=row.attempts, state=DeviceEventState.HANDLING
        ).update(command_id=command_id, pending=pending)
        if noted and command is not None:
            await command.save()
    elif command is not None:
        noted = await _NOTES_WITH_COMMANDS.submit((row, command_id, pending, command))
    else:
        noted = await _NOTES.submit((row, command_id, pending))
    if not noted:
        raise ClaimLost(row.event_key)
    row.command_id, row.pending = command_id, pending


async def _note_commands(items: list[tuple[DeviceEventClaim, str, dict[str, Any]]]) -> list[bool]:
    """One UPDATE for a batch of notes, each only where its holder still holds the claim."""
    written = await update_each(
        DeviceEventClaim,
        "id",
        {row.id: {"command_id": cid, "pending": pending} for row, cid, pending in items},
        where={"state": DeviceEventState.HANDLING},
        match={row.id: {"attempts": row.attempts} for row, _, _ in items},
        returning=("id",),
    )
    noted = {r["id"] for r in written}
    return [row.id in noted for row, _, _ in items]


_NoteWithCommand = tuple[DeviceEventClaim, str, dict[str, Any], DeviceCommand]


async def _note_with_commands(items: list[_NoteWithCommand]) -> list[bool]:
    """A batch of notes and, for each note made, its command's row: one statement."""
    written = await insert_where_updated(
        DeviceCommand,
        {row.id: {n: getattr(cmd, n) for n in COMMAND_COLUMNS} for row, _, _, cmd in items},
        Update(
            DeviceEventClaim,
            "id",
            {row.id: {"command_id": cid, "pending": pending} for row, cid, pending, _ in items},
        ),
        where={"state": DeviceEventState.HANDLING},
        match={row.id: {"attempts": row.attempts} for row, *_ in items},
        returning=("id", "command_id"),
    )
    ids = {r["command_id"]: r["id"] for r in written}
    out = []
    for _, _, _, cmd in items:
        if cmd.command_id in ids:
            cmd.id = ids[cmd.command_id]
            cmd._saved_in_db = True
        out.append(cmd.command_id in ids)
    return out


_NOTES: Batcher[tuple[DeviceEventClaim, str, dict[str, Any]], bool] = Batcher(_note_commands)
_NOTES_WITH_COMMANDS: Batcher[_NoteWithCommand, bool] = Batcher(_note_with_commands)


async def finish(row: DeviceEventClaim, outcome: str) -> None:
    if row.state == DeviceEventState.DONE:
        return  # finished with its access row (domain.access.log.record_access)
    if in_transaction(DeviceEventClaim):
        await _finish_claims([(row, outcome)])
    else:
        await _FINISHED.submit((row, outcome))


async def _finish_claims(items: list[tuple[DeviceEventClaim, str]]) -> list[None]:
    await update_each(
        DeviceEventClaim,
        "id",
        {row.id: {"outcome": outcome[:64]} for row, outcome in items},
        same=DeviceEventClaim.done_fields(utcnow()),
    )
    return [None] * len(items)


_FINISHED: Batcher[tuple[DeviceEventClaim, str], None] = Batcher(_finish_claims)


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
