"""The event bus: Redis pub/sub across processes, or in-process for the embedded default.

Every process subscribes to the channels it cares about (gallery changes, realtime
notifications, membership ends) so a change made by one API worker is seen by all.
Messages are JSON objects; channels are names under the configured prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from anxin.batching import Batcher

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], Awaitable[None]]


class Bus(Protocol):
    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, channel: str) -> AsyncIterator[dict[str, Any]]: ...

    async def close(self) -> None: ...


class InProcessBus:
    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        # Round-trip through JSON so subscribers see exactly what Redis would give them.
        data = json.loads(json.dumps(message, default=str))
        for queue in list(self._queues.get(channel, ())):
            queue.put_nowait(data)

    async def subscribe(self, channel: str) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._queues.setdefault(channel, set()).add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues[channel].discard(queue)

    async def close(self) -> None:
        self._queues.clear()


class RedisBus:
    """Redis pub/sub. `sharded` (Redis Cluster): SPUBLISH / SSUBSCRIBE, so each channel
    lives on the one shard owning its slot rather than being broadcast to every node."""

    def __init__(self, redis: Any, prefix: str, *, sharded: bool = False) -> None:
        self._r = redis
        self._prefix = prefix
        self._sharded = sharded
        # Messages published meanwhile go out together in one pipeline: one connection
        # and one round trip, however many events are in flight.
        self._out: Batcher[tuple[str, str], None] = Batcher(self._publish_many)

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        await self._out.submit((self._prefix + channel, json.dumps(message, default=str)))

    async def _publish_many(self, messages: list[tuple[str, str]]) -> list[None]:
        if len(messages) == 1 or self._sharded:  # a cluster pipeline would span shards
            for channel, data in messages:
                if self._sharded:
                    await self._r.spublish(channel, data)
                else:
                    await self._r.publish(channel, data)
            return [None] * len(messages)
        async with self._r.pipeline(transaction=False) as pipe:
            for channel, data in messages:
                pipe.publish(channel, data)
            await pipe.execute()
        return [None] * len(messages)

    async def subscribe(self, channel: str) -> AsyncIterator[dict[str, Any]]:
        name = self._prefix + channel
        pubsub = self._r.pubsub(ignore_subscribe_messages=True)
        if self._sharded:
            await pubsub.ssubscribe(name)
        else:
            await pubsub.subscribe(name)
        try:
            async for raw in self._messages(pubsub):
                if raw.get("type") not in ("message", "smessage"):
                    continue
                try:
                    yield json.loads(raw["data"])
                except (ValueError, TypeError):
                    log.warning("dropping malformed bus message on %s", channel)
        finally:
            with contextlib.suppress(Exception):
                if self._sharded:
                    await pubsub.sunsubscribe()
                else:
                    await pubsub.unsubscribe()
                await pubsub.aclose()

    async def _messages(self, pubsub: Any) -> AsyncIterator[dict[str, Any]]:
        if not self._sharded:
            async for raw in pubsub.listen():
                yield raw
            return
        while True:  # the cluster client has no listen() for shard channels
            raw = await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=1.0)
            if raw is not None:
                yield raw

    async def close(self) -> None:
        return None


async def run_subscriber(bus: Bus, channel: str, handler: Handler) -> None:
    """Feed every message on `channel` to `handler`; one bad message never stops it, and
    a lost Redis connection is subscribed again (with backoff) once Redis is back.
    Messages published while it was gone are lost: pub/sub is a hint, never a record."""
    delay = RESUBSCRIBE_S[0]
    while True:
        try:
            async for message in bus.subscribe(channel):
                delay = RESUBSCRIBE_S[0]
                try:
                    await handler(channel, message)
                except Exception:
                    log.exception("bus handler failed on %s", channel)
            return
        except Exception as exc:
            log.warning("bus subscription %s lost (%s); again in %.1fs", channel, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESUBSCRIBE_S[1])


RESUBSCRIBE_S = (0.1, 5.0)  # first and longest wait before subscribing again
