"""The realtime channel: WebSocket connections fed through the bus.

Any worker may publish (`push_to_residents`, `push_to_staff`, ...): the message goes on
the bus channel `realtime.out` (Redis pub/sub, or in-process on the embedded default) and
every worker's hub hands it to the sockets it holds for those people. One subscription
per worker, not per socket, so a thousand open sockets cost Redis one connection.

Messages to clients (protocol v1) are JSON objects:
    {"v": 1, "type": "notification" | "intercom.call" | ..., "id": "...",
     "sent_at": 1764000000.123, "data": {...}}
What clients send besides `ping` (e.g. {"type": "intercom.accept", "call_id": ...}) is
published on `realtime.in` as {"v": 1, "from": {"kind", "id"}, "message": {...}} for
whichever capability handles it (`run_subscriber(bus, REALTIME_IN, handler)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from anxin.bus import Bus, run_subscriber
from anxin.channels import REALTIME_OUT
from anxin.clock import clock
from anxin.runtime import Key

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
QUEUE_SIZE = 256  # a client this far behind is gone or too slow: it is closed (1013)


def envelope(message: dict[str, Any]) -> dict[str, Any]:
    if "type" not in message:
        raise ValueError("a realtime message needs a 'type'")
    return {
        "v": PROTOCOL_VERSION,
        "id": secrets.token_hex(8),
        "sent_at": clock.time(),
        **message,
    }


async def _push(bus: Bus, to: dict[str, Any], message: dict[str, Any]) -> None:
    await bus.publish(REALTIME_OUT, {"to": to, "message": envelope(message)})


async def push_to_residents(bus: Bus, resident_ids: Iterable[int], message: dict[str, Any]) -> None:
    """Deliver `message` to every open mini-program session of these residents."""
    ids = sorted({int(i) for i in resident_ids})
    if ids:
        await _push(bus, {"residents": ids}, message)


async def push_each(
    bus: Bus, copies: Sequence[tuple[str, int, int]], message: dict[str, Any]
) -> None:
    """`message` to many recipients, each with its own `data.id` (their copy of one
    notification): `copies` is (kind, recipient id, data id) triples. One bus message
    for all of them, which every worker's hub splits for the sockets it holds: a notice
    to a community is tens of thousands of pushes, and per-push bus messages cost each
    worker a parse and a dispatch for every one."""
    if copies:
        each = [[kind, int(rid), int(item)] for kind, rid, item in copies]
        await bus.publish(REALTIME_OUT, {"each": each, "message": envelope(message)})


async def push_to_staff(
    bus: Bus, community_id: int, roles: Iterable[str] | None, message: dict[str, Any]
) -> None:
    """Deliver to consoles of staff holding any of `roles` (None: any role) there."""
    to = {"community_id": int(community_id), "roles": sorted({str(r) for r in roles or ()})}
    await _push(bus, to, message)


async def push_to_staff_ids(bus: Bus, staff_ids: Iterable[int], message: dict[str, Any]) -> None:
    ids = sorted({int(i) for i in staff_ids})
    if ids:
        await _push(bus, {"staff": ids}, message)


@dataclass(eq=False)
class Connection:
    kind: str  # resident | staff
    subject_id: int
    roles: dict[int, set[str]] = field(default_factory=dict)  # staff: community -> roles
    queue: asyncio.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE)
    )
    overflowed: bool = False

    def offer(self, message: dict[str, Any] | None) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()  # make room for the sentinel that closes it
            self.queue.put_nowait(None)


class RealtimeHub:
    """Per-worker registry of open sockets, fed by one bus subscription."""

    def __init__(self, bus_source: Any) -> None:
        self._source = bus_source  # the Runtime: its bus is chosen at start
        self._by_key: dict[tuple[Any, ...], set[Connection]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._probe = secrets.token_hex(8)

    @property
    def bus(self) -> Bus:
        return self._source.bus

    async def start(self) -> None:
        self._task = asyncio.create_task(run_subscriber(self.bus, REALTIME_OUT, self._route))
        # A Redis subscription is live only once the first read began: publish a probe
        # until it comes back, so a push right after startup is not lost.
        for _ in range(200):
            await self.bus.publish(REALTIME_OUT, {"probe": self._probe})
            try:
                await asyncio.wait_for(self._ready.wait(), 0.05)
                return
            except TimeoutError:
                continue
        log.warning("realtime hub: bus subscription not confirmed")

    async def stop(self) -> None:
        for conns in list(self._by_key.values()):
            for conn in list(conns):
                conn.offer(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    def _keys(self, conn: Connection) -> list[tuple[Any, ...]]:
        keys: list[tuple[Any, ...]] = [(conn.kind, conn.subject_id)]
        for community_id, roles in conn.roles.items():
            keys.append(("community", community_id))
            keys += [("role", community_id, role) for role in roles]
        return keys

    def register(self, conn: Connection) -> None:
        for key in self._keys(conn):
            self._by_key.setdefault(key, set()).add(conn)

    def unregister(self, conn: Connection) -> None:
        for key in self._keys(conn):
            conns = self._by_key.get(key)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self._by_key[key]

    @property
    def connection_count(self) -> int:
        return len({c for conns in self._by_key.values() for c in conns})

    def _targets(self, to: dict[str, Any]) -> set[Connection]:
        found: set[Connection] = set()
        for rid in to.get("residents", ()):
            found |= self._by_key.get(("resident", rid), set())
        for sid in to.get("staff", ()):
            found |= self._by_key.get(("staff", sid), set())
        if "community_id" in to:
            cid = to["community_id"]
            if to.get("roles"):
                for role in to["roles"]:
                    found |= self._by_key.get(("role", cid, role), set())
            else:
                found |= self._by_key.get(("community", cid), set())
        return found

    async def _route(self, _channel: str, data: dict[str, Any]) -> None:
        if data.get("probe") is not None:
            if data["probe"] == self._probe:
                self._ready.set()
            return
        message = data.get("message")
        if not isinstance(message, dict):
            return
        each = data.get("each")
        if isinstance(each, list):
            self._route_each(message, each)
            return
        for conn in self._targets(data.get("to") or {}):
            conn.offer(message)

    def _route_each(self, message: dict[str, Any], each: list[Any]) -> None:
        inner = message.get("data")
        if not isinstance(inner, dict):
            return
        for entry in each:
            if not (isinstance(entry, list) and len(entry) == 3):
                continue
            kind, rid, item = entry
            conns = self._by_key.get((kind, rid)) if kind in ("resident", "staff") else None
            if not conns:
                continue  # the usual case: this worker holds none of their sockets
            own = {**message, "id": f"{message.get('id')}.{item}", "data": {**inner, "id": item}}
            for conn in list(conns):
                conn.offer(own)


REALTIME: Key[RealtimeHub] = Key("realtime")
