"""Pass windows from a date picker (no offset, or a bare date) are read in the community's
zone; a pass in a community with many gates still fits a scannable QR and still verifies
offline."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from anxin.clock import clock
from device_bridge.simulator.passes import PassVerifier
from domain.passes.tokens import GATES, TOKEN_MAX_DOORS, check_token
from models import Device, DeviceKind, VisitorPass
from tests.passes_helpers import make_site, pass_key_pem
from tests.stack import Stack

SHANGHAI = ZoneInfo("Asia/Shanghai")


async def test_times_without_offset_and_bare_dates_are_local(stack: Stack) -> None:
    site = await make_site(stack)
    tomorrow = (datetime.now(SHANGHAI) + timedelta(days=1)).date()
    r = await site.resident.post(
        "/api/v1/passes",
        json={"valid_from": f"{tomorrow}T10:00", "valid_until": str(tomorrow)},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["valid_from"] == f"{tomorrow}T10:00:00+08:00"  # 10:00 in Shanghai, not UTC
    assert body["valid_until"] == f"{tomorrow}T23:59:59+08:00"  # the whole day
    row = await VisitorPass.get(id=body["id"])
    assert row.valid_from == datetime.combine(tomorrow, datetime.min.time(), SHANGHAI).replace(
        hour=10
    ).astimezone(UTC)

    # "From today" is from now (not the midnight that has passed), until tomorrow's end.
    today = datetime.now(SHANGHAI).date()
    r = await site.resident.post(
        "/api/v1/passes", json={"valid_from": str(today), "valid_until": str(tomorrow)}
    )
    assert r.status_code == 201, r.text
    start = datetime.fromisoformat(r.json()["valid_from"])
    assert abs(start.timestamp() - clock.time()) < 120

    # An explicit offset is taken as given.
    r = await site.resident.post(
        "/api/v1/passes",
        json={"valid_from": f"{tomorrow}T10:00:00Z", "valid_until": f"{tomorrow}T12:00:00Z"},
    )
    assert r.status_code == 201 and r.json()["valid_from"] == f"{tomorrow}T18:00:00+08:00"

    for bad in ({"valid_until": "2020-01-01"}, {"valid_from": "2030-02-30"}):
        r = await site.resident.post("/api/v1/passes", json=bad)
        assert r.status_code == 422, r.text
    await site.resident.aclose()


async def test_many_gates_still_fit_a_qr_and_verify_offline(stack: Stack) -> None:
    site = await make_site(stack)
    cid = site.world.community.id
    for i in range(40):
        await Device.create(
            device_uid=f"gate-{i}-{secrets.token_hex(8)}",
            community_id=cid,
            kind=DeviceKind.FACE_GATE,
            name=f"{i}号门",
            methods=["qr", "face"],
        )
    unit_door = await Device.create(
        device_uid=f"unit-{secrets.token_hex(8)}",
        community_id=cid,
        kind=DeviceKind.UNIT_DOOR,
        name="1单元门",
        methods=["qr"],
        building_id=site.world.buildings[0].id,
        unit_id=site.world.units[0].id,
    )
    r = await site.resident.post("/api/v1/passes", json={"visitor_name": "访客"})
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["doors"] == [GATES]
    assert p["token_chars"] < 400  # one door's size, whatever the number of gates
    qr = await site.resident.get(f"/api/v1/passes/{p['id']}/qr")
    assert qr.status_code == 200 and qr.headers["content-type"] == "image/png"
    share = await stack.client.get(p["share_url"].split("anxin.test", 1)[-1])
    assert share.status_code == 200

    # Offline: a gate installed as one accepts it; a unit door does not.
    pem = await pass_key_pem(stack, cid)
    token = p["token"]
    gate = PassVerifier(pem, str(cid), site.gate["device_uid"], community_gate=True)
    assert gate.check(token).ok
    door = PassVerifier(pem, str(cid), unit_door.device_uid)
    assert door.check(token).reason == "wrong_door"
    # The server's check says the same.
    from domain.passes.service import PASSES

    key = await stack.runtime.get(PASSES).keys.get(cid)
    assert check_token(token, key.public, cid, "any-gate", clock.time(), community_gate=True).ok
    refused = check_token(token, key.public, cid, unit_door.device_uid, clock.time())
    assert refused.reason == "pass_wrong_door"

    # Naming more doors than a QR holds, other than all the gates: refused with a reason.
    some = await Device.filter(community_id=cid, kind=DeviceKind.FACE_GATE).limit(
        TOKEN_MAX_DOORS + 1
    )
    r = await site.resident.post(
        "/api/v1/passes", json={"door_ids": [d.id for d in some[:TOKEN_MAX_DOORS]]}
    )
    assert r.status_code == 201 and len(r.json()["doors"]) == TOKEN_MAX_DOORS
    r = await site.resident.post("/api/v1/passes", json={"door_ids": [d.id for d in some]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "pass_too_many_doors"
    await site.resident.aclose()
