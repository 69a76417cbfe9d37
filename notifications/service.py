"""Wiring: the services this capability adds to a process's runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from anxin.bus import run_subscriber
from anxin.runtime import Runtime
from anxin.scheduler import Scheduler, registry
from models import Room
from notifications.catalog import EventType
from notifications.dispatcher import Dispatcher
from notifications.jobs import register_builtin_jobs
from notifications.outbox import emit
from notifications.realtime import RealtimeHub

log = logging.getLogger(__name__)

MEMBERSHIP_ENDED_CHANNEL = "membership.ended"  # published by api/households/service.py


async def room_label(room_id: int) -> dict[str, str]:
    room = await Room.get_or_none(id=room_id).prefetch_related("building", "unit")
    if room is None:
        return {"room": "-"}
    return {
        "room": f"{room.building.name}{room.unit.name}{room.number}",
        "room_en": f"Bldg {room.building.name} Unit {room.unit.name} Rm {room.number}",
    }


async def on_membership_ended(_channel: str, message: dict[str, Any]) -> None:
    # Every worker hears the bus message; the dedupe key keeps it one notification.
    await emit(
        EventType.MEMBERSHIP_ENDED,
        community_id=message.get("community_id"),
        residents=[int(message["resident_id"])],
        payload={**await room_label(int(message["room_id"])), "room_id": message["room_id"]},
        dedupe_key=f"membership_ended:{message['membership_id']}",
    )


class BusListener:
    """Runs `run_subscriber(bus, channel, handler)` for the life of the process."""

    def __init__(self, runtime: Runtime, channel: str, handler: Any) -> None:
        self._runtime, self._channel, self._handler = runtime, channel, handler
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(
            run_subscriber(self._runtime.bus, self._channel, self._handler)
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def install(runtime: Runtime) -> None:
    """Add the realtime hub, the dispatcher, the bus listener and the scheduler."""
    runtime.add("realtime", RealtimeHub(runtime))
    runtime.add("dispatcher", Dispatcher(runtime))
    runtime.add(
        "notifications.membership_ended",
        BusListener(runtime, MEMBERSHIP_ENDED_CHANNEL, on_membership_ended),
    )
    register_builtin_jobs(registry)
    runtime.add("scheduler", Scheduler(runtime))
