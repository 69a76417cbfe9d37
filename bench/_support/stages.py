"""Where the time of one gate event goes: wall time per stage of the bridge's path,
taken by wrapping the functions the bridge calls (for docs/performance.md)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

STAGES = [
    ("claim", "device_bridge.event_claims", "claim"),
    ("note command", "device_bridge.event_claims", "note_command"),
    ("command row", "device_bridge.doors", "write_command"),
    ("command outcome", "device_bridge.doors", "write_outcome"),
    ("access row", "device_bridge.service", "record_access"),
    ("finish claim", "device_bridge.event_claims", "finish"),
    # inside a face decision
    ("  face: gallery search", "device_bridge.face_handlers", "_server_match"),
    ("  face: enrollment row", "device_bridge.face_handlers", "_enrollment_for"),
    ("  face: consent", "domain.faces.consent", "missing"),
    ("  face: access policy", "device_bridge.face_handlers", "resident_may_enter"),
    ("  face: match record", "device_bridge.face_handlers", "record"),
]


class StageTimer:
    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = defaultdict(list)

    def wrap(self, name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await fn(*args, **kw)
            finally:
                self.ms[name].append((time.perf_counter() - t0) * 1000)

        return timed

    def medians(self) -> dict[str, float]:
        return {k: round(float(np.median(v)), 3) for k, v in self.ms.items() if v}


@contextmanager
def stage_timer(bridge: Any, event_type: str) -> Iterator[StageTimer]:
    """Time the stages of `bridge` handling events of `event_type` while inside."""
    import importlib

    from device_bridge.transport import ServerTransport

    timer = StageTimer()
    undo: list[tuple[Any, str, Any]] = []

    def patch(obj: Any, attr: str, name: str) -> None:
        if isinstance(obj, dict):
            undo.append((obj, attr, obj[attr]))
            obj[attr] = timer.wrap(name, obj[attr])
            return
        original = getattr(obj, attr)
        undo.append((obj, attr, original))
        setattr(obj, attr, timer.wrap(name, original))

    for name, module, attr in STAGES:
        patch(importlib.import_module(module), attr, name)
    patch(bridge.handlers, event_type, "decision (handler)")
    patch(bridge, "_announce", "announce (bus)")
    original_send = ServerTransport.send_command
    undo.append((ServerTransport, "send_command", original_send))

    async def send_command(self: Any, *args: Any, **kw: Any) -> Any:
        return await timer.wrap("command -> device ack (MQTT)", original_send)(self, *args, **kw)

    ServerTransport.send_command = send_command  # type: ignore[method-assign]
    try:
        yield timer
    finally:
        for obj, attr, original in reversed(undo):
            if isinstance(obj, dict):
                obj[attr] = original
            else:
                setattr(obj, attr, original)
