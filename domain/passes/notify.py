"""The one place passes, doors and intercom talk to the notifications capability.

Notifications are best effort from here: a failed notification never fails a door
decision (the access event is the record; the outbox is the message).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from anxin.runtime import Runtime
from notifications.catalog import EventType
from notifications.outbox import emit
from notifications.realtime import push_to_residents

log = logging.getLogger(__name__)

__all__ = ["EventType", "notify", "push_residents"]


async def notify(
    event_type: EventType,
    *,
    community_id: int,
    payload: dict[str, Any],
    residents: Iterable[int] = (),
    rooms: Iterable[int] = (),
    dedupe_key: str | None = None,
) -> None:
    """Outbox notification (realtime + WeChat subscribe message, per preferences)."""
    try:
        await emit(
            event_type,
            payload=payload,
            community_id=community_id,
            residents=residents,
            rooms=rooms,
            dedupe_key=dedupe_key,
        )
    except Exception:
        log.exception("notification %s not queued", event_type)


async def push_residents(
    runtime: Runtime, resident_ids: Iterable[int], message: dict[str, Any]
) -> None:
    """Realtime message to the residents' open mini-program sessions (ringing, call ended)."""
    try:
        await push_to_residents(runtime.bus, resident_ids, message)
    except Exception:
        log.exception("realtime push %s failed", message.get("type"))
