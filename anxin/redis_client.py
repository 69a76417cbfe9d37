"""The one Redis connection of a process: a single server, or a Redis Cluster.

With `ANXIN_REDIS_CLUSTER=true`, `REDIS_URL` names any node of a Redis Cluster and the
client (redis-py's `RedisCluster`) learns the others and follows slot moves. Every key
the app writes is a single-key operation (counters, claims, sessions, nonces), so no
command crosses slots; the bus uses sharded pub/sub there (SPUBLISH / SSUBSCRIBE), so a
message travels to the one shard that owns its channel instead of to every node.
"""

from __future__ import annotations

from typing import Any


async def connect(url: str, *, cluster: bool) -> Any:
    if cluster:
        from redis.asyncio.cluster import RedisCluster

        client: Any = RedisCluster.from_url(url)
        await client.initialize()
    else:
        import redis.asyncio as aioredis  # maintained successor of aioredis

        client = aioredis.from_url(url)
    await client.ping()
    return client
