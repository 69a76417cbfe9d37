"""HTTP-push terminals behind several API workers: a terminal's poll and ack reach any
worker, so commands and acks cross workers over the bus, and the shared KV (Redis on the
server stack) hands each command out once and refuses a request replayed to another worker."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from anxin.bus import Bus, InProcessBus, RedisBus, run_subscriber
from anxin.channels import HTTP_PUSH_ACK, HTTP_PUSH_COMMAND
from anxin.clock import clock
from anxin.kv import KV, MemoryKV, RedisKV
from boot.roles import build_runtime
from device_bridge.http_push import HttpDeviceLink, HttpPushTransport
from device_bridge.http_push_routes import http_push_router
from device_bridge.protocol import now_ms
from device_bridge.service import BRIDGE
from device_bridge.signing import device_key, make_command
from device_bridge.simulator import DeviceConfig, SimulatedDevice
from models import CommandStatus, Device, DeviceCommand, StaffRoleName
from tests.devices import register_device
from tests.helpers import make_staff, make_world, staff_headers
from tests.stack import REDIS_URL, Stack, purge_redis_prefix

SN, SECRET = "zk-w", "workers-secret"
KEY = device_key(SECRET)


@dataclass
class Worker:
    push: HttpPushTransport
    client: httpx.AsyncClient


async def _claim(kv: KV, key: str, ttl_s: int) -> bool:
    return await kv.set(key, "1", ttl_s, only_new=True)


@contextlib.asynccontextmanager
async def workers(backend: str) -> AsyncIterator[tuple[Worker, Worker]]:
    """Two workers as the server stack runs them: each its own transport, app, bus and KV
    client; on "redis" each its own Redis connection under one test prefix."""
    prefix = f"anxin-test-push-{secrets.token_hex(4)}:"
    conns: list[Any] = []
    shared_bus, shared_kv = InProcessBus(), MemoryKV()
    tasks: list[asyncio.Task[None]] = []
    made: list[Worker] = []
    for _ in range(2):
        bus: Bus
        kv: KV
        if backend == "redis":
            import redis.asyncio as aioredis

            r = aioredis.from_url(REDIS_URL)
            conns.append(r)
            bus, kv = RedisBus(r, prefix + "bus:"), RedisKV(r, prefix)
        else:  # one process: the in-process bus and memory KV are what workers share
            bus, kv = shared_bus, shared_kv
        push = HttpPushTransport(
            key_for={SN: KEY}.get,
            poll_wait_s=0.5,
            claim_nonce=lambda k, t, kv=kv: _claim(kv, k, t),
            publish=bus.publish,
        )
        tasks += [
            asyncio.create_task(run_subscriber(bus, HTTP_PUSH_COMMAND, push.share_command)),
            asyncio.create_task(run_subscriber(bus, HTTP_PUSH_ACK, push.share_ack)),
        ]
        app = FastAPI()
        app.include_router(http_push_router(push))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        made.append(Worker(push, client))
    await asyncio.sleep(0.2)  # the subscriptions are in place
    try:
        yield made[0], made[1]
    finally:
        for task in tasks:
            task.cancel()
        for w in made:
            await w.push.stop()
            await w.client.aclose()
        for r in conns:
            await r.aclose()
        if backend == "redis":
            await purge_redis_prefix(prefix)


async def _redis_up() -> bool:
    import redis.asyncio as aioredis

    r = aioredis.from_url(REDIS_URL)
    try:
        return bool(await r.ping())
    except Exception:
        return False
    finally:
        await r.aclose()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis" and not await _redis_up():
        pytest.skip("no Redis")
    clock.reset()
    return str(request.param)


async def test_a_command_sent_by_one_worker_reaches_a_terminal_polling_another(
    backend: str,
) -> None:
    async with workers(backend) as (a, b):
        link = HttpDeviceLink("http://t", SN, SECRET, client=b.client, poll_wait_s=0.5)
        dev = SimulatedDevice(DeviceConfig(SN, SECRET, relock_s=0.05), link=link)
        await dev.start()
        try:
            # Sent from A, polled and acked on B: A's wait ends with the device's ack.
            out = await a.push.send_command(make_command(SN, "open", {"reason": "remote"}, KEY))
            assert out.ok and dev.opened, out
            assert out.ack is not None and out.ack.result == "done"
            assert b.push.stats["acks_elsewhere"] >= 1 and a.push.stats["acks"] == 1
            # Handed out once: the device executed one command, and A's own queue copy is
            # not handed out again to a poll on A.
            assert len(dev.received) == 1 and len(dev.opened) == 1
            assert await a.push.take(SN) == []
            # Expired before any poll took it: never handed out, reported "expired".
            stale = make_command(SN, "open", {}, KEY, issued_at=now_ms() - 20_000, ttl_s=10)
            assert (await a.push.send_command(stale)).status == "expired"
            assert await b.push.take(SN) == [] and await a.push.take(SN) == []
        finally:
            await dev.stop()


async def test_each_command_is_handed_out_once_across_workers(backend: str) -> None:
    async with workers(backend) as (a, b):
        cmd = make_command(SN, "open", {"reason": "remote"}, KEY)
        await a.push.publish_command(cmd)
        deadline = asyncio.get_running_loop().time() + 5
        while not b.push._queues[SN]:  # noqa: SLF001 - the bus brought it to B
            assert asyncio.get_running_loop().time() < deadline, "never reached worker B"
            await asyncio.sleep(0.01)
        got_b, got_a = await b.push.take(SN), await a.push.take(SN)
        assert [c["id"] for c in got_b + got_a] == [cmd["id"]]


async def test_a_request_replayed_to_another_worker_is_refused(backend: str) -> None:
    async with workers(backend) as (a, b):
        link = HttpDeviceLink("http://t", SN, SECRET, client=a.client)
        headers = link._headers("/iclock/cdata")  # noqa: SLF001 - what a tap would capture
        params = {"SN": SN}
        assert (await a.client.get("/iclock/cdata", params=params, headers=headers)).is_success
        replay = await b.client.get("/iclock/cdata", params=params, headers=headers)
        assert replay.status_code == 401
        assert b.push.reject.counts["http_auth_replayed"] == 1
        # What arrives on the ack channel is read defensively (it is a device's line).
        for line in ("5", "[]", "not json", '{"cmd_id": 7}'):
            await a.push.share_ack("", {"device_id": SN, "line": line})
        assert a.push.stats["acks"] == 0


async def test_on_the_server_stack_an_open_from_worker_a_is_done_by_a_terminal_on_b(
    stack: Stack,
) -> None:
    """The whole path on PostgreSQL + Redis: worker B is a second API runtime (its own
    bridge, Redis connection and bus, same database); the terminal polls and acks only B,
    the open is sent by the stack's worker A, whose command row ends "done"."""
    if stack.backend != "postgres":
        pytest.skip("the embedded default is one process; across workers means Redis")
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    gate = await register_device(
        stack, world.community.id, admin_h, kind="face_gate", transport="http_push"
    )
    runtime_b = build_runtime(stack.settings, "api", owns_database=False)
    await runtime_b.start()
    app_b = FastAPI()
    app_b.include_router(http_push_router(runtime_b.get(BRIDGE).http_push))
    client_b = httpx.AsyncClient(transport=httpx.ASGITransport(app=app_b), base_url="http://b")
    link = HttpDeviceLink(
        "http://b", gate["device_uid"], gate["secret"], client=client_b, poll_wait_s=1.0
    )
    sim = SimulatedDevice(
        DeviceConfig(device_id=gate["device_uid"], secret=gate["secret"], kind="face_gate"),
        link=link,
    )
    try:
        await sim.start()
        await asyncio.sleep(0.3)  # B's bus subscriptions are in place
        doors = stack.runtime.get(BRIDGE).doors
        assert doors is not None
        device = await Device.get(device_uid=gate["device_uid"])
        out = await doors.open(device, "remote")
        assert out.ok, out
        assert len(sim.opened) == 1
        row = await DeviceCommand.get(command_id=out.cmd_id)
        assert row.status == CommandStatus.DONE
        # A request B accepted, replayed to A: refused (the nonce is claimed in Redis).
        path = "/iclock/cdata"
        headers = link._headers(path)  # noqa: SLF001 - what a tap would capture
        params = {"SN": gate["device_uid"]}
        assert (await client_b.get(path, params=params, headers=headers)).is_success
        assert (await stack.client.get(path, params=params, headers=headers)).status_code == 401
    finally:
        await sim.stop()
        await runtime_b.stop()
