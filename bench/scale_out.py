"""Scale-out parts, per process (docs/deployment.md): the app's Redis operations on one
Redis against a three-node Redis Cluster, and device messages through a district Mosquitto
bridged to the central one against a single broker.

Starts its own servers on loopback (redis-server, redis-cli, mosquitto from Debian; the
same helpers as tests/test_scale_out.py) and removes them afterwards.

    uv run python bench/scale_out.py [--seconds 8] [--messages 5000]

Last line JSON: kv_ops_per_s_single, kv_ops_per_s_cluster, bus_msgs_per_s_cluster,
mqtt_msgs_per_s_direct, mqtt_direct_p50_ms, mqtt_msgs_per_s_bridged, mqtt_bridge_p50_ms,
mqtt_bridge_p99_ms (latencies: one message at a time, publish to delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # root, not bench/: names shadow

import aiomqtt  # noqa: E402

from anxin.bus import RedisBus  # noqa: E402
from anxin.kv import RedisKV  # noqa: E402
from anxin.redis_client import connect  # noqa: E402
from device_bridge.broker import start_private_mosquitto  # noqa: E402
from tests.scale_support import bridged_mosquittos, redis_cluster  # noqa: E402

CONCURRENCY = 32  # requests in flight from one process (API workers overlap their calls)


async def kv_rate(url: str, cluster: bool, seconds: float) -> float:
    """The mix the app does per request: a rate-limit count (INCR + EXPIRE NX in one
    MULTI), a claim (SET NX EX) and a read; operations per second from one process."""
    r = await connect(url, cluster=cluster)
    kv = RedisKV(r, f"bench-{time.monotonic_ns()}:")
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < deadline:
            key = f"{w}:{i}"
            await kv.incr(f"rl:{key}", 60)
            await kv.set(f"claim:{key}", "1", 60, only_new=True)
            await kv.get(f"claim:{key}")
            done += 3
            i += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    rate = done / (time.perf_counter() - start)
    await r.aclose()
    return rate


async def bus_rate(url: str, seconds: float) -> float:
    """Sharded pub/sub on the cluster: messages per second from one publisher to one
    subscriber in another client."""
    pub, sub = await connect(url, cluster=True), await connect(url, cluster=True)
    sender = RedisBus(pub, "bench:bus:", sharded=True)
    receiver = RedisBus(sub, "bench:bus:", sharded=True)
    got = 0
    ready = asyncio.Event()

    async def listen() -> None:
        nonlocal got
        async for _ in receiver.subscribe("access.event"):
            got += 1
            ready.set()

    task = asyncio.create_task(listen())
    while not ready.is_set():
        await sender.publish("access.event", {"warm": True})
        await asyncio.sleep(0.02)
    got, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        await asyncio.gather(*(sender.publish("access.event", {"id": n}) for n in range(50)))
    await asyncio.sleep(0.5)
    rate = got / (time.perf_counter() - start - 0.5)
    task.cancel()
    await pub.aclose()
    await sub.aclose()
    return rate


async def mqtt_rate(
    pub_port: int, sub_port: int, root: str, n: int, pings: int = 200
) -> tuple[float, list[float]]:
    """QoS 1 events, device side -> server side: messages/s with 100 in flight, then the
    one-way latency (ms) of `pings` messages sent one at a time."""
    topic = f"{root}/v1/dev/bench-1/evt"
    async with (
        aiomqtt.Client("127.0.0.1", sub_port, max_inflight_messages=100) as server,
        aiomqtt.Client("127.0.0.1", pub_port, max_inflight_messages=100) as device,
    ):
        await server.subscribe(f"{root}/v1/dev/+/evt", qos=1)
        await asyncio.sleep(0.5)  # the bridge's subscription settles
        arrivals: asyncio.Queue[float] = asyncio.Queue()

        async def read() -> None:
            async for msg in server.messages:
                sent = json.loads(bytes(msg.payload))["t"]  # type: ignore[arg-type]
                arrivals.put_nowait((time.perf_counter() - sent) * 1000)

        reader = asyncio.create_task(read())
        sem = asyncio.Semaphore(100)

        async def one(k: int) -> None:
            async with sem:
                body = json.dumps({"t": time.perf_counter(), "k": k, "pad": "x" * 250})
                await device.publish(topic, body, qos=1)

        start = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(n)))
        for _ in range(n):
            await asyncio.wait_for(arrivals.get(), 60)
        rate = n / (time.perf_counter() - start)
        latencies = []
        for k in range(pings):
            await one(k)
            latencies.append(await asyncio.wait_for(arrivals.get(), 10))
        reader.cancel()
    return rate, latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))], 2)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    from tests.stack import REDIS_URL

    try:
        out["kv_ops_per_s_single"] = round(await kv_rate(REDIS_URL, False, args.seconds))
    except OSError:
        out["kv_ops_per_s_single"] = None  # no Redis on :6379
    with redis_cluster() as cluster:
        out["kv_ops_per_s_cluster"] = round(await kv_rate(cluster.url, True, args.seconds))
        out["bus_msgs_per_s_cluster"] = round(await bus_rate(cluster.url, args.seconds / 2))
    single = start_private_mosquitto()
    try:
        rate, lat = await mqtt_rate(single.port, single.port, "bench", args.messages)
        out["mqtt_msgs_per_s_direct"] = round(rate)
        out["mqtt_direct_p50_ms"] = pct(lat, 0.5)
        out["mqtt_direct_p99_ms"] = pct(lat, 0.99)
    finally:
        single.stop()
    with bridged_mosquittos("bench") as (central, district):
        await asyncio.sleep(1.0)  # the bridge connects
        rate, lat = await mqtt_rate(district.port, central.port, "bench", args.messages)
        out["mqtt_msgs_per_s_bridged"] = round(rate)
        out["mqtt_bridge_p50_ms"] = pct(lat, 0.5)
        out["mqtt_bridge_p99_ms"] = pct(lat, 0.99)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--messages", type=int, default=5000)
    result = asyncio.run(main(ap.parse_args()))
    print("Redis, one process, 32 in flight (rate-limit count + claim + read):")
    print(f"  single server      {result['kv_ops_per_s_single']} ops/s")
    print(f"  3-node cluster     {result['kv_ops_per_s_cluster']} ops/s")
    print(f"  cluster bus (sharded pub/sub) {result['bus_msgs_per_s_cluster']} msgs/s")
    print("Mosquitto, QoS 1 events, 100 in flight:")
    print(
        f"  one broker         {result['mqtt_msgs_per_s_direct']} msgs/s, "
        f"p50 {result['mqtt_direct_p50_ms']} ms, p99 {result['mqtt_direct_p99_ms']} ms"
    )
    print(
        f"  district -> bridge -> central {result['mqtt_msgs_per_s_bridged']} msgs/s, "
        f"p50 {result['mqtt_bridge_p50_ms']} ms, p99 {result['mqtt_bridge_p99_ms']} ms"
    )
    print(json.dumps(result))
