"""The bridge under bad input, duplicate delivery and several bridge processes."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets

import aiomqtt
import pytest

from anxin.clock import utcnow
from boot.roles import build_runtime
from device_bridge.broker import device_client_id
from device_bridge.mqtt import parse_mqtt_url
from device_bridge.protocol import MAX_IMAGE_B64, Topics, new_id, now_ms
from device_bridge.service import BRIDGE
from device_bridge.signing import device_key, sign
from models import AccessCard, AccessEvent, Device, DeviceCommand, DeviceKind, StaffRoleName
from tests.devices import register_device, simulator
from tests.helpers import approved_resident, make_staff, make_world, staff_headers
from tests.stack import Stack


async def _card_world(stack: Stack, card_no: str) -> tuple[dict, dict]:
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    resident = await approved_resident(stack, world.rooms[0], admin_h)
    me = (await resident.get("/api/v1/me")).json()
    await AccessCard.create(community=world.community, resident_id=me["id"], card_no=card_no)
    gate = await register_device(stack, world.community.id, admin_h, kind="face_gate")
    return gate, me


async def _wait_rows(device_id: int, count: int, wait_s: float = 10.0) -> list[AccessEvent]:
    for _ in range(int(wait_s / 0.02)):
        rows = await AccessEvent.filter(device_id=device_id).order_by("id")
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} access events")


def _card_event(device_uid: str, card_no: str, **extra: object) -> dict:
    return {
        "v": 1,
        "id": new_id(),
        "device_id": device_uid,
        "ts": now_ms(),
        "seq": 1,
        "type": "card_swipe",
        "door": 1,
        "card_no": card_no,
        **extra,
    }


async def test_bad_device_input_is_dropped_and_the_bridge_keeps_working(stack: Stack) -> None:
    gate, _ = await _card_world(stack, "R-1")
    uid, key = gate["device_uid"], device_key(gate["secret"])
    topics = Topics(stack.settings.topic_root)
    bridge = stack.runtime.get(BRIDGE)
    before = dict(bridge.transport.stats)
    url = parse_mqtt_url(bridge.mqtt_url)
    oversized = sign(
        {
            **_card_event(uid, "R-1"),
            "type": "face_capture",
            "mode": "server",
            "image": base64.b64encode(b"x" * MAX_IMAGE_B64).decode(),
        },
        key,
    )
    bad = [
        (topics.evt(uid), b"{not json"),
        (topics.evt(uid), json.dumps({**_card_event(uid, "R-1"), "v": 2}).encode()),
        (topics.evt(uid), json.dumps(sign(_card_event(uid, "R-1"), b"k" * 32)).encode()),
        (topics.evt(uid), json.dumps(_card_event(uid, "R-1")).encode()),  # unsigned
        (topics.evt(uid), json.dumps(oversized).encode()),
        (topics.evt("ax-nobody"), json.dumps(sign(_card_event("ax-nobody", "R-1"), key)).encode()),
        (
            topics.evt(uid),
            json.dumps(sign({**_card_event(uid, "R-1"), "card_no": 7}, key)).encode(),
        ),
    ]
    # As the device itself (the broker refuses anonymous clients and foreign topics).
    login = {"username": uid, "password": gate["secret"], "identifier": device_client_id(uid)}
    async with aiomqtt.Client(url.host, url.port, **login) as client:
        for topic, payload in bad:
            await client.publish(topic, payload, qos=1)
    async with simulator(stack, gate) as sim:
        await sim.swipe_card("R-1")
        await sim.wait_opened(timeout=10)
    rows = await _wait_rows(gate["id"], 1)
    assert len(rows) == 1 and rows[0].result.value == "granted"
    stats = bridge.transport.stats
    rejected = sum(stats[k] - before.get(k, 0) for k in ("malformed", "bad_signature"))
    assert rejected >= 6  # each bad message counted, none crashed the consumer


async def test_duplicate_delivery_writes_one_row_and_opens_once(stack: Stack) -> None:
    gate, me = await _card_world(stack, "R-2")
    bridge = stack.runtime.get(BRIDGE)
    event = sign(_card_event(gate["device_uid"], "R-2"), device_key(gate["secret"]))
    async with simulator(stack, gate) as sim:
        transport = bridge.transport
        assert await transport.handle_event(gate["device_uid"], dict(event)) == "accepted"
        await sim.wait_opened(timeout=10)
        # The broker redelivers (QoS 1) after a bridge restart: the in-memory de-dup is
        # gone, only the claim and the unique event key stand.
        transport._seen = type(transport._seen)()  # noqa: SLF001 - simulate a restart
        assert await transport.handle_event(gate["device_uid"], dict(event)) == "accepted"
        await asyncio.sleep(0.5)
        assert len(sim.opened) == 1
    rows = await _wait_rows(gate["id"], 1)
    assert len(rows) == 1 and rows[0].resident_id == me["id"]
    assert await DeviceCommand.filter(device_id=gate["id"], op="open").count() == 1


async def test_two_bridge_processes_handle_each_event_once(stack: Stack) -> None:
    if stack.backend != "postgres":
        pytest.skip("several bridge processes need Mosquitto and Redis (the server stack)")
    gate, _ = await _card_world(stack, "R-3")
    group = f"anxin-test-{secrets.token_hex(4)}"
    # The stack's own API process sends commands only; two bridges share the events.
    settings = stack.settings.model_copy(update={"mqtt_shared_group": group})
    bridges = [build_runtime(settings, owns_database=False) for _ in range(2)]
    stack_before = stack.runtime.get(BRIDGE).stats["granted"]
    for runtime in bridges:
        await runtime.start()
    try:
        async with simulator(stack, gate) as sim:
            for _ in range(6):
                await sim.swipe_card("R-3")
            await sim.flush()
            rows = await _wait_rows(gate["id"], 6, wait_s=20)
            await asyncio.sleep(0.5)
            rows = await AccessEvent.filter(device_id=gate["id"])
            assert len(rows) == 6 and len({r.event_key for r in rows}) == 6
            assert len(sim.opened) == 6
    finally:
        for runtime in bridges:
            await runtime.stop()
    handled = [r.get(BRIDGE).stats["granted"] for r in bridges]
    stack_handled = stack.runtime.get(BRIDGE).stats["granted"] - stack_before
    assert sum(handled) + stack_handled == 6  # each event decided exactly once


async def test_a_decision_marks_its_device_seen_at_most_every_few_seconds(stack: Stack) -> None:
    world = await make_world(units=1, rooms_per_unit=1)
    device = await Device.create(
        device_uid=f"dev-{secrets.token_hex(4)}",
        community=world.community,
        kind=DeviceKind.FACE_GATE,
        name="南门闸机",
        online=False,
    )
    bridge = stack.runtime.get(BRIDGE)
    await bridge._touch(device)  # noqa: SLF001
    row = await Device.get(id=device.id)
    assert row.online and row.last_seen_at is not None
    assert abs((row.last_seen_at - utcnow()).total_seconds()) < 5
    seen = row.last_seen_at
    await Device.filter(id=device.id).update(online=False)
    await bridge._touch(device)  # noqa: SLF001 - within 5 s of the last: nothing written
    row = await Device.get(id=device.id)
    assert not row.online and row.last_seen_at == seen
