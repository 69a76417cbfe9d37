"""Protocol v1: schemas, signatures, command guard, and the MQTT transport on real brokers."""
# ruff: noqa: F811 - pytest fixtures imported from tests.mqtt_support are parameter names

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections import deque
from typing import Any

import aiomqtt
import pytest

from anxin.clock import clock
from device_bridge import protocol as P
from device_bridge.broker import BrokerAccess, EmbeddedBroker, start_private_mosquitto
from device_bridge.mqtt import (
    MqttConnection,
    MqttServerTransport,
    _coalesce,
    parse_mqtt_url,
    socket_nodelay,
)
from device_bridge.signing import (
    CommandGuard,
    canonical_json,
    device_key,
    make_command,
    sign,
    verify,
)
from device_bridge.simulator import DeviceConfig, SimulatedDevice
from tests.mqtt_support import (  # noqa: F401 - fixtures
    clear_retained,
    key_lookup,
    mqtt_url,
    private_mosquitto,
    secrets_for,
    server_and_devices,
    topic_root,
)

KEY = device_key("s3cret")


@pytest.fixture(autouse=True)
def _reset_clock():
    clock.reset()
    yield
    clock.reset()


# ---------------------------------------------------------------- signing


def test_canonical_json_is_order_independent_and_excludes_sig() -> None:
    a = {"b": 1, "a": "门", "sig": "x"}
    assert canonical_json(a) == canonical_json({"a": "门", "b": 1}) == '{"a":"门","b":1}'.encode()


def test_sign_verify_and_tamper() -> None:
    msg = sign({"v": 1, "id": "m1", "device_id": "d1", "n": 5}, KEY)
    assert verify(msg, KEY)
    assert verify(json.loads(json.dumps(msg)), KEY)  # survives the wire
    assert not verify({**msg, "n": 6}, KEY)
    assert not verify(msg, device_key("other"))
    assert not verify({k: v for k, v in msg.items() if k != "sig"}, KEY)
    assert not verify({**msg, "sig": 12}, KEY)


def test_make_command_fields_and_ttl() -> None:
    cmd = make_command("gate-1", "open", {"reason": "face"}, KEY, ttl_s=10)
    assert cmd["expires_at"] - cmd["issued_at"] == 10_000
    assert cmd["op"] == "open" and cmd["args"]["door"] == 1 and verify(cmd, KEY)
    parsed = P.parse_command(cmd)
    assert isinstance(parsed, P.OpenCommand) and parsed.args.reason == "face"
    with pytest.raises(ValueError):
        make_command("gate-1", "open", {"door": 99}, KEY)


def test_guard_accepts_then_refuses_replay_tamper_expiry_and_wrong_device() -> None:
    guard = CommandGuard("gate-1", KEY)
    cmd = make_command("gate-1", "open", {}, KEY, ttl_s=5)
    assert guard.check(cmd).ok
    assert guard.check(cmd).reason == "replayed"
    tampered = {**make_command("gate-1", "open", {}, KEY), "args": {"door": 2}}
    assert guard.check(tampered).reason == "bad_signature"
    wrong_key = make_command("gate-1", "open", {}, device_key("guess"))
    assert guard.check(wrong_key).reason == "bad_signature"
    other = make_command("gate-2", "open", {}, KEY)
    assert guard.check(other).reason == "wrong_device"
    old = make_command("gate-1", "open", {}, KEY, ttl_s=5, issued_at=P.now_ms() - 6_000)
    assert guard.check(old).reason == "expired"
    future = make_command("gate-1", "open", {}, KEY, issued_at=P.now_ms() + 120_000)
    assert guard.check(future).reason == "not_yet_valid"
    assert guard.check({"id": 5}).reason == "malformed"


def test_guard_expiry_follows_the_clock_and_forgets_old_ids() -> None:
    guard = CommandGuard("gate-1", KEY)
    cmd = make_command("gate-1", "open", {}, KEY, ttl_s=10)
    assert guard.check(cmd).ok and len(guard) == 1
    clock.advance(11)
    assert guard.check(cmd).reason == "expired"  # expired beats replayed, and is forgotten
    assert len(guard) == 0
    fresh = make_command("gate-1", "open", {}, KEY)
    assert guard.check(fresh).ok


# ---------------------------------------------------------------- schemas


def _event(**kw: object) -> dict[str, object]:
    return {"v": 1, "id": uuid.uuid4().hex, "device_id": "gate-1", "ts": P.now_ms(), **kw}


@pytest.mark.parametrize(
    "fields, cls",
    [
        ({"type": "face_capture", "mode": "local", "person_id": "p1", "score": 0.8}, P.FaceCapture),
        ({"type": "card_swipe", "card_no": "0012345"}, P.CardSwipe),
        ({"type": "qr_scan", "token": "eyJ..."}, P.QrScan),
        ({"type": "code_entry", "room": "3-1201", "code_sealed": "c2VhbGVk"}, P.CodeEntry),
        ({"type": "plate_read", "plate": "粤B12345"}, P.PlateRead),
        ({"type": "intercom_call", "room": "1201"}, P.IntercomCall),
        ({"type": "door_state", "state": "forced_open"}, P.DoorState),
        ({"type": "fence_alarm", "zone": "north-3"}, P.FenceAlarm),
        ({"type": "pass_used", "pass_id": "ps1", "uses": 1}, P.PassUsed),
    ],
)
def test_every_event_type_parses(fields: dict[str, object], cls: type) -> None:
    assert isinstance(P.parse_event(_event(**fields)), cls)


def test_schema_limits_and_bad_input() -> None:
    with pytest.raises(P.ProtocolError):
        P.parse_event(_event(type="face_capture", mode="server", image="A" * (P.MAX_IMAGE_B64 + 1)))
    with pytest.raises(P.ProtocolError):
        P.parse_event({**_event(type="card_swipe", card_no="1"), "device_id": "a/+/#"})
    with pytest.raises(P.ProtocolError):
        P.parse_event(_event(type="teleport"))
    too_big = b"x" * (P.MAX_MESSAGE_BYTES + 1)
    for raw in (b"\xff\xfe", b"[1,2]", b'{"v": 2, "id": "x"}', b"not json", too_big):
        with pytest.raises(P.ProtocolError):
            P.decode(raw)
    with pytest.raises(P.ProtocolError):
        P.embedding_from_b64("!!!")
    # unknown extra fields are tolerated (forward compatibility within v1)
    assert P.parse_event(_event(type="card_swipe", card_no="1", future_field=3))
    schemas = P.json_schemas()
    assert set(schemas) == {"command", "ack", "event", "state"}
    assert "face_capture" in json.dumps(schemas["event"])


def test_topics() -> None:
    t = P.Topics("anxin-x")
    assert t.cmd("gate-1") == "anxin-x/v1/dev/gate-1/cmd"
    assert t.parse("anxin-x/v1/dev/gate-1/evt") == ("gate-1", "evt")
    assert t.parse("anxin-x/v1/dev/gate-1/evt/extra") is None
    assert t.parse("other/v1/dev/gate-1/evt") is None
    assert t.shared("anxin-bridge", t.all("evt")) == "$share/anxin-bridge/anxin-x/v1/dev/+/evt"


def test_parse_mqtt_url() -> None:
    p = parse_mqtt_url("mqtt://bridge:p%40ss@10.0.0.5:1884")
    assert (p.host, p.port, p.username, p.password) == ("10.0.0.5", 1884, "bridge", "p@ss")
    assert parse_mqtt_url("127.0.0.1").port == 1883


# ---------------------------------------------------------------- over the broker


async def _teardown(
    server: MqttServerTransport, devices: dict[str, SimulatedDevice], url: str, root: str
) -> None:
    for d in devices.values():
        await d.stop(clear_retained=True)
    await server.stop()
    await clear_retained(url, root, timeout=0.3)


async def test_ack_round_trip_through_mosquitto(mqtt_url: str, topic_root: str) -> None:
    secrets = secrets_for("gate-1")
    server, devs = await server_and_devices(mqtt_url, topic_root, secrets, relock_s=0.05)
    try:
        state = await server.next_state(5)
        assert state.state.status == "online" and state.authenticated
        cmd = make_command("gate-1", "open", {"reason": "remote"}, device_key(secrets["gate-1"]))
        out = await server.send_command(cmd)
        assert out.ok and out.ack and out.ack.cmd_id == cmd["id"] and out.elapsed_ms
        assert devs["gate-1"].opened[0].cmd_id == cmd["id"]
        evt = await server.next_event(5)
        assert evt.authenticated and evt.event.type == "door_state"
        assert evt.event.cmd_id == cmd["id"]
        # TCP_NODELAY on both ends' client sockets
        assert socket_nodelay(server.conn) is True
        assert socket_nodelay(devs["gate-1"].link.conn) is True  # type: ignore[attr-defined]
    finally:
        await _teardown(server, devs, mqtt_url, topic_root)


async def test_refusals_come_back_as_acks(mqtt_url: str, topic_root: str) -> None:
    secrets = secrets_for("gate-1")
    key = device_key(secrets["gate-1"])
    server, devs = await server_and_devices(mqtt_url, topic_root, secrets)
    try:
        tampered = {**make_command("gate-1", "open", {}, key), "args": {"door": 2}}
        out = await server.send_command(tampered)
        assert (out.status, out.reason) == ("refused", "bad_signature")
        expired = make_command("gate-1", "open", {}, key, issued_at=P.now_ms() - 60_000, ttl_s=10)
        # the server would not even wait for it; send it raw to prove the device refuses it
        await server.conn.publish(server.topics.cmd("gate-1"), P.encode(expired))
        cmd = make_command("gate-1", "open", {}, key)
        assert (await server.send_command(cmd)).ok
        # a replay of the same bytes (e.g. captured on the wire)
        await server.conn.publish(server.topics.cmd("gate-1"), P.encode(cmd))
        for _ in range(50):
            if len(devs["gate-1"].acks) >= 4:
                break
            await asyncio.sleep(0.02)
        reasons = [a.get("reason") for a in devs["gate-1"].acks]
        assert reasons == ["bad_signature", "expired", None, "replayed"]
        assert len(devs["gate-1"].opened) == 1
    finally:
        await _teardown(server, devs, mqtt_url, topic_root)


async def test_unacked_command_is_reported_expired(mqtt_url: str, topic_root: str) -> None:
    server = MqttServerTransport(mqtt_url, root=topic_root, key_for=lambda _d: KEY)
    await server.start()
    try:
        cmd = make_command("nobody-home", "open", {}, KEY, ttl_s=0.3)
        out = await server.send_command(cmd)
        assert out.status == "expired" and server.pending_count() == 0
        # a moved clock expires a pending command at once, without sleeping
        cmd2 = make_command("nobody-home", "open", {}, KEY, ttl_s=30)
        await server.publish_command(cmd2)
        short = await server.wait_ack(cmd2["id"], timeout=0.05)
        assert short.status == "timeout" and server.pending_count() == 1
        clock.advance(31)
        assert (await server.wait_ack(cmd2["id"])).status == "expired"
        with pytest.raises(P.ProtocolError):
            await server.publish_command({k: v for k, v in cmd.items() if k != "sig"})
    finally:
        await server.stop()


async def test_last_will_publishes_offline(mqtt_url: str, topic_root: str) -> None:
    secrets = secrets_for("door-7")
    server, devs = await server_and_devices(mqtt_url, topic_root, secrets, kind="unit_door")
    try:
        assert (await server.next_state(5)).state.status == "online"
        devs["door-7"].go_offline()
        st = await server.next_state(5)
        assert st.state.status == "offline" and st.state.reason == "lwt" and st.authenticated
        await devs["door-7"].go_online()
        assert (await server.next_state(5)).state.status == "online"
        assert server.device_states["door-7"].status == "online"
    finally:
        await _teardown(server, devs, mqtt_url, topic_root)


async def test_malformed_and_forged_messages_never_crash(mqtt_url: str, topic_root: str) -> None:
    secrets = secrets_for("gate-1")
    key = device_key(secrets["gate-1"])
    server, devs = await server_and_devices(mqtt_url, topic_root, secrets)
    t = server.topics
    try:
        await server.next_state(5)
        p = parse_mqtt_url(mqtt_url)
        async with aiomqtt.Client(p.host, p.port) as raw:
            for topic in (t.evt("gate-1"), t.ack("gate-1"), t.state("gate-1"), t.cmd("gate-1")):
                for junk in (
                    b"",
                    b"\x00\xff",
                    b"[]",
                    b'{"v":1}',
                    b'{"v":9,"id":"x"}',
                    b'{"v":1,"id":"x","device_id":"gate-1","type":"card_swipe"}',
                ):
                    await raw.publish(topic, junk, qos=1)
            await raw.publish(f"{topic_root}/v1/dev/gate-1/evt/extra", b"{}", qos=1)
            # forged: right schema, wrong key
            forged = sign(
                _event(type="card_swipe", card_no="1", device_id="gate-1"), device_key("guess")
            )
            await raw.publish(t.evt("gate-1"), P.encode(forged), qos=1)
            # a device speaking for another device
            spoof = sign(_event(type="card_swipe", card_no="1", device_id="gate-2"), key)
            await raw.publish(t.evt("gate-1"), P.encode(spoof), qos=1)
        await asyncio.sleep(0.3)
        assert server.stats["malformed"] >= 10 and server.stats["bad_signature"] >= 1
        assert server.stats["wrong_device"] >= 1 and server.stats["events"] == 0
        # both ends still work
        assert (await server.send_command(make_command("gate-1", "config", {}, key))).ok
        await devs["gate-1"].swipe_card("42")
        evt = await server.next_event(5)
        assert evt.event.type == "card_swipe" and evt.event.card_no == "42"
    finally:
        await _teardown(server, devs, mqtt_url, topic_root)


async def test_duplicate_event_has_one_effect(mqtt_url: str, topic_root: str) -> None:
    secrets = secrets_for("gate-1")
    server, devs = await server_and_devices(mqtt_url, topic_root, secrets)
    try:
        evt = await devs["gate-1"].swipe_card("7")
        await devs["gate-1"].flush()
        await devs["gate-1"].link.publish_event(evt)  # redelivery, same id
        got = await server.next_event(5)
        assert got.event.id == evt["id"]
        with pytest.raises(TimeoutError):
            await server.next_event(0.3)
        assert server.stats["duplicate"] == 1
    finally:
        await _teardown(server, devs, mqtt_url, topic_root)


async def test_shared_subscription_splits_events(mqtt_url: str, topic_root: str) -> None:
    secrets = secrets_for("gate-1")
    a = MqttServerTransport(
        mqtt_url, root=topic_root, key_for=key_lookup(secrets), shared_group=f"g-{topic_root}"
    )
    b = MqttServerTransport(
        mqtt_url, root=topic_root, key_for=key_lookup(secrets), shared_group=f"g-{topic_root}"
    )
    await a.start()
    await b.start()
    dev = await SimulatedDevice(
        DeviceConfig("gate-1", secrets["gate-1"], root=topic_root), mqtt_url=mqtt_url
    ).start()
    try:
        for i in range(20):
            await dev.swipe_card(str(i))
        await dev.flush()
        await asyncio.sleep(0.3)
        assert a.stats["events"] + b.stats["events"] == 20
        assert a.stats["events"] > 0 and b.stats["events"] > 0
        # acks are not shared: the publisher of a command always sees its ack
        key = device_key(secrets["gate-1"])
        for _ in range(4):
            assert (await a.send_command(make_command("gate-1", "config", {}, key))).ok
            assert (await b.send_command(make_command("gate-1", "config", {}, key))).ok
    finally:
        await dev.stop(clear_retained=True)
        await a.stop()
        await b.stop()


async def test_embedded_amqtt_round_trip(topic_root: str) -> None:
    secrets = secrets_for("gate-1")

    async def password(device_id: str) -> str | None:
        return secrets.get(device_id)

    access = BrokerAccess(root=topic_root, server_password="srv", device_password=password)
    embedded_broker = await EmbeddedBroker(access=access).start()
    server = MqttServerTransport(
        embedded_broker.server_url, root=topic_root, key_for=key_lookup(secrets)
    )
    await server.start()
    cfg = DeviceConfig("gate-1", secrets["gate-1"], root=topic_root, relock_s=0.05)
    devs = {"gate-1": await SimulatedDevice(cfg, mqtt_url=embedded_broker.url).start()}
    try:
        assert (await server.next_state(5)).state.status == "online"
        key = device_key(secrets["gate-1"])
        assert (await server.send_command(make_command("gate-1", "open", {}, key))).ok
        await devs["gate-1"].swipe_card("9")
        types = {(await server.next_event(5)).event.type for _ in range(2)}
        assert "card_swipe" in types
        devs["gate-1"].go_offline()
        assert (await server.next_state(5)).state.status == "offline"
    finally:
        for d in devs.values():
            await d.stop()
        await server.stop()
        await embedded_broker.stop()


async def test_private_mosquitto_nodelay_and_device_acl(topic_root: str) -> None:
    secrets = secrets_for("gate-1", "gate-2")
    users = {**secrets, "anxin-bridge": "bridge-pw"}
    broker = start_private_mosquitto(users=users, acl_root=topic_root)
    try:
        url = f"mqtt://anxin-bridge:bridge-pw@127.0.0.1:{broker.port}"
        server = MqttServerTransport(url, root=topic_root, key_for=key_lookup(secrets))
        await server.start()
        dev_url = broker.url
        d1 = await SimulatedDevice(
            DeviceConfig("gate-1", secrets["gate-1"], root=topic_root), mqtt_url=dev_url
        ).start()
        try:
            await d1.swipe_card("1")
            assert (await server.next_event(5)).device_id == "gate-1"
            # gate-1 may not publish as gate-2 (the ACL drops it silently in MQTT 3.1.1)
            e2 = sign(
                _event(type="card_swipe", card_no="x", device_id="gate-2"),
                device_key(secrets["gate-1"]),
            )
            await d1.link.conn.publish(P.Topics(topic_root).evt("gate-2"), P.encode(e2))  # type: ignore[attr-defined]
            with pytest.raises(TimeoutError):
                await server.next_event(0.3)
            # a wrong password does not get in
            bad = MqttConnection(
                dev_url, lambda *_: asyncio.sleep(0), username="gate-2", password="wrong"
            )
            with pytest.raises(ConnectionError):
                await bad.start(wait=1.0)
            await bad.stop()
            key = device_key(secrets["gate-1"])
            assert (await server.send_command(make_command("gate-1", "config", {}, key))).ok
        finally:
            await d1.stop()
            await server.stop()
    finally:
        broker.stop()


def test_private_mosquitto_config_has_nodelay(private_mosquitto) -> None:
    conf = (private_mosquitto.workdir / "mosquitto.conf").read_text()
    assert "set_tcp_nodelay true" in conf and "listener" in conf and "127.0.0.1" in conf
    with socket.create_connection(("127.0.0.1", private_mosquitto.port), timeout=1):
        pass


async def test_a_household_code_in_clear_is_refused() -> None:
    """A code_entry must carry the code sealed (sealing.py); one in clear is malformed."""
    from device_bridge.http_push import HttpPushTransport

    key = device_key("panel-secret")
    server = HttpPushTransport(lambda _: key)
    clear = sign(
        {
            "v": 1,
            "id": "e1",
            "device_id": "panel-1",
            "ts": P.now_ms(),
            "type": "code_entry",
            "room": "101",
            "code": "604917",
        },
        key,
    )
    assert await server.handle_event("panel-1", clear) == "rejected"
    sealed = sign({**{k: v for k, v in clear.items() if k != "code"}, "code_sealed": "x"}, key)
    assert await server.handle_event("panel-1", sealed) == "accepted"


def test_queued_packets_are_joined_into_one_send_but_those_awaited_once_written() -> None:
    """PUBACKs and QoS 1 publishes queued for one write become one packet (one send, in
    order); a QoS 0 PUBLISH (its sender waits for its write) and DISCONNECT stay apart."""

    def packet(command: int, data: bytes, qos: int = 1, pos: int = 0) -> dict[str, Any]:
        return {
            "command": command,
            "mid": 1,
            "qos": qos,
            "pos": pos,
            "to_process": len(data) - pos,
            "packet": data,
            "info": None,
        }

    out = deque(
        [
            packet(0x40, b"ack1"),
            packet(0x32, b"__pub1", pos=2),  # partly written already
            packet(0x40, b"ack2"),
            packet(0x30, b"qos0", qos=0),
            packet(0x40, b"ack3"),
            packet(0xE0, b"bye"),
        ]
    )
    _coalesce(out)
    assert [bytes(p["packet"][p["pos"] :]) for p in out] == [
        b"ack1pub1ack2",
        b"qos0",
        b"ack3",
        b"bye",
    ]
    assert [p["to_process"] for p in out] == [12, 4, 4, 3]
    assert [p["command"] for p in out] == [0x40, 0x30, 0x40, 0xE0]


async def test_a_burst_read_in_chunks_arrives_whole_and_in_order(
    mqtt_url: str, topic_root: str
) -> None:
    """Messages that arrive together (and one larger than a read's chunk) are each
    delivered whole, in order, although paho is served from one recv per chunk."""
    got: list[bytes] = []
    done = asyncio.Event()
    sizes = [5, 300, 70_000, 17, 200_000, *range(1, 200)]

    async def on_message(topic: str, payload: bytes, retained: bool) -> None:
        got.append(payload)
        if len(got) == len(sizes):
            done.set()

    sub = MqttConnection(mqtt_url, on_message, subscriptions=[f"{topic_root}/burst"])
    pub = MqttConnection(mqtt_url, on_message)
    await sub.start()
    await pub.start()
    try:
        sent = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
        await asyncio.gather(*(pub.publish(f"{topic_root}/burst", m) for m in sent))
        await asyncio.wait_for(done.wait(), 10)
        assert got == sent
    finally:
        await pub.stop()
        await sub.stop()
