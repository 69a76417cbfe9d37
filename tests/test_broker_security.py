"""Who may use the broker, and what each may touch: the embedded amqtt and a Mosquitto with
the dynamic-security plugin (its own private instance; the shared :1883 stays anonymous).

Anonymous clients are refused; a device logs in with its own id and secret, reads only its
own commands and writes only its own topics; the server's logins follow provisioning,
rotation, disabling and revocation through the API at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import httpx
import pytest
from asgi_lifespan import LifespanManager

from device_bridge.broker import (
    BrokerAccess,
    EmbeddedBroker,
    device_client_id,
    start_private_mosquitto,
)
from device_bridge.mqtt import parse_mqtt_url
from device_bridge.protocol import Topics
from device_bridge.service import BRIDGE
from tests.devices import register_device
from tests.helpers import make_staff, make_world, staff_headers
from tests.mqtt_support import unique_root
from tests.stack import Stack

ROOT = "anxin-sec"


async def _connects(url: str, username: str | None, password: str | None, **kw: Any) -> bool:
    p = parse_mqtt_url(url)
    try:
        async with aiomqtt.Client(
            p.host,
            p.port,
            username=username or p.username,
            password=password or p.password,
            timeout=5,
            **kw,
        ):
            return True
    except aiomqtt.MqttError:
        return False


async def _subscribe_granted(client: aiomqtt.Client, topic: str) -> bool:
    """Whether the broker granted a subscription (MQTT 3.1.1 SUBACK 0x80 = refused)."""
    try:
        granted = await client.subscribe(topic, qos=1)
    except aiomqtt.MqttError:
        return False
    codes = [getattr(g, "value", g) for g in (granted or [])]
    return bool(codes) and all(c is not None and int(c) < 0x80 for c in codes)


async def _receives(client: aiomqtt.Client, wait_s: float = 0.5) -> list[str]:
    got: list[str] = []

    async def read() -> None:
        async for msg in client.messages:
            got.append(msg.topic.value)

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(read(), wait_s)
    return got


# ---------------------------------------------------------------- the embedded broker


@pytest.fixture
async def embedded() -> AsyncIterator[EmbeddedBroker]:
    logins = {"gate-a": "secret-a", "gate-b": "secret-b"}

    async def password(device_id: str) -> str | None:
        return logins.get(device_id)

    access = BrokerAccess(root=ROOT, server_password="server-pw", device_password=password)
    async with EmbeddedBroker(access=access) as broker:
        yield broker


async def test_embedded_broker_refuses_anonymous_and_wrong_logins(
    embedded: EmbeddedBroker,
) -> None:
    url = embedded.url
    assert not await _connects(url, None, None)
    assert not await _connects(url, "gate-a", "secret-b", identifier="dev-gate-a")
    assert not await _connects(url, "gate-a", "secret-a", identifier="dev-gate-b")  # not its id
    assert not await _connects(url, "gate-z", "anything", identifier="dev-gate-z")
    assert not await _connects(url, "anxin-bridge", "guess")
    assert await _connects(url, "gate-a", "secret-a", identifier="dev-gate-a")
    assert await _connects(embedded.server_url, None, None)  # the server's own login
    assert "server-pw" not in embedded.url
    # A last will on another device's topic is refused at login.
    will = aiomqtt.Will(Topics(ROOT).state("gate-b"), b"offline", qos=1, retain=True)
    assert not await _connects(url, "gate-a", "secret-a", identifier="dev-gate-a", will=will)
    assert embedded.access is not None and embedded.access.refused["login_anonymous"] >= 1


async def test_embedded_broker_keeps_each_device_to_its_own_topics(
    embedded: EmbeddedBroker,
) -> None:
    t = Topics(ROOT)
    p = parse_mqtt_url(embedded.url)
    sp = parse_mqtt_url(embedded.server_url)
    async with (
        aiomqtt.Client(sp.host, sp.port, username=sp.username, password=sp.password) as server,
        aiomqtt.Client(
            p.host, p.port, username="gate-a", password="secret-a", identifier="dev-gate-a"
        ) as a,
        aiomqtt.Client(
            p.host, p.port, username="gate-b", password="secret-b", identifier="dev-gate-b"
        ) as b,
    ):
        assert not await _subscribe_granted(a, "#")
        assert not await _subscribe_granted(a, t.all("cmd"))
        assert not await _subscribe_granted(a, t.cmd("gate-b"))
        assert not await _subscribe_granted(a, t.evt("gate-b"))
        assert await _subscribe_granted(a, t.cmd("gate-a"))
        assert await _subscribe_granted(b, t.cmd("gate-b"))
        assert not await _subscribe_granted(server, "#")  # the server: its root only
        assert await _subscribe_granted(server, t.all("evt"))
        # A device speaks only for itself: its forgery on gate-b's topic never arrives.
        await a.publish(t.evt("gate-b"), b'{"forged": true}', qos=1)
        await a.publish(t.cmd("gate-b"), b'{"op": "open"}', qos=1)
        await a.publish(t.evt("gate-a"), b"{}", qos=1)
        assert await _receives(server) == [t.evt("gate-a")]
        assert await _receives(b) == []
        await server.publish(t.cmd("gate-b"), b"{}", qos=1)
        assert await _receives(b) == [t.cmd("gate-b")]
        assert await _receives(a, 0.2) == []


async def test_an_unauthenticated_client_cannot_cut_a_device_off(
    embedded: EmbeddedBroker,
) -> None:
    """amqtt takes over a client id's session before it authenticates; ours does not."""
    t = Topics(ROOT)
    p = parse_mqtt_url(embedded.url)
    sp = parse_mqtt_url(embedded.server_url)
    async with (
        aiomqtt.Client(
            p.host, p.port, username="gate-a", password="secret-a", identifier="dev-gate-a"
        ) as a,
        aiomqtt.Client(sp.host, sp.port, username=sp.username, password=sp.password) as server,
    ):
        await a.subscribe(t.cmd("gate-a"), qos=1)
        for clean in (True, False):
            assert not await _connects(
                embedded.url, "gate-a", "wrong", identifier="dev-gate-a", clean_session=clean
            )
        await server.publish(t.cmd("gate-a"), b"{}", qos=1)
        assert await _receives(a) == [t.cmd("gate-a")]


async def test_api_changes_reach_the_embedded_broker_at_once(stack: Stack) -> None:
    if stack.backend != "sqlite":
        pytest.skip("the embedded broker is the default without MQTT_URL")
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, "admin"))
    gate = await register_device(stack, world.community.id, admin_h, kind="face_gate")
    uid, url = gate["device_uid"], stack.runtime.get(BRIDGE).mqtt_url
    login = {"identifier": device_client_id(uid)}
    assert await _connects(url, uid, gate["secret"], **login)
    p = parse_mqtt_url(url)
    async with aiomqtt.Client(p.host, p.port, username=uid, password=gate["secret"], **login) as c:
        r = await stack.client.post(f"/api/v1/staff/devices/{gate['id']}/rotate", headers=admin_h)
        assert r.status_code == 200
        new_secret = r.json()["secret"]
        with pytest.raises(aiomqtt.MqttError):  # the old session was cut
            await asyncio.wait_for(_ping_until_closed(c), 5)
    assert not await _connects(url, uid, gate["secret"], **login)
    assert await _connects(url, uid, new_secret, **login)
    dev = f"/api/v1/staff/devices/{gate['id']}/status"
    r = await stack.client.post(dev, json={"status": "disabled"}, headers=admin_h)
    assert r.status_code == 200
    assert not await _connects(url, uid, new_secret, **login)
    await stack.client.post(dev, json={"status": "active"}, headers=admin_h)
    assert await _connects(url, uid, new_secret, **login)
    await stack.client.post(dev, json={"status": "revoked"}, headers=admin_h)
    assert not await _connects(url, uid, new_secret, **login)


async def _ping_until_closed(client: aiomqtt.Client) -> None:
    while True:
        await client.publish("x/ping", b"", qos=1, timeout=1)
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- Mosquitto + dynsec


@pytest.fixture
async def dynsec_app(stack: Stack) -> AsyncIterator[dict[str, Any]]:
    """The stack's database, served by an app whose broker is a private Mosquitto with the
    dynamic-security plugin (initialised with the server's admin login only)."""
    from api.app import create_app
    from boot.roles import build_runtime

    try:
        broker = start_private_mosquitto(dynsec_admin=("anxin-bridge", "bridge-pw"))
    except (FileNotFoundError, OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no Mosquitto with dynamic security here: {exc}")
    settings = stack.settings.model_copy(
        update={
            "topic_root": unique_root(),
            "mqtt_url": f"mqtt://anxin-bridge:bridge-pw@127.0.0.1:{broker.port}",
            "mqtt_dynsec": True,
        }
    )
    app = create_app(build_runtime(settings, owns_database=False))
    try:
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://anxin.test", timeout=30
            ) as client:
                yield {"client": client, "app": app, "broker": broker, "settings": settings}
    finally:
        await asyncio.to_thread(broker.stop)


async def test_mosquitto_logins_follow_the_api_through_dynamic_security(
    dynsec_app: dict[str, Any],
) -> None:
    client: httpx.AsyncClient = dynsec_app["client"]
    broker, settings = dynsec_app["broker"], dynsec_app["settings"]
    stack = type("S", (), {"client": client})()
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, "admin"))  # type: ignore[arg-type]
    gate = await register_device(stack, world.community.id, admin_h, kind="face_gate")  # type: ignore[arg-type]
    other = await register_device(
        stack, world.community.id, admin_h, kind="unit_door", unit_id=world.units[0].id
    )  # type: ignore[arg-type]
    uid, url = gate["device_uid"], broker.url
    login = {"identifier": device_client_id(uid)}
    t = Topics(settings.topic_root)

    # Provisioned at once; anonymous and wrong logins refused.
    assert not await _connects(url, None, None)
    assert not await _connects(url, uid, "wrong", **login)
    assert not await _connects(url, uid, gate["secret"], identifier="dev-someone-else")
    assert await _connects(url, uid, gate["secret"], **login)

    # The same per-device ACL as the embedded broker.
    p = parse_mqtt_url(url)
    async with (
        aiomqtt.Client(p.host, p.port, username=uid, password=gate["secret"], **login) as dev,
        aiomqtt.Client(
            p.host,
            p.port,
            username=other["device_uid"],
            password=other["secret"],
            identifier=device_client_id(other["device_uid"]),
        ) as peer,
    ):
        assert await _subscribe_granted(dev, t.cmd(uid))
        await peer.subscribe(t.cmd(other["device_uid"]), qos=1)
        assert not await _subscribe_granted(dev, "#")
        assert not await _subscribe_granted(dev, t.cmd(other["device_uid"]))
        await dev.publish(t.cmd(other["device_uid"]), b'{"op": "open"}', qos=1)
        assert await _receives(peer) == []

        # Rotation: the new secret works at once, the old one never again, and the live
        # session on the old secret is dropped.
        r = await client.post(f"/api/v1/staff/devices/{gate['id']}/rotate", headers=admin_h)
        assert r.status_code == 200
        new_secret = r.json()["secret"]
        with pytest.raises(aiomqtt.MqttError):
            await asyncio.wait_for(_ping_until_closed(dev), 5)
    assert not await _connects(url, uid, gate["secret"], **login)
    assert await _connects(url, uid, new_secret, **login)

    status = f"/api/v1/staff/devices/{gate['id']}/status"
    assert (await client.post(status, json={"status": "disabled"}, headers=admin_h)).is_success
    assert not await _connects(url, uid, new_secret, **login)
    assert (await client.post(status, json={"status": "active"}, headers=admin_h)).is_success
    assert await _connects(url, uid, new_secret, **login)
    assert (await client.post(status, json={"status": "revoked"}, headers=admin_h)).is_success
    assert not await _connects(url, uid, new_secret, **login)

    # A restored (empty) broker is brought back in line at bridge start.
    bridge = dynsec_app["app"].state.runtime.get(BRIDGE)
    await bridge.dynsec.remove_device(other["device_uid"])
    assert not await _connects(
        url, other["device_uid"], other["secret"], identifier=device_client_id(other["device_uid"])
    )
    await bridge.reconcile_broker_logins()
    assert await _connects(
        url, other["device_uid"], other["secret"], identifier=device_client_id(other["device_uid"])
    )
    assert uid not in await bridge.dynsec.list_clients()


async def test_embedded_broker_serves_clients_connecting_while_others_subscribe(
    embedded: EmbeddedBroker,
) -> None:
    """On connect amqtt walks its subscription table with awaits inside the loop (the
    retained messages of a returning session's filters); a subscribe from another client in
    between killed the connecting client's session after its CONNACK, and its SUBSCRIBE then
    went unanswered. Returning sessions and new subscribers at once must all come up."""
    p = parse_mqtt_url(embedded.server_url)
    base = f"{ROOT}/v1/dev/"

    def client(n: int) -> aiomqtt.Client:
        login = {"username": p.username, "password": p.password, "identifier": f"srv-{n}"}
        return aiomqtt.Client(p.host, p.port, timeout=5, clean_session=False, **login)

    async with client(0) as c:
        for k in range(30):
            await c.publish(f"{base}gate-{k}/state", b"online", qos=1, retain=True)
    for n in range(40):  # sessions that hold filters matching those retained states
        async with client(n) as c:
            assert await _subscribe_granted(c, f"{base}+/state")

    async def returning(n: int) -> bool:
        async with client(n) as c:
            return await _subscribe_granted(c, f"{base}back-{n}/cmd")

    back = asyncio.Event()

    async def subscribing(n: int) -> bool:
        async with client(100 + n) as c:
            k = 0
            while not back.is_set() or k < 5:  # new filters all the while the others return
                if not await _subscribe_granted(c, f"{base}new-{n}-{k}/cmd"):
                    return False
                k += 1
            return True

    subscribers = [asyncio.create_task(subscribing(n)) for n in range(10)]
    await asyncio.sleep(0.05)
    results = await asyncio.gather(*(returning(n) for n in range(40)), return_exceptions=True)
    back.set()
    results += await asyncio.gather(*subscribers, return_exceptions=True)
    assert all(r is True for r in results), [str(r) for r in results if r is not True][:3]


async def test_embedded_broker_gives_a_device_no_retained_message_of_another(
    embedded: EmbeddedBroker,
) -> None:
    """amqtt sent a connecting client the retained messages matching every filter in the
    broker, anyone's: a gate coming online read every other gate's retained state."""
    p, u = parse_mqtt_url(embedded.server_url), parse_mqtt_url(embedded.url)
    topics = Topics(ROOT)
    server_login = {"username": p.username, "password": p.password, "identifier": "srv-x"}
    async with aiomqtt.Client(p.host, p.port, clean_session=False, **server_login) as server:
        assert await _subscribe_granted(server, topics.state("+"))
    login = {"username": "gate-b", "password": "secret-b", "identifier": "dev-gate-b"}
    async with aiomqtt.Client(u.host, u.port, **login) as gate_b:
        await gate_b.publish(topics.state("gate-b"), b"online", qos=1, retain=True)
    login = {"username": "gate-a", "password": "secret-a", "identifier": "dev-gate-a"}
    async with aiomqtt.Client(u.host, u.port, **login) as gate_a:
        assert await _receives(gate_a) == []
    # The server's returning session, which holds the filter, still gets it.
    async with aiomqtt.Client(p.host, p.port, clean_session=False, **server_login) as server:
        assert topics.state("gate-b") in await _receives(server)
