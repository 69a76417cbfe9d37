"""`emit()`: how every capability raises a notification.

Call it inside the transaction that records the event itself (the approval, the door
opening, the alarm): the outbox row commits or rolls back with it, so an event is never
notified without having happened, nor lost because the process died right after it. The
dispatcher delivers the row later (normally within milliseconds).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from anxin.clock import utcnow
from models import OutboxEvent, StaffRoleName
from models.bulk import insert_many, new_row_values
from notifications.catalog import get_type

log = logging.getLogger(__name__)

# Dispatchers of this process, woken right after an emit so delivery does not wait for
# the next poll. A hint only: correctness rests on the poll and the table.
_wakers: weakref.WeakSet[Any] = weakref.WeakSet()


def register_waker(obj: Any) -> None:
    """`obj.wake()` is called shortly after every emit in this process."""
    _wakers.add(obj)


def _wake_soon() -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return

    # The caller's transaction usually commits within a few milliseconds: wake twice.
    loop.call_later(0.002, _wake_all)
    loop.call_later(0.03, _wake_all)


def queued() -> None:
    """Tell this process's dispatchers that outbox rows were written and committed (by a
    caller that wrote them itself in an autocommitted statement, as an access row's
    notice): one wake, now (no guessing when a transaction commits)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    loop.call_soon(_wake_all)


def _wake_all() -> None:
    for w in list(_wakers):
        w.wake()


def _ids(values: Iterable[int]) -> list[int]:
    return sorted({int(v) for v in values})


async def emit(
    event_type: str,
    *,
    payload: dict[str, Any],
    community_id: int | None,
    residents: Iterable[int] = (),
    rooms: Iterable[int] = (),
    staff: Iterable[int] = (),
    staff_roles: Iterable[StaffRoleName | str] = (),
    dedupe_key: str | None = None,
    occurred_at: datetime | None = None,
    connection: BaseDBAsyncClient | None = None,
) -> OutboxEvent:
    """Queue a notification for delivery.

    Recipients: `residents` by id, every approved member of `rooms`, `staff` by id, and
    every active staff member of `community_id` holding one of `staff_roles`.
    `dedupe_key` makes emitting twice harmless (two workers reacting to one bus message,
    a job rerun): the second call returns the first row. Raises ValueError for an unknown
    type, a missing payload field or no recipients: those are bugs, not runtime states.
    """
    row = outbox_row(
        event_type,
        payload=payload,
        community_id=community_id,
        residents=residents,
        rooms=rooms,
        staff=staff,
        staff_roles=staff_roles,
        dedupe_key=dedupe_key,
        occurred_at=occurred_at,
    )
    if dedupe_key is None:
        await row.save(using_db=connection)
    else:
        # ON CONFLICT DO NOTHING: a duplicate must not abort the caller's transaction.
        await OutboxEvent.bulk_create([row], ignore_conflicts=True, using_db=connection)
        query = OutboxEvent.filter(dedupe_key=dedupe_key)
        row = await (query.using_db(connection) if connection else query).get()
    _wake_soon()
    return row


async def emit_many(rows: list[OutboxEvent]) -> None:
    """Queue many notifications built by `outbox_row` in one INSERT (a group commit's
    notices, in the caller's transaction); rows with a `dedupe_key` already queued are
    skipped, as `emit` skips them. Nothing is returned: the caller has its own records."""
    if not rows:
        return
    await insert_many(OutboxEvent, outbox_values(rows), conflict="dedupe_key")
    _wake_soon()


def outbox_values(rows: list[OutboxEvent]) -> list[dict[str, Any]]:
    """The column values `emit_many` inserts (for a caller that inserts them itself, in
    one statement with its own rows, then calls `queued`)."""
    fields_map = OutboxEvent._meta.fields_map
    now = utcnow()
    stamped = [  # what save() fills in: auto_now(_add) times
        n
        for n, f in fields_map.items()
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
    ]
    out = [new_row_values(r) for r in rows]
    for values in out:
        for n in stamped:
            if values[n] is None:
                values[n] = now
    return out


def outbox_row(
    event_type: str,
    *,
    payload: dict[str, Any],
    community_id: int | None,
    residents: Iterable[int] = (),
    rooms: Iterable[int] = (),
    staff: Iterable[int] = (),
    staff_roles: Iterable[StaffRoleName | str] = (),
    dedupe_key: str | None = None,
    occurred_at: datetime | None = None,
) -> OutboxEvent:
    """The outbox row `emit` writes, checked (ValueError as `emit` says), not saved."""
    ntype = get_type(event_type)
    missing = [k for k in ntype.required if k not in payload]
    if missing:
        raise ValueError(f"{event_type}: payload lacks {missing}")
    roles = sorted({StaffRoleName(r).value for r in staff_roles})
    if roles and community_id is None:
        raise ValueError("staff_roles need a community_id")
    recipients = {
        "residents": _ids(residents),
        "rooms": _ids(rooms),
        "staff": _ids(staff),
        "staff_roles": roles,
    }
    if not any(recipients.values()):
        raise ValueError(f"{event_type}: no recipients")
    # Stored as JSON: fail here, in the caller, on anything that would not survive it.
    payload = json.loads(json.dumps(payload, default=str, ensure_ascii=False))
    return OutboxEvent(
        event_type=ntype.name.value,
        community_id=community_id,
        recipients=recipients,
        payload=payload,
        dedupe_key=dedupe_key,
        occurred_at=occurred_at or utcnow(),
    )
