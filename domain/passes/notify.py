"""Realtime pushes to residents' open mini-program sessions (ringing, call ended).

Best effort on purpose: a push is a hint to a phone that is open right now. What must
arrive is written to the outbox in the transaction of its own event (the access row:
domain/access/log.py `Notice`; the intercom call: domain/visitors/intercom.py), so a
failed push never fails a door or loses a message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from anxin.runtime import Runtime
from notifications.realtime import push_to_residents

log = logging.getLogger(__name__)

__all__ = ["push_residents"]


async def push_residents(
    runtime: Runtime, resident_ids: Iterable[int], message: dict[str, Any]
) -> None:
    """Realtime message to the residents' open mini-program sessions (ringing, call ended)."""
    try:
        await push_to_residents(runtime.bus, resident_ids, message)
    except Exception:
        log.exception("realtime push %s failed", message.get("type"))
