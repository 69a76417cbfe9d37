"""The app on scale-out parts (docs/deployment.md): a three-node Redis Cluster and a
district Mosquitto bridged to the central one, all on loopback, started once per module.

The server (PostgreSQL, the cluster, the central broker) decides; the community's gate is
connected to the district broker only, so every event, ack, state and command crosses the
bridge. The counters, claims, sessions and the bus run on the cluster, where a command
that touched keys of two slots would fail with CROSSSLOT.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import aiomqtt
import httpx
import pytest
from asgi_lifespan import LifespanManager

from anxin.bus import RedisBus
from anxin.kv import RedisKV
from anxin.ratelimit import over_limit
from anxin.redis_client import connect
from device_bridge.broker import PrivateMosquitto, start_private_mosquitto
from device_bridge.dynsec import SERVER_ROLE, DynsecAdmin
from device_bridge.simulator.device import DeviceConfig, SimulatedDevice
from models import AccessCard, AccessEvent, Device, DeviceCommand
from tests.helpers import error_code
from tests.passes_helpers import make_site, until, wait_events
from tests.scale_support import (
    RedisClusterNodes,
    bridge_conf,
    bridged_mosquittos,
    need_binaries,
    redis_cluster,
)
from tests.stack import Stack

ROOT = f"anxin-scale-{os.getpid()}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterNodes]:
    need_binaries()
    with redis_cluster() as nodes:
        yield nodes


@pytest.fixture(scope="module")
async def brokers() -> AsyncIterator[tuple[PrivateMosquitto, PrivateMosquitto]]:
    need_binaries()
    with bridged_mosquittos(ROOT) as (central, district):
        # The bridge announces itself on the central broker (retained "1") once connected.
        async with aiomqtt.Client("127.0.0.1", central.port) as c:
            await c.subscribe("$SYS/broker/connection/+/state", qos=1)
            async with asyncio.timeout(10):
                async for msg in c.messages:
                    if msg.payload == b"1":
                        break
        yield central, district


@pytest.fixture(scope="module")
async def city(
    cluster: RedisClusterNodes,
    brokers: tuple[PrivateMosquitto, PrivateMosquitto],
    stack: Stack,
) -> AsyncIterator[Stack]:
    """The test stack's PostgreSQL database, served by an app on the cluster and the
    central broker (the ORM connection stays the stack's)."""
    if stack.backend != "postgres":
        pytest.skip("the scale-out parts go with PostgreSQL")
    from boot.roles import build_app, build_runtime

    central, _ = brokers
    settings = stack.settings.model_copy(
        update={
            "redis_url": cluster.url,
            "redis_cluster": True,
            "mqtt_url": central.url,
            "topic_root": ROOT,
        }
    )
    app = build_app(settings, build_runtime(settings, owns_database=False))
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://anxin.test", timeout=30
        ) as client:
            yield Stack("postgres", app, client, settings, stack.wechat_url)


async def test_counters_claims_and_bus_work_on_the_cluster(cluster: RedisClusterNodes) -> None:
    a = await connect(cluster.url, cluster=True)
    b = await connect(cluster.url, cluster=True)
    try:
        kv = RedisKV(a, "t1:")
        # incr + first-time expiry is one MULTI on one key: legal in a cluster.
        assert [await kv.incr("login:ip:1", 60) for _ in range(3)] == [1, 2, 3]
        assert 58 <= await kv.ttl("login:ip:1") <= 60
        assert await kv.set("job:purge:1", "p1", 30, only_new=True)
        assert not await kv.set("job:purge:1", "p2", 30, only_new=True)  # the claim holds
        assert await kv.get("job:purge:1") == "p1"
        await kv.delete("job:purge:1")
        assert await kv.get("job:purge:1") is None and await kv.ttl("job:purge:1") == -2
        assert [await over_limit(kv, "open:7", 2, 60) for _ in range(3)][:2] == [None, None]
        assert await over_limit(kv, "open:7", 2, 60) is not None
        # Keys spread over the nodes (no hash tag forces them onto one).
        assert len({a.get_node_from_key(f"t1:k{i}").name for i in range(30)}) == 3

        # The bus: sharded pub/sub, from one client (process) to another.
        sender, receiver = (
            RedisBus(a, "t1:bus:", sharded=True),
            RedisBus(b, "t1:bus:", sharded=True),
        )
        got: list[dict[str, object]] = []

        async def listen() -> None:
            async for message in receiver.subscribe("faces.gallery"):
                got.append(message)
                return

        task = asyncio.create_task(listen())
        async with asyncio.timeout(10):
            while not got:  # publish until the subscription is in place
                await sender.publish("faces.gallery", {"op": "add", "community_id": 1})
                await asyncio.sleep(0.05)
        await task
        assert got == [{"op": "add", "community_id": 1}]
    finally:
        await a.aclose()
        await b.aclose()


async def test_gate_on_the_district_broker_opens_through_the_bridge(
    city: Stack, brokers: tuple[PrivateMosquitto, PrivateMosquitto]
) -> None:
    _, district = brokers
    site = await make_site(city)
    await AccessCard.create(
        community=site.world.community, resident_id=site.resident_id, card_no="CITY-1"
    )
    gate = SimulatedDevice(
        DeviceConfig(
            device_id=site.gate["device_uid"],
            secret=site.gate["secret"],
            kind=site.gate["kind"],
            root=ROOT,
        ),
        mqtt_url=district.url,  # the gate knows only its district broker
    )
    await gate.start()
    try:
        # Its retained online state crossed the bridge: the server sees it online.
        await until(lambda: _online(site.gate["id"]))

        await gate.swipe_card("CITY-1")
        assert (await gate.wait_opened(1)).reason == "resident"
        (row,) = await wait_events(site.gate["id"], 1)
        assert (row.result.value, row.resident_id) == ("granted", site.resident_id)
        assert (await DeviceCommand.get(command_id=row.command_id)).status.value == "done"

        # The resident's app opens it: API -> central broker -> bridge -> district -> gate,
        # and the signed ack back; the per-resident limit counts on the cluster.
        r = await site.resident.post(f"/api/v1/doors/{site.gate['id']}/open")
        assert r.status_code == 200, r.text
        assert (await gate.wait_opened(2)).reason == "remote_open"
        event = await AccessEvent.get(id=r.json()["event_id"])
        assert (event.method.value, event.result.value) == ("remote", "granted")
        for _ in range(9):
            assert (await site.resident.post(f"/api/v1/doors/{site.gate['id']}/open")).is_success
        r = await site.resident.post(f"/api/v1/doors/{site.gate['id']}/open")
        assert r.status_code == 429 and error_code(r) == "remote_open_rate_limited"

        # The same signed event again (a replay through the bridge) is refused by its
        # durable claim: one row, one opening.
        swipe = await gate.swipe_card("CITY-1")
        await gate.wait_opened(12)
        rows = await AccessEvent.filter(device_id=site.gate["id"]).count()
        await gate.link.publish_event(swipe)
        await gate.swipe_card("CITY-1")  # a fresh one after it, to know the replay was seen
        await gate.wait_opened(13)
        await until(lambda: _rows_at_least(site.gate["id"], rows + 1))
        assert await AccessEvent.filter(device_id=site.gate["id"]).count() == rows + 1
        assert len(gate.opened) == 13
    finally:
        await gate.stop(clear_retained=True)


async def _rows_at_least(device_id: int, n: int) -> bool:
    return await AccessEvent.filter(device_id=device_id).count() >= n


async def _online(device_id: int) -> bool:
    return (await Device.get(id=device_id)).online


# ------------------------------------------------- device logins on the district broker


@pytest.fixture(scope="module")
async def secured_district(stack: Stack) -> AsyncIterator[tuple[Stack, PrivateMosquitto]]:
    """Both brokers with dynamic security: the server administers the central one and the
    district one (ANXIN_MQTT_DISTRICT_URLS); the district's bridge logs in to the central
    broker with an account holding the server's topics."""
    if stack.backend != "postgres":
        pytest.skip("the scale-out parts go with PostgreSQL")
    need_binaries()
    from boot.roles import build_app, build_runtime

    root = f"{ROOT}-sec"
    central = start_private_mosquitto(dynsec_admin=("anxin-bridge", "central-pw"))
    central_admin = f"mqtt://anxin-bridge:central-pw@127.0.0.1:{central.port}"
    admin = DynsecAdmin(central_admin, root)
    await admin.start()  # the server's role exists from here
    await admin.run(
        [
            {
                "command": "createClient",
                "username": "district-1",
                "password": "bridge-pw",
                "roles": [{"rolename": SERVER_ROLE}],
            }
        ]
    )
    await admin.stop()
    district = start_private_mosquitto(
        dynsec_admin=("anxin-bridge", "district-pw"),
        extra_conf=bridge_conf(central.port, root, ("district-1", "bridge-pw")),
    )
    settings = stack.settings.model_copy(
        update={
            "mqtt_url": central_admin,
            "mqtt_dynsec": True,
            "mqtt_district_urls": f"mqtt://anxin-bridge:district-pw@127.0.0.1:{district.port}",
            "topic_root": root,
        }
    )
    app = build_app(settings, build_runtime(settings, owns_database=False))
    try:
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://anxin.test", timeout=30
            ) as client:
                yield Stack("postgres", app, client, settings, stack.wechat_url), district
    finally:
        district.stop()
        central.stop()


async def test_device_logins_live_on_the_district_broker(
    secured_district: tuple[Stack, PrivateMosquitto],
) -> None:
    city, district = secured_district
    site = await make_site(city)
    await AccessCard.create(
        community=site.world.community, resident_id=site.resident_id, card_no="CITY-2"
    )
    uid, secret = site.gate["device_uid"], site.gate["secret"]
    # Provisioned on the district broker before the API answered; anonymous is refused.
    assert await _connects(district.port, uid, secret)
    assert not await _connects(district.port, None, None)
    gate = SimulatedDevice(
        DeviceConfig(device_id=uid, secret=secret, kind="face_gate", root=city.settings.topic_root),
        mqtt_url=district.url,
    )
    await gate.start()
    try:
        await until(lambda: _online(site.gate["id"]))  # the bridge logged in to the centre
        await gate.swipe_card("CITY-2")
        assert (await gate.wait_opened(1)).reason == "resident"
        (row,) = await wait_events(site.gate["id"], 1)
        assert row.result.value == "granted"
    finally:
        await gate.stop(clear_retained=True)
    # Revoked through the API: the district broker refuses the login at once.
    r = await city.client.post(
        f"/api/v1/staff/devices/{site.gate['id']}/status",
        json={"status": "revoked"},
        headers=site.admin_h,
    )
    assert r.status_code == 200, r.text
    assert not await _connects(district.port, uid, secret)


async def _connects(port: int, username: str | None, password: str | None) -> bool:
    try:
        async with aiomqtt.Client(
            "127.0.0.1",
            port,
            username=username,
            password=password,
            identifier=f"dev-{username}" if username else None,
            timeout=5,
        ):
            return True
    except aiomqtt.MqttError:
        return False
