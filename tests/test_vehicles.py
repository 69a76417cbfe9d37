"""Plates at the barrier: registered cars and visitor passes in, everyone else out;
blocklisted plates raise an alarm."""

from __future__ import annotations

import pytest

from domain.passes.plates import is_valid_plate, normalize_plate
from models import Alarm, AlarmKind
from tests.devices import register_device, simulator
from tests.helpers import error_code
from tests.passes_helpers import create_pass, make_site, wait_events
from tests.stack import Stack


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        ("粤B12345", True),
        ("京A·8K3L9", True),
        ("沪ad12345", True),  # new-energy small car, lower case normalised
        ("粤B12345D", True),  # new-energy large vehicle
        ("苏E1234学", True),
        ("粤B1234", False),  # too short
        ("粤BI2345", False),  # I is never used
        ("XB12345", False),  # no province
        ("粤BD1234A", False),
        ("", False),
    ],
)
def test_plate_formats(raw: str, ok: bool) -> None:
    assert is_valid_plate(normalize_plate(raw)) is ok


async def test_registered_plate_and_visitor_plate_open_the_barrier_others_do_not(
    stack: Stack,
) -> None:
    site = await make_site(stack)
    room = site.world.rooms[0]
    r = await site.resident.post(
        f"/api/v1/households/{room.id}/vehicles", json={"plate": "粤b 12345"}
    )
    assert r.status_code == 201 and r.json()["plate"] == "粤B12345"
    r = await site.resident.post(f"/api/v1/households/{room.id}/vehicles", json={"plate": "粤B1"})
    assert r.status_code == 422 and error_code(r) == "plate_invalid"
    other = await make_site(stack)
    r = await other.resident.post(
        f"/api/v1/households/{room.id}/vehicles", json={"plate": "粤B54321"}
    )
    assert r.status_code == 404
    barrier = await register_device(
        stack, site.world.community.id, site.admin_h, kind="barrier_gate", name="车库入口"
    )
    p = await create_pass(site, plate="浙AD12345", max_uses=1)
    assert barrier["device_uid"] in p["doors"]
    guard_h = site.admin_h
    r = await stack.client.post(
        f"/api/v1/staff/communities/{site.world.community.id}/blocklist",
        json={"kind": "plate", "plate": "川A99999", "reason": "多次闯杆"},
        headers=guard_h,
    )
    assert r.status_code == 201, r.text
    async with simulator(stack, barrier) as gate:
        await gate.read_plate("粤B12345")
        await gate.wait_opened(1)
        await gate.read_plate("浙AD12345")  # the visitor's car, named on the pass
        await gate.wait_opened(2)
        await wait_events(barrier["id"], 2)
        for n, plate in enumerate(("浙AD12345", "鲁C77777", "川A99999"), start=3):
            await gate.read_plate(plate)  # pass used up, outside vehicle, blocklisted
            rows = await wait_events(barrier["id"], n)
    assert [(r.reason, r.result.value) for r in rows] == [
        ("registered_plate", "granted"),
        ("visitor_pass", "granted"),
        ("pass_used_up", "denied"),
        ("unknown_plate", "denied"),
        ("blocklisted_plate", "denied"),
    ]
    assert (
        rows[0].room_id == room.id and rows[1].pass_id == p["id"] and rows[1].plate == "浙AD12345"
    )
    assert len(gate.opened) == 2
    alarms = await Alarm.filter(community_id=site.world.community.id, kind=AlarmKind.BLOCKLIST)
    assert len(alarms) == 1 and alarms[0].details["plate"] == "川A99999"
    listed = await stack.client.get(
        f"/api/v1/staff/communities/{site.world.community.id}/blocklist", headers=guard_h
    )
    entry = listed.json()["items"][0]
    r = await stack.client.delete(f"/api/v1/staff/blocklist/{entry['id']}", headers=guard_h)
    assert r.status_code == 200 and r.json()["active"] is False
