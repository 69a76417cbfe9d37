"""Counters and short-lived keys: Redis when configured, process memory otherwise.

Used for rate limits, guess lockouts and once-per-tick job claims. Expiry follows the
service clock in memory; Redis keeps its own TTLs (tests that move the clock across a
Redis TTL use the memory store or wait for Redis, never `sleep` long).
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

from anxin.clock import clock


class KV(Protocol):
    async def incr(self, key: str, ttl_s: int) -> int:
        """Add one; the key expires `ttl_s` after its first increment."""

    async def get_int(self, key: str) -> int: ...

    async def set(self, key: str, value: str, ttl_s: int, *, only_new: bool = False) -> bool: ...

    async def get(self, key: str) -> str | None: ...

    async def delete(self, key: str) -> None: ...

    async def ttl(self, key: str) -> int:
        """Whole seconds left, rounded up (a client that waits this long finds the key
        gone); -2 when there is no such key."""

    async def close(self) -> None: ...


class MemoryKV:
    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix
        self._data: dict[str, tuple[str, float]] = {}
        self._lock = asyncio.Lock()

    def _live(self, key: str) -> tuple[str, float] | None:
        item = self._data.get(self._prefix + key)
        if item is None:
            return None
        if item[1] <= clock.time():
            del self._data[self._prefix + key]
            return None
        return item

    async def incr(self, key: str, ttl_s: int) -> int:
        async with self._lock:
            item = self._live(key)
            value = int(item[0]) + 1 if item else 1
            expires = item[1] if item else clock.time() + ttl_s
            self._data[self._prefix + key] = (str(value), expires)
            return value

    async def get_int(self, key: str) -> int:
        item = self._live(key)
        return int(item[0]) if item else 0

    async def set(self, key: str, value: str, ttl_s: int, *, only_new: bool = False) -> bool:
        async with self._lock:
            if only_new and self._live(key) is not None:
                return False
            self._data[self._prefix + key] = (value, clock.time() + ttl_s)
            return True

    async def get(self, key: str) -> str | None:
        item = self._live(key)
        return item[0] if item else None

    async def delete(self, key: str) -> None:
        self._data.pop(self._prefix + key, None)

    async def ttl(self, key: str) -> int:
        item = self._live(key)
        return max(0, math.ceil(item[1] - clock.time())) if item else -2

    async def close(self) -> None:
        self._data.clear()


class RedisKV:
    def __init__(self, redis: object, prefix: str) -> None:
        self._r = redis
        self._prefix = prefix

    async def incr(self, key: str, ttl_s: int) -> int:
        k = self._prefix + key
        async with self._r.pipeline(transaction=True) as pipe:  # type: ignore[attr-defined]
            pipe.incr(k)
            pipe.expire(k, ttl_s, nx=True)
            value, _ = await pipe.execute()
        return int(value)

    async def get_int(self, key: str) -> int:
        value = await self._r.get(self._prefix + key)  # type: ignore[attr-defined]
        return int(value) if value else 0

    async def set(self, key: str, value: str, ttl_s: int, *, only_new: bool = False) -> bool:
        ok = await self._r.set(self._prefix + key, value, ex=ttl_s, nx=only_new)  # type: ignore[attr-defined]
        return bool(ok)

    async def get(self, key: str) -> str | None:
        value = await self._r.get(self._prefix + key)  # type: ignore[attr-defined]
        return value.decode() if isinstance(value, bytes) else value

    async def delete(self, key: str) -> None:
        await self._r.delete(self._prefix + key)  # type: ignore[attr-defined]

    async def ttl(self, key: str) -> int:
        # PTTL, rounded up: Redis' TTL rounds to the nearest second, so a client told
        # "1" could come back 0.4 s early and be refused again.
        ms = int(await self._r.pttl(self._prefix + key))  # type: ignore[attr-defined]
        return math.ceil(ms / 1000) if ms >= 0 else ms

    async def close(self) -> None:
        return None
