"""Cards and alarms through the broker: the simulator swipes, the bridge decides."""

from __future__ import annotations

import asyncio

from models import AccessCard, AccessEvent, Alarm, AlarmKind, DeviceCommand, StaffRoleName
from tests.devices import register_device, simulator
from tests.helpers import approved_resident, make_staff, make_world, staff_headers
from tests.stack import Stack


async def _last_event(device_id: int, count: int = 1, wait_s: float = 5.0) -> AccessEvent:
    for _ in range(int(wait_s / 0.02)):
        rows = await AccessEvent.filter(device_id=device_id).order_by("-id")
        if len(rows) >= count:
            return rows[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no access event written")


async def test_card_opens_for_resident_and_refuses_others(stack: Stack) -> None:
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    resident = await approved_resident(stack, world.rooms[0], admin_h)
    me = (await resident.get("/api/v1/me")).json()
    await AccessCard.create(community=world.community, resident_id=me["id"], card_no="C-1001")
    gate = await register_device(stack, world.community.id, admin_h, kind="face_gate")

    async with simulator(stack, gate) as sim:
        await sim.swipe_card("C-1001")
        opening = await sim.wait_opened()
        assert opening.reason == "resident"
        row = await _last_event(gate["id"])
        assert (row.result.value, row.reason, row.resident_id) == ("granted", "resident", me["id"])
        cmd = await DeviceCommand.get(command_id=row.command_id)
        assert cmd.status.value == "done"

        await sim.swipe_card("C-9999")
        row = await _last_event(gate["id"], 2)
        assert (row.result.value, row.reason) == ("denied", "unknown_card")
        assert len(sim.opened) == 1

        # Move-out takes effect at once: the same card is refused.
        membership = (await resident.get("/api/v1/me/memberships")).json()["items"][0]
        r = await stack.client.post(
            f"/api/v1/staff/memberships/{membership['id']}/end",
            json={"reason": "sold the flat"},
            headers=admin_h,
        )
        assert r.status_code == 200
        await sim.swipe_card("C-1001")
        row = await _last_event(gate["id"], 3)
        assert (row.result.value, row.reason) == ("denied", "moved_out")
        assert len(sim.opened) == 1


async def test_forced_door_and_fence_raise_one_alarm_each(stack: Stack) -> None:
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    gate = await register_device(
        stack, world.community.id, admin_h, kind="unit_door", unit_id=world.units[0].id
    )
    fence = await register_device(stack, world.community.id, admin_h, kind="fence", methods=[])
    guard_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.GUARD))
    async with simulator(stack, gate) as door, simulator(stack, fence) as wall:
        await door.door_forced()
        await wall.fence_alarm("north")
        for _ in range(250):
            alarms = await Alarm.filter(community_id=world.community.id)
            if len(alarms) >= 2:
                break
            await asyncio.sleep(0.02)
        assert sorted(a.kind for a in alarms) == [AlarmKind.FENCE, AlarmKind.FORCED_OPEN]
        r = await stack.client.get(
            f"/api/v1/staff/communities/{world.community.id}/alarms", headers=guard_h
        )
        assert {a["kind"] for a in r.json()["items"]} == {"fence", "forced_open"}
        # Staff hear of it: the alarm's notification went out with it.
        for _ in range(250):
            r = await stack.client.get("/api/v1/notifications", headers=guard_h)
            alarms_seen = [n for n in r.json()["items"] if n["event_type"] == "security_alarm"]
            if len(alarms_seen) >= 2:
                break
            await asyncio.sleep(0.02)
        assert len(alarms_seen) == 2, r.text


async def test_http_push_terminal_is_served_by_the_same_bridge(stack: Stack) -> None:
    """A terminal that can only poll over HTTP gets the same decision and signed command."""
    import httpx

    from device_bridge.http_push import HttpDeviceLink
    from device_bridge.simulator.device import DeviceConfig, SimulatedDevice

    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    resident = await approved_resident(stack, world.rooms[0], admin_h)
    me = (await resident.get("/api/v1/me")).json()
    await AccessCard.create(community=world.community, resident_id=me["id"], card_no="H-7")
    gate = await register_device(
        stack, world.community.id, admin_h, kind="face_gate", transport="http_push"
    )
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stack.app), base_url="http://anxin.test"
    )
    link = HttpDeviceLink(
        "http://anxin.test", gate["device_uid"], gate["secret"], client=client, poll_wait_s=1.0
    )
    sim = SimulatedDevice(
        DeviceConfig(device_id=gate["device_uid"], secret=gate["secret"], kind="face_gate"),
        link=link,
    )
    await sim.start()
    try:
        await sim.swipe_card("H-7")
        opening = await sim.wait_opened(timeout=10)
        assert opening.reason == "resident"
        row = await _last_event(gate["id"], wait_s=10)
        assert (row.result.value, row.resident_id) == ("granted", me["id"])
    finally:
        await sim.stop()
        await client.aclose()


async def test_device_changes_reach_the_bridge_at_once(stack: Stack) -> None:
    """The bridge keeps device rows between events; staff changes must still apply now."""
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    resident = await approved_resident(stack, world.rooms[0], admin_h)
    me = (await resident.get("/api/v1/me")).json()
    await AccessCard.create(community=world.community, resident_id=me["id"], card_no="C-2001")
    gate = await register_device(stack, world.community.id, admin_h, kind="face_gate")
    url = f"/api/v1/staff/devices/{gate['id']}"

    async with simulator(stack, gate) as sim:
        await sim.swipe_card("C-2001")
        await sim.wait_opened()
        assert (await _last_event(gate["id"])).reason == "resident"

        r = await stack.client.patch(
            url, json={"methods": ["face", "qr", "remote"]}, headers=admin_h
        )
        assert r.status_code == 200
        await sim.swipe_card("C-2001")
        row = await _last_event(gate["id"], 2)
        assert (row.result.value, row.reason) == ("denied", "method_not_accepted")

        r = await stack.client.patch(url, json={"methods": ["face", "card"]}, headers=admin_h)
        assert r.status_code == 200
        r = await stack.client.post(f"{url}/status", json={"status": "disabled"}, headers=admin_h)
        assert r.status_code == 200
        if stack.backend == "sqlite":
            # The embedded broker cut the disabled device off and refuses its login.
            for _ in range(250):
                if not sim.link.connected.is_set():
                    break
                await asyncio.sleep(0.02)
            assert not sim.link.connected.is_set()
            await sim.swipe_card("C-2001")
            await asyncio.sleep(0.5)
            assert not sim.link.connected.is_set() and sim.outbox
        else:
            # The shared test Mosquitto is anonymous (the dynamic-security one is
            # tests/test_broker_security.py): the server refuses what still arrives.
            await sim.swipe_card("C-2001")
            row = await _last_event(gate["id"], 3)
            assert (row.result.value, row.reason) == ("denied", "device_disabled")
        assert len(sim.opened) == 1
