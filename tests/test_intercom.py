"""Intercom calls answered in the mini-program, and household door codes at a panel."""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest
from websockets.asyncio.client import connect

from anxin.clock import clock
from api.visitors.intercom_realtime import INTERCOM_REALTIME, IntercomRealtime
from domain.visitors import codes, intercom, rooms
from models import (
    AccessEvent,
    Alarm,
    AlarmKind,
    CallState,
    Device,
    IntercomCallRecord,
    Membership,
    MembershipState,
    Resident,
)
from tests.devices import register_device, simulator
from tests.helpers import approved_resident, error_code, make_world
from tests.passes_helpers import make_site, until, wait_events
from tests.stack import Stack
from tests.test_notifications_realtime import recv, served


async def _ringing(device_id: int, count: int = 1) -> list[IntercomCallRecord]:
    calls: list[IntercomCallRecord] = []

    async def enough() -> bool:
        nonlocal calls
        calls = await IntercomCallRecord.filter(device_id=device_id).order_by("id")
        return len(calls) >= count

    await until(enough)
    return calls


async def _panel(stack: Stack, site, **kw):  # type: ignore[no-untyped-def]
    return await register_device(
        stack, site.world.community.id, site.admin_h, kind="intercom_panel", **kw
    )


async def test_accepted_call_opens_and_a_second_accept_is_409(stack: Stack) -> None:
    site = await make_site(stack)
    spouse = await approved_resident(stack, site.world.rooms[0], site.admin_h, role="family")
    panel = await _panel(stack, site, unit_id=site.world.units[0].id)
    async with simulator(stack, panel) as sim:
        await sim.call_room("101")  # a unit panel: the room number alone
        call = (await _ringing(panel["id"]))[0]
        assert call.room_id == site.world.rooms[0].id and call.state == CallState.RINGING
        listed = (await spouse.get("/api/v1/intercom/calls")).json()["items"]
        assert [c["id"] for c in listed] == [call.id] and listed[0]["room"] == "1栋1单元101"
        r = await site.resident.post(f"/api/v1/intercom/calls/{call.id}/accept")
        assert r.status_code == 200, r.text
        await sim.wait_opened(1)
        r2 = await spouse.post(f"/api/v1/intercom/calls/{call.id}/accept")
        assert r2.status_code == 409 and error_code(r2) == "call_already_answered"
    row = await AccessEvent.get(id=r.json()["event_id"])
    assert (row.method.value, row.result.value, row.reason, row.requested_by_id) == (
        "intercom",
        "granted",
        "intercom_answered",
        site.resident_id,
    )
    assert len(sim.opened) == 1


async def test_declined_and_unanswered_calls_do_not_open(stack: Stack) -> None:
    site = await make_site(stack)
    gate_panel = await _panel(stack, site)  # main gate: building-unit-room
    other = await make_site(stack)
    async with simulator(stack, gate_panel) as sim:
        await sim.call_room("1-1-101")
        call = (await _ringing(gate_panel["id"]))[0]
        r = await other.resident.post(f"/api/v1/intercom/calls/{call.id}/decline")
        assert r.status_code == 404  # not their household
        r = await site.resident.post(f"/api/v1/intercom/calls/{call.id}/decline")
        assert r.status_code == 200 and r.json()["state"] == "declined"

        await sim.call_room("1栋1单元101")
        second = (await _ringing(gate_panel["id"], 2))[1]
        assert second.room_id == site.world.rooms[0].id
        clock.advance(intercom.RING_S + 1)
        # Other tests' calls may ring in the same database: count ours by its state.
        assert await intercom.expire_calls(stack.runtime) >= 1
        assert (await IntercomCallRecord.get(id=second.id)).state.value == "missed"
        r = await site.resident.post(f"/api/v1/intercom/calls/{second.id}/accept")
        assert r.status_code == 409 and error_code(r) == "call_ended"

        await sim.call_room("9-9-909")  # no such room
        rows = await wait_events(gate_panel["id"], 3)
    assert sorted(r.reason for r in rows) == [
        "intercom_declined",
        "intercom_missed",
        "unknown_room",
    ]
    assert all(r.result.value == "denied" for r in rows)
    assert not sim.opened


async def test_a_keyed_room_is_found_in_every_written_form_the_panel_serves(
    stack: Stack,
) -> None:
    """docs/passes.md's room addresses, each at the panels that serve the room: the room,
    its label and its approved members (pending ones do not ring)."""
    world = await make_world(buildings=2, units=2, rooms_per_unit=1)
    b2u1 = next(r for r in world.rooms if r.building_id == world.buildings[1].id)
    owner = await Resident.create(openid=f"o-{secrets.token_hex(6)}")
    family = await Resident.create(openid=f"o-{secrets.token_hex(6)}")
    pending = await Resident.create(openid=f"o-{secrets.token_hex(6)}")
    for who, state in (
        (family, MembershipState.APPROVED),
        (owner, MembershipState.APPROVED),
        (pending, MembershipState.PENDING),
    ):
        await Membership.create(
            resident=who, room=b2u1, community=world.community, role="family", state=state
        )
    cid = world.community.id
    gate = Device(community_id=cid, building_id=None, unit_id=None)
    building = Device(community_id=cid, building_id=b2u1.building_id, unit_id=None)
    unit = Device(community_id=cid, building_id=b2u1.building_id, unit_id=b2u1.unit_id)
    other_unit = next(
        u for u in world.units if u.building_id == b2u1.building_id and u.id != b2u1.unit_id
    )
    for device, text in (
        (gate, "2-1-101"),
        (gate, "2#1#101"),
        (gate, " 2*1*101 "),
        (gate, "2栋1单元101"),
        (gate, "2栋-1单元-101"),
        (building, "1-101"),
        (unit, "101"),
    ):
        found = await rooms.find_room(device, text)
        assert found is not None, text
        assert (found.room.id, found.label) == (b2u1.id, "2栋1单元101"), text
        assert found.members == sorted([owner.id, family.id]), text
        assert (await rooms.resolve_room(device, text)).id == b2u1.id  # type: ignore[union-attr]
    elsewhere = Device(community_id=cid, building_id=b2u1.building_id, unit_id=other_unit.id)
    another = await make_world(buildings=2, units=1, rooms_per_unit=1)
    for device, text in (
        (elsewhere, "101"),  # its own unit's 101 is another room
        (Device(community_id=cid, building_id=world.buildings[0].id, unit_id=None), "1-101"),
        (Device(community_id=another.community.id, building_id=None, unit_id=None), "9-1-101"),
        (gate, "3-1-101"),
        (gate, "2-1-999"),
        (gate, "101"),  # a gate needs the building and the unit
        (gate, ""),
    ):
        found = await rooms.find_room(device, text)
        assert found is None or found.room.id != b2u1.id, text
    assert (await rooms.find_room(elsewhere, "101")).room.unit_id == other_unit.id  # type: ignore[union-attr]
    alone = await rooms.find_room(gate, "1-1-101")
    assert alone is not None and alone.members == [] and alone.label == "1栋1单元101"


async def test_household_code_opens_and_guessing_is_locked_out(stack: Stack) -> None:
    site = await make_site(stack)
    room = site.world.rooms[0]
    for trivial in ("123456", "000000", "121212", "987654", "12345"):
        r = await stack.client.put(
            f"/api/v1/households/{room.id}/door-code",
            json={"code": trivial},
            headers=site.resident.headers,
        )
        assert r.status_code == 422, trivial
    r = await stack.client.put(
        f"/api/v1/households/{room.id}/door-code",
        json={"code": "604917"},
        headers=site.resident.headers,
    )
    assert r.status_code == 200, r.text
    panel = await _panel(stack, site, unit_id=site.world.units[0].id)
    async with simulator(stack, panel) as sim:
        await sim.enter_code("101", "604917")
        await sim.wait_opened(1)
        for n in range(codes.LOCK_AFTER):
            # One try at a time, as a person keys them: tries handled at once may see the
            # panel's and the room's counters lock on different tries (each try alarms
            # on the scope it locked; the burst's one alarm then names only one of them).
            await sim.enter_code("101", f"11122{n}")
            await wait_events(panel["id"], 2 + n)
        await sim.enter_code("101", "604917")  # right code, but locked now
        rows = await wait_events(panel["id"], 2 + codes.LOCK_AFTER)
    assert [r.reason for r in rows] == (
        ["household_code"] + ["code_wrong"] * codes.LOCK_AFTER + ["code_locked"]
    )
    assert rows[0].room_id == room.id and len(sim.opened) == 1
    # Codes leave the panel sealed to the server: neither the broker nor a tap reads them.
    codes_sent = [e for e in sim.sent if e["type"] == "code_entry"]
    assert codes_sent and all("code" not in e and e["code_sealed"] for e in codes_sent)
    assert "604917" not in json.dumps(sim.sent) and "11122" not in json.dumps(sim.sent)
    alarms = await Alarm.filter(community_id=site.world.community.id, kind=AlarmKind.CODE_GUESSING)
    assert len(alarms) == 1  # one burst, one alarm: it locked the panel and the room
    assert sorted(alarms[0].details["locked"]) == ["panel", "room"]
    assert all("604917" not in str(a.details) and "11122" not in str(a.details) for a in alarms)
    # The lockout lasts the window, then the household's code works again.
    clock.advance(codes.LOCK_WINDOW_S + 1)
    if stack.backend == "sqlite":  # memory counters follow the service clock; Redis keeps its own
        decision = await codes.try_code(
            stack.runtime, await Device.get(id=panel["id"]), "101", "604917"
        )
        assert decision.granted


async def test_a_burst_from_two_panels_against_one_room_raises_one_alarm(stack: Stack) -> None:
    site = await make_site(stack)
    room = site.world.rooms[0]
    r = await stack.client.put(
        f"/api/v1/households/{room.id}/door-code",
        json={"code": "604917"},
        headers=site.resident.headers,
    )
    assert r.status_code == 200, r.text
    panels = [
        await Device.get(id=(await _panel(stack, site, unit_id=site.world.units[0].id))["id"])
        for _ in range(2)
    ]
    reasons = []
    for n in range(codes.LOCK_AFTER + 2):
        d = await codes.try_code(stack.runtime, panels[n % 2], "101", f"33344{n}")
        reasons.append(d.reason)
    assert reasons == ["code_wrong"] * codes.LOCK_AFTER + ["code_locked"] * 2
    alarms = await Alarm.filter(community_id=site.world.community.id, kind=AlarmKind.CODE_GUESSING)
    assert len(alarms) == 1 and alarms[0].details["locked"] == ["room"]


def test_trivial_codes() -> None:
    for code in ("111111", "123456", "234567", "876543", "121212", "123123", "12341234", "520520"):
        assert codes.is_trivial(code), code
    for code in ("604917", "385027", "91827364"):
        assert not codes.is_trivial(code), code


async def test_resident_answers_over_the_realtime_socket_and_the_panel_opens(
    stack: Stack,
) -> None:
    site = await make_site(stack)
    spouse = await approved_resident(stack, site.world.rooms[0], site.admin_h, role="family")
    neighbour = await approved_resident(stack, site.world.rooms[1], site.admin_h)
    panel = await _panel(stack, site, unit_id=site.world.units[0].id)
    # A second worker hears every inbound message too: only one of the two may act.
    second = IntercomRealtime(stack.runtime)
    await second.start()
    first: IntercomRealtime = stack.runtime.get(INTERCOM_REALTIME)
    heard_before = first.stats["heard"]
    try:
        async with (
            served(stack.app) as url,
            connect(f"{url}?token={site.resident.access_token}") as me,
            connect(f"{url}?token={spouse.access_token}") as partner,
            connect(f"{url}?token={neighbour.access_token}") as next_door,
            simulator(stack, panel) as sim,
        ):
            for ws in (me, partner, next_door):
                await recv(ws, "hello")
            await asyncio.sleep(0.1)  # the second subscriber's Redis subscription
            await sim.call_room("101")
            call_id = (await recv(me, "intercom.call"))["data"]["id"]
            assert (await recv(partner, "intercom.call"))["data"]["id"] == call_id

            # Another household's member: the call does not exist for them.
            await _send(next_door, "intercom.accept", call_id)
            res = await recv(next_door, "intercom.accept.result")
            assert (res["ok"], res["error"]["code"], res["error"]["status"]) == (
                False,
                "not_found",
                404,
            )

            await _send(me, "intercom.accept", call_id, id="req-1")
            res = await recv(me, "intercom.accept.result")
            assert res["ok"] is True, res
            assert (res["call_id"], res["reply_to"]) == (call_id, "req-1")
            assert res["data"]["opened"] is True and res["data"]["state"] == "accepted"
            opening = await sim.wait_opened(1)
            assert opening.reason == "intercom_answered"

            # The other member is told it ended; their late accept is a clear 409.
            assert (await recv(partner, "intercom.ended"))["data"]["id"] == call_id
            await _send(partner, "intercom.decline", call_id)
            res = await recv(partner, "intercom.decline.result")
            assert (res["ok"], res["error"]["code"]) == (False, "call_already_answered")

            # One answer only, whichever worker claimed it; no error from the other.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await recv(me, "intercom.accept.result")
    finally:
        await second.stop()
    assert len(sim.opened) == 1
    assert first.stats["heard"] - heard_before == second.stats["heard"] == 3
    rows = await AccessEvent.filter(device_id=panel["id"], method="intercom")
    assert [(r.result.value, r.requested_by_id) for r in rows] == [("granted", site.resident_id)]
    call = await IntercomCallRecord.get(id=call_id)
    assert (call.state, call.answered_by_id) == (CallState.ACCEPTED, site.resident_id)


async def _send(ws, type_: str, call_id: int, **extra: object) -> None:  # type: ignore[no-untyped-def]
    await ws.send(json.dumps({"type": type_, "call_id": call_id, **extra}))
