"""Benchmark: notifications end to end, and realtime latency.

    uv run python bench/notifications.py [--events 2000] [--residents 100] [--workers 2]

Embedded default (SQLite file in a temp dir, in-process bus) unless DATABASE_URL /
REDIS_URL are set: then a fresh PostgreSQL database and a fresh Redis key prefix are
created for the run and removed afterwards. The fake WeChat server runs on loopback.

1. Throughput: N events are written to the outbox first, then dispatcher workers start;
   delivered = in-app copy written, realtime push published and the WeChat subscribe
   message accepted by the (fake) WeChat API, all three, for every notification.
2. Latency to a WebSocket client: (a) `push_to_residents` -> client (what an intercom
   call uses); (b) `emit()` committed -> outbox -> dispatcher -> client.
The last line printed is one JSON object with the figures. BENCH_SQLITE_QS="?synchronous=NORMAL"
adds SQLite pragmas to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from notifications.dispatcher import DISPATCHER

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from _support import throwaway_secrets  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402
from tortoise.transactions import in_transaction  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from anxin.settings import Settings  # noqa: E402
from auth.tokens import issue_access_token  # noqa: E402
from bench._support import bench_database  # noqa: E402
from boot.roles import build_app  # noqa: E402
from miniprogram_mock.fake_wechat import run_fake_wechat  # noqa: E402
from models import (  # noqa: E402
    City,
    Community,
    DeliveryState,
    NotificationDelivery,
    OutboxEvent,
    OutboxState,
    Resident,
    WeChatSubscription,
)
from notifications.catalog import EventType  # noqa: E402
from notifications.dispatcher import Dispatcher  # noqa: E402
from notifications.outbox import emit  # noqa: E402
from notifications.realtime import push_to_residents  # noqa: E402
from notifications.wechat_templates import default_templates  # noqa: E402

TEMPLATE = default_templates()["visitor_arrived"].template_id


async def purge_redis(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    r = aioredis.from_url(url)
    keys = [k async for k in r.scan_iter(match=prefix + "*", count=1000)]
    if keys:
        await r.delete(*keys)
    await r.aclose()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def figures(ms: list[float]) -> dict[str, float]:
    return {
        "p50": round(pct(ms, 50), 2),
        "p95": round(pct(ms, 95), 2),
        "p99": round(pct(ms, 99), 2),
        "mean": round(statistics.fmean(ms), 2),
    }


async def seed(wechat_url: str, residents: int, quota: int) -> tuple[Community, list[Resident]]:
    city, _ = await City.get_or_create(name="基准市", defaults={"name_en": "Bench City"})
    community = await Community.create(city=city, name=f"基准小区-{secrets.token_hex(3)}")
    people = []
    async with httpx.AsyncClient(base_url=wechat_url) as wx:
        for _ in range(residents):
            openid = (await wx.post("/__mock__/login", json={})).json()["openid"]
            body = {"openid": openid, "template_id": TEMPLATE, "count": quota}
            await wx.post("/__mock__/subscribe", json=body)
            people.append(await Resident.create(openid=openid, name="住户"))
    await WeChatSubscription.bulk_create(
        [WeChatSubscription(resident_id=p.id, template_id=TEMPLATE, quota=quota) for p in people]
    )
    return community, people


async def throughput(
    runtime: Any, community: Community, people: list[Resident], events: int, workers: int
) -> dict[str, Any]:
    batch = 100
    for start in range(0, events, batch):
        async with in_transaction():
            for i in range(start, min(events, start + batch)):
                await emit(
                    EventType.VISITOR_ARRIVED,
                    community_id=community.id,
                    residents=[people[i % len(people)].id],
                    payload={"visitor": f"访客{i}", "door": "南门"},
                )
    dispatchers = [Dispatcher(runtime, poll_s=0.05, batch_size=100) for _ in range(workers)]
    t0 = time.perf_counter()
    for d in dispatchers:
        await d.start()
    while True:
        left = await OutboxEvent.filter(
            state__in=[OutboxState.PENDING, OutboxState.PROCESSING]
        ).exists()
        open_deliveries = await NotificationDelivery.filter(
            state__in=[DeliveryState.PENDING, DeliveryState.PROCESSING]
        ).exists()
        if not left and not open_deliveries:
            break
        await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - t0
    for d in dispatchers:
        await d.stop()
    sent = await NotificationDelivery.filter(state=DeliveryState.SENT).count()
    return {"events": events, "wechat_sent": sent, "seconds": round(elapsed, 3)}


async def latency(url: str, runtime: Any, settings: Settings, people: list[Resident]) -> dict:
    resident = people[0]
    token = issue_access_token(settings, "resident", resident.id)
    push_ms: list[float] = []
    emit_ms: list[float] = []
    async with connect(f"{url}?token={token}") as ws:
        json.loads(await ws.recv())  # hello
        for i in range(300):
            t0 = time.perf_counter()
            await push_to_residents(runtime.bus, [resident.id], {"type": "bench", "i": i})
            while json.loads(await ws.recv()).get("i") != i:
                pass
            push_ms.append((time.perf_counter() - t0) * 1000)
        for i in range(100):
            t0 = time.perf_counter()
            async with in_transaction():
                await emit(
                    EventType.INTERCOM_CALL,
                    community_id=None,
                    residents=[resident.id],
                    payload={"door": f"门{i}"},
                )
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("type") == "notification" and msg["data"]["data"]["door"] == f"门{i}":
                    break
            emit_ms.append((time.perf_counter() - t0) * 1000)
    return {"push": figures(push_ms), "event": figures(emit_ms)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    redis_url = os.environ.get("REDIS_URL", "")
    prefix = f"anxin-bench-{secrets.token_hex(4)}:"
    with tempfile.TemporaryDirectory() as tmp:
        async with bench_database(Path(tmp)) as db_url, run_fake_wechat() as wechat_url:
            settings = Settings(
                database_url=db_url,
                redis_url=redis_url,
                redis_prefix=prefix,
                topic_root=prefix.rstrip(":"),
                wechat_base_url=wechat_url,
                data_dir=Path(tmp),
                **throwaway_secrets(),
            )
            app = build_app(settings)
            try:
                async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
                    runtime = app.state.runtime
                    await runtime.get(DISPATCHER).stop()  # the bench's workers do it
                    community, people = await seed(wechat_url, args.residents, args.events)
                    tp = await throughput(runtime, community, people, args.events, args.workers)
                    await runtime.get(DISPATCHER).start()
                    async with run_fake_wechat(app=app) as base:
                        ws_url = base.replace("http://", "ws://") + "/api/v1/realtime"
                        lat = await latency(ws_url, runtime, settings, people)
            finally:
                if redis_url:
                    await purge_redis(redis_url, prefix)
    backend = "postgres+redis" if settings.uses_postgres else "sqlite+in-process"
    return {"backend": backend, "workers": args.workers, **tp, "latency": lat}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--residents", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("anxin.crypto").setLevel(logging.ERROR)
    r = asyncio.run(run(args))
    rate = r["events"] / r["seconds"]
    push, event = r["latency"]["push"], r["latency"]["event"]
    print(f"backend: {r['backend']}, dispatcher workers: {r['workers']}")
    print(
        f"delivered end to end: {r['events']} notifications (in-app + realtime + WeChat "
        f"{r['wechat_sent']} sent) in {r['seconds']} s = {rate:.0f}/s"
    )
    print(
        f"realtime push -> client:        p50 {push['p50']} ms  p95 {push['p95']} ms  "
        f"p99 {push['p99']} ms"
    )
    print(
        f"event (emit) -> client via outbox: p50 {event['p50']} ms  p95 {event['p95']} ms  "
        f"p99 {event['p99']} ms  (target p95 < 100 ms)"
    )
    summary = {
        "backend": r["backend"],
        "delivered_per_s": round(rate, 1),
        "delivered": r["events"],
        "wechat_sent": r["wechat_sent"],
        "realtime_p50_ms": event["p50"],
        "realtime_p95_ms": event["p95"],
        "realtime_p99_ms": event["p99"],
        "push_p50_ms": push["p50"],
        "push_p95_ms": push["p95"],
        "push_p99_ms": push["p99"],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
