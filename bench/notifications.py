"""Benchmark: a property notice to a whole community, end to end, and realtime latency.

    uv run python bench/notifications.py [--residents 50000] [--workers 2]

Embedded default (SQLite file in a temp dir, in-process bus) unless DATABASE_URL /
REDIS_URL are set: then a fresh PostgreSQL database and a fresh Redis key prefix are
created for the run and removed afterwards ("server stack"). The first line says which.

1. Throughput: a community of `--residents` residents (two per flat), each subscribed to
   WeChat's property-notice template, gets one property notice (the staff call,
   `send_notice`, to every room). Delivered = in-app copy written, realtime push
   published and the WeChat subscribe message accepted by the fake WeChat API, all three,
   for every resident. The fake WeChat runs in a process of its own (in production
   WeChat's servers bear that cost). `notice_delivered_per_s` = residents / seconds from
   the send to the last WeChat message accepted. CPU per resident is printed by process
   (this one, the fake WeChat, the run's PostgreSQL backends, Redis): steer by those on a
   shared machine. BENCH_PROFILE=path writes a CPU-time cProfile of the notice.
2. Latency to a WebSocket client: (a) `push_to_residents` -> client (what an intercom
   call uses); (b) `emit()` committed -> outbox -> dispatcher -> client.
The last line printed is one JSON object with the figures.
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

# The repository, not bench/, first on the path: bench/notifications.py would shadow the
# package of the same name.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import uvloop  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402
from tortoise.transactions import in_transaction  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from anxin.settings import Settings  # noqa: E402
from auth.tokens import issue_access_token  # noqa: E402
from bench._support import bench_database, throwaway_secrets  # noqa: E402
from bench._support.burst import _OtherCpu, _proc_cpu_s  # noqa: E402
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
from notifications.dispatcher import DISPATCHER, Dispatcher  # noqa: E402
from notifications.outbox import emit  # noqa: E402
from notifications.realtime import push_to_residents  # noqa: E402
from notifications.wechat_templates import default_templates  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = default_templates()["visitor_arrived"].template_id
NOTICE_TEMPLATE = default_templates()["property_notice"].template_id


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


async def seed_people(residents: int) -> tuple[Community, list[Resident]]:
    """A community of `residents` people, two per flat, all approved, each with one
    property-notice message subscribed (rows written in bulk: this is set-up, not bench)."""
    from models import Building, Membership, MembershipRole, MembershipState, Room, Unit

    city, _ = await City.get_or_create(name="基准市", defaults={"name_en": "Bench City"})
    community = await Community.create(city=city, name=f"基准小区-{secrets.token_hex(3)}")
    building = await Building.create(community=community, name="1栋")
    unit = await Unit.create(building=building, community=community, name="1单元")
    flats = (residents + 1) // 2
    await Room.bulk_create(
        [
            Room(unit=unit, building=building, community=community, number=f"{i:05d}")
            for i in range(flats)
        ],
        batch_size=2000,
    )
    rooms = await Room.filter(community=community).order_by("id").values_list("id", flat=True)
    await Resident.bulk_create(
        [Resident(openid=f"bench-{i}", name="住户") for i in range(residents)], batch_size=2000
    )
    people = await Resident.filter(openid__startswith="bench-").order_by("id")
    await Membership.bulk_create(
        [
            Membership(
                resident_id=p.id,
                room_id=rooms[i // 2],
                community=community,
                role=MembershipRole.OWNER,
                state=MembershipState.APPROVED,
            )
            for i, p in enumerate(people)
        ],
        batch_size=2000,
    )
    await WeChatSubscription.bulk_create(
        [
            WeChatSubscription(resident_id=p.id, template_id=NOTICE_TEMPLATE, quota=1)
            for p in people
        ],
        batch_size=2000,
    )
    return community, people


async def notice_throughput(
    runtime: Any, community: Community, workers: int, wechat_pid: int
) -> dict[str, Any]:
    from auth.permissions import Principal
    from domain.announcements.service import Audience, send_notice
    from models import Channel, Notification, NotificationAttempt, StaffAccount, StaffRole

    staff = await StaffAccount.create(username=f"bench-{secrets.token_hex(3)}", password_hash="x")
    await StaffRole.create(staff=staff, community=community, role="admin")
    principal = Principal("staff", staff.id, staff=staff, roles={community.id: {"admin"}})  # type: ignore[arg-type]
    dispatchers = [Dispatcher(runtime, poll_s=0.05, batch_size=500) for _ in range(workers)]
    for d in dispatchers:
        await d.start()
    others = _OtherCpu(None)  # this run's PostgreSQL backends, Redis
    others.start()
    t0, cpu0, fake0 = time.perf_counter(), time.process_time(), _proc_cpu_s(wechat_pid)
    async with in_transaction():
        await send_notice(
            principal, community.id, "停水通知", "周二 9:00-12:00 停水", Audience([], [], [])
        )
    while time.perf_counter() - t0 < 600:
        left = await OutboxEvent.filter(
            state__in=[OutboxState.PENDING, OutboxState.PROCESSING]
        ).exists()
        open_deliveries = await NotificationDelivery.filter(
            state__in=[DeliveryState.PENDING, DeliveryState.PROCESSING]
        ).exists()
        if not left and not open_deliveries:
            break
        await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - t0
    cpu, fake_cpu = time.process_time() - cpu0, _proc_cpu_s(wechat_pid) - fake0
    other_cpu = others.stop()
    for d in dispatchers:
        await d.stop()
    notes = await Notification.filter(community_id=community.id).count()
    pushed = await NotificationAttempt.filter(channel=Channel.REALTIME, outcome="published").count()
    sent = await NotificationDelivery.filter(state=DeliveryState.SENT).count()
    not_sent: dict[str, int] = {}
    for d in await NotificationDelivery.exclude(state=DeliveryState.SENT).values(
        "state", "last_error"
    ):
        key = f"{d['state']}: {d['last_error'][:60]}"
        not_sent[key] = not_sent.get(key, 0) + 1
    return {
        "in_app": notes,
        "realtime": pushed,
        "wechat_sent": sent,
        "wechat_not_sent": not_sent,
        "seconds": round(elapsed, 3),
        # CPU per resident: what the machine's load hardly changes (steer by these).
        "cpu_ms_per_resident": round(cpu * 1000 / max(1, notes), 3),
        "fake_wechat_cpu_ms_per_resident": round(fake_cpu * 1000 / max(1, notes), 3),
        "other_cpu_ms_per_resident": {
            k: round(v * 1000 / max(1, notes), 3) for k, v in other_cpu.items()
        },
    }


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
    port = _free_port()
    wechat = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._support.wechat",
        str(port),
        str(args.residents),
        NOTICE_TEMPLATE,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert wechat.stdout is not None
    assert (await asyncio.wait_for(wechat.stdout.readline(), 120)).strip() == b"ready"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with bench_database(Path(tmp)) as db_url:
                settings = Settings(
                    database_url=db_url,
                    redis_url=redis_url,
                    redis_prefix=prefix,
                    topic_root=prefix.rstrip(":"),
                    wechat_base_url=f"http://127.0.0.1:{port}",
                    data_dir=Path(tmp),
                    **throwaway_secrets(),
                )
                backend = "postgres+redis" if settings.uses_postgres else "sqlite+in-process"
                print(f"backend: {backend}", flush=True)
                app = build_app(settings)
                try:
                    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
                        runtime = app.state.runtime
                        await runtime.get(DISPATCHER).stop()  # the bench's workers do it
                        t0 = time.perf_counter()
                        community, people = await seed_people(args.residents)
                        print(f"seeded {len(people)} residents in {time.perf_counter() - t0:.1f} s")
                        profile = None
                        if os.environ.get("BENCH_PROFILE"):  # for docs/performance.md
                            import cProfile

                            profile = cProfile.Profile(time.process_time)  # CPU, not wall
                            profile.enable()
                        tp = await notice_throughput(runtime, community, args.workers, wechat.pid)
                        if profile is not None:
                            profile.disable()
                            profile.dump_stats(os.environ["BENCH_PROFILE"])
                        await runtime.get(DISPATCHER).start()
                        async with run_fake_wechat(app=app) as base:
                            ws_url = base.replace("http://", "ws://") + "/api/v1/realtime"
                            lat = await latency(ws_url, runtime, settings, people)
                finally:
                    if redis_url:
                        await purge_redis(redis_url, prefix)
    finally:
        wechat.terminate()
        await wechat.wait()
    return {
        "backend": backend,
        "workers": args.workers,
        "residents": args.residents,
        **tp,
        "latency": lat,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--residents", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("anxin.crypto").setLevel(logging.ERROR)
    # uvloop, as uvicorn picks it for the API process the dispatcher runs in.
    r = uvloop.run(run(args))
    rate = r["residents"] / r["seconds"]
    push, event = r["latency"]["push"], r["latency"]["event"]
    print(f"backend: {r['backend']}, dispatcher workers: {r['workers']}")
    print(
        f"property notice to {r['residents']} residents: in-app {r['in_app']}, realtime "
        f"{r['realtime']}, WeChat {r['wechat_sent']} accepted, in {r['seconds']} s = "
        f"{rate:.0f} residents/s"
    )
    print(
        f"CPU per resident: {r['cpu_ms_per_resident']} ms here (dispatcher, database client, "
        f"bench), {r['fake_wechat_cpu_ms_per_resident']} ms in the fake WeChat, "
        + ", ".join(f"{k} {v} ms" for k, v in r["other_cpu_ms_per_resident"].items())
    )
    print(
        f"realtime push -> client:        p50 {push['p50']} ms  p95 {push['p95']} ms  "
        f"p99 {push['p99']} ms"
    )
    print(
        f"event (emit) -> client via outbox: p50 {event['p50']} ms  p95 {event['p95']} ms  "
        f"p99 {event['p99']} ms  (target p95 < 100 ms)"
    )
    complete = min(r["in_app"], r["realtime"], r["wechat_sent"])
    summary = {
        "backend": r["backend"],
        "notice_residents": r["residents"],
        "notice_delivered": complete,
        "notice_delivered_per_s": round(complete / r["seconds"], 1),
        "notice_seconds": r["seconds"],
        "in_app": r["in_app"],
        "realtime": r["realtime"],
        "wechat_sent": r["wechat_sent"],
        "wechat_not_sent": r["wechat_not_sent"],
        "realtime_p50_ms": event["p50"],
        "realtime_p95_ms": event["p95"],
        "realtime_p99_ms": event["p99"],
        "push_p50_ms": push["p50"],
        "push_p95_ms": push["p95"],
        "push_p99_ms": push["p99"],
        "cpu_ms_per_resident": r["cpu_ms_per_resident"],
        "fake_wechat_cpu_ms_per_resident": r["fake_wechat_cpu_ms_per_resident"],
        "other_cpu_ms_per_resident": r["other_cpu_ms_per_resident"],
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
