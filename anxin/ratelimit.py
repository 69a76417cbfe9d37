"""Fixed-window rate limits on the shared counters (Redis on the server stack, so every
worker counts together; process memory on the embedded default)."""

from __future__ import annotations

from anxin.kv import KV


async def over_limit(kv: KV, key: str, limit: int, window_s: int) -> int | None:
    """Count one hit; None while within `limit` per window, else the seconds to wait
    (rounded up, at least 1)."""
    if await kv.incr(key, window_s) <= limit:
        return None
    return max(1, await kv.ttl(key))
