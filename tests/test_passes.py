"""Visitor passes through the broker: the gate asks the server, or verifies offline."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from anxin.clock import clock, utcnow
from domain.passes import service as passes
from models import (
    Alarm,
    AlarmKind,
    AuditLog,
    PassRevocation,
    PassState,
    Resident,
    VisitorPass,
)
from tests.devices import register_device, simulator
from tests.helpers import approved_resident, error_code, new_resident
from tests.passes_helpers import create_pass, make_site, pass_key_pem, until, wait_events
from tests.stack import Stack


async def test_pass_opens_within_window_and_stops_at_its_limit(stack: Stack) -> None:
    site = await make_site(stack)
    p = await create_pass(site, visitor_name="王五", visitor_phone="13800001111", max_uses=2)
    assert p["doors"] == [site.gate["device_uid"]] and p["token_chars"] < 300
    async with simulator(stack, site.gate) as gate:  # no key: the gate asks the server
        await gate.scan_qr(p["token"])
        await gate.wait_opened(1)
        await gate.scan_qr(p["token"])
        await gate.wait_opened(2)
        await gate.scan_qr(p["token"])  # replayed beyond its uses
        rows = await wait_events(site.gate["id"], 3)
    assert [(r.result.value, r.reason) for r in rows] == [
        ("granted", "visitor_pass"),
        ("granted", "visitor_pass"),
        ("denied", "pass_used_up"),
    ]
    assert rows[0].pass_id == p["id"] and rows[0].room_id == site.world.rooms[0].id
    assert len(gate.opened) == 2
    row = await VisitorPass.get(id=p["id"])
    assert (row.uses, row.state) == (2, PassState.EXHAUSTED)


async def test_checks_read_together_each_get_their_own_pass(stack: Stack) -> None:
    """Gates checking passes at the same moment read them in one statement: each check
    gets its own copy (a use taken by one must not show in another's), and a pass asked
    for with another community is not found."""
    site = await make_site(stack)
    p = await create_pass(site, max_uses=3)
    cid = site.world.community.id
    a, b, other, gone = await asyncio.gather(
        passes._pass_row(p["id"], cid),  # noqa: SLF001
        passes._pass_row(p["id"], cid),  # noqa: SLF001
        passes._pass_row(p["id"], cid + 1),  # noqa: SLF001
        passes._pass_row(10**9, cid),  # noqa: SLF001
    )
    assert a is not None and b is not None and a is not b and other is None and gone is None
    assert a.doors == b.doors == [site.gate["device_uid"]] and a.doors is not b.doors
    assert a.device_uses == b.device_uses == {} and a.device_uses is not b.device_uses
    a.uses += 1
    assert b.uses == 0 and (a.id, a.community_id, a.max_uses) == (p["id"], cid, 3)
    assert a.valid_until == (await VisitorPass.get(id=p["id"])).valid_until


async def test_a_new_pass_is_written_with_its_audit_record(stack: Stack) -> None:
    """The pass and its audit row are one write: both there, the row naming the pass."""
    site = await make_site(stack)
    out = await create_pass(site, visitor_name="李四", max_uses=3)
    p = await VisitorPass.get(id=out["id"])
    assert (p.visitor_name, p.max_uses, p.uses, p.state, p.created_by_id) == (
        "李四",
        3,
        0,
        PassState.ACTIVE,
        site.resident_id,
    )
    assert p.doors == [site.gate["device_uid"]] and p.share_token
    [entry] = await AuditLog.filter(action="pass.create", target_id=str(p.id))
    assert (entry.actor_type, entry.actor_id, entry.target_type) == (
        "resident",
        site.resident_id,
        "pass",
    )
    assert entry.community_id == p.community_id
    assert entry.details == {"kind": "visitor", "uses": 3, "doors": p.doors}


async def test_expired_not_yet_valid_wrong_door_forged_and_other_community_fail(
    stack: Stack,
) -> None:
    site = await make_site(stack)
    unit_door = await register_device(
        stack,
        site.world.community.id,
        site.admin_h,
        kind="unit_door",
        unit_id=site.world.units[1].id,  # not the resident's unit
    )
    p = await create_pass(site, max_uses=5)
    later = await create_pass(
        site,
        valid_from=(utcnow() + timedelta(hours=2)).isoformat(),
        valid_until=(utcnow() + timedelta(hours=3)).isoformat(),
    )
    # Same claims, signed by a key that is not the community's.
    claims = jwt.decode(p["token"], options={"verify_signature": False})
    forged = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    # A real pass of another community.
    other = await make_site(stack)
    foreign = await create_pass(other)

    async with simulator(stack, site.gate) as gate, simulator(stack, unit_door) as door:
        for token in (forged, foreign["token"], later["token"]):
            await gate.scan_qr(token)
        await door.scan_qr(p["token"])
        await wait_events(site.gate["id"], 3)  # decided before the clock moves
        clock.advance(25 * 3600)
        await gate.scan_qr(p["token"])
        rows = await wait_events(site.gate["id"], 4)
        door_rows = await wait_events(unit_door["id"], 1)
    # (the first three were scanned within a millisecond: their order is not defined)
    assert sorted(r.reason for r in rows[:3]) == [
        "pass_forged",
        "pass_not_yet_valid",
        "pass_other_community",
    ]
    assert rows[3].reason == "pass_expired" and rows[3].pass_id == p["id"]
    assert all(r.pass_id is None for r in rows[:3] if r.reason != "pass_not_yet_valid")
    assert all(r.result.value == "denied" for r in [*rows, *door_rows])
    assert door_rows[0].reason == "pass_wrong_door"
    assert not gate.opened and not door.opened


async def test_revoked_pass_fails_and_reaches_an_offline_gate_on_reconnect(stack: Stack) -> None:
    site = await make_site(stack)
    key = await pass_key_pem(stack, site.world.community.id)
    p = await create_pass(site, max_uses=3)
    cfg = {"pass_public_key": key, "community_id": str(site.world.community.id)}
    async with simulator(stack, site.gate, **cfg) as gate:
        _, verdict = await gate.scan_qr(p["token"])  # verified on the gate, offline-capable
        assert verdict is not None and verdict.ok
        await gate.wait_opened(1)
        gate.go_offline()
        r = await site.resident.post(f"/api/v1/passes/{p['id']}/revoke")
        assert r.status_code == 200 and r.json()["state"] == "revoked"
        # Offline: the gate still lets the captured QR in by itself...
        await gate.go_online()
        # ...but on reconnect it is told, and a replay fails with a clear reason.
        await until(lambda: _revoked_on(gate, p["id"]))
        await until(
            lambda: PassRevocation.filter(
                visitor_pass_id=p["id"], acked_at__not_isnull=True
            ).exists()
        )
        _, verdict = await gate.scan_qr(p["token"])
        assert verdict is not None and verdict.reason == "revoked"
        rows = await wait_events(site.gate["id"], 2)
    assert [(r.result.value, r.reason) for r in rows] == [
        ("granted", "visitor_pass"),
        ("denied", "pass_revoked"),
    ]
    # A gate that asks the server is refused too.
    async with simulator(stack, site.gate) as gate:
        await gate.scan_qr(p["token"])
        rows = await wait_events(site.gate["id"], 3)
    assert rows[-1].reason == "pass_revoked" and not gate.opened


async def _revoked_on(gate, pass_id: int) -> bool:  # type: ignore[no-untyped-def]
    return gate.passes is not None and str(pass_id) in gate.passes.revoked


async def test_offline_gates_reconcile_and_overuse_raises_an_alarm(stack: Stack) -> None:
    site = await make_site(stack)
    second = await register_device(
        stack,
        site.world.community.id,
        site.admin_h,
        kind="face_gate",
        name="南门",
        methods=["face", "card", "qr", "remote"],
    )
    key = await pass_key_pem(stack, site.world.community.id)
    p = await create_pass(site, max_uses=1, door_ids=[site.gate["id"], second["id"]])
    cfg = {"pass_public_key": key, "community_id": str(site.world.community.id)}
    async with simulator(stack, site.gate, **cfg) as a, simulator(stack, second, **cfg) as b:
        a.go_offline()
        b.go_offline()
        assert (await a.scan_qr(p["token"]))[1].ok
        _, replay = await a.scan_qr(p["token"])  # same gate: its own counter stops it
        assert replay is not None and replay.reason == "used_up"
        assert (await b.scan_qr(p["token"]))[1].ok  # another gate cannot know: opens
        await a.go_online()
        await b.go_online()
        await a.flush()
        await b.flush()
        rows_a = await wait_events(site.gate["id"], 2)
        rows_b = await wait_events(second["id"], 1)
        await until(
            lambda: Alarm.filter(
                community_id=site.world.community.id, kind=AlarmKind.PASS_OVERUSED
            ).exists()
        )
    assert [(r.result.value, r.reason) for r in rows_a] == [
        ("granted", "visitor_pass"),
        ("denied", "pass_used_up"),
    ]
    assert (rows_b[0].result.value, rows_b[0].pass_id) == ("granted", p["id"])
    row = await VisitorPass.get(id=p["id"])
    assert row.uses == 2 and row.state == PassState.EXHAUSTED
    assert row.device_uses == {site.gate["device_uid"]: 1, second["device_uid"]: 1}


async def test_delivery_pass_window_uses_and_rider_photo(stack: Stack) -> None:
    site = await make_site(stack)
    r = await site.resident.post(
        "/api/v1/passes",
        json={"kind": "delivery", "valid_until": (utcnow() + timedelta(hours=3)).isoformat()},
    )
    assert r.status_code == 422 and error_code(r) == "pass_too_long"
    p = await create_pass(site, kind="delivery")
    assert p["max_uses"] == 3
    photo = b"\xff\xd8\xff\xe0rider-photo\xff\xd9"
    async with simulator(stack, site.gate) as gate:
        await gate.scan_qr(p["token"], image=photo)
        await gate.wait_opened(1)
        # The door opened; its ack reaches the server a moment later. The clock jumps only
        # once the row is written, or the server would judge the ack past its command's
        # expiry (a jump of 31 minutes within milliseconds happens only in tests).
        await wait_events(site.gate["id"], 1)
        clock.advance(31 * 60)  # default window: 30 minutes
        await gate.scan_qr(p["token"])
        rows = await wait_events(site.gate["id"], 2)
    assert [(r.reason, r.result.value) for r in rows] == [
        ("delivery_pass", "granted"),
        ("pass_expired", "denied"),
    ]
    from domain.access.snapshots import snapshot_store

    assert snapshot_store(stack.settings).load(rows[0].snapshot_ref) == photo


async def test_other_community_resident_cannot_make_a_pass_for_this_gate(stack: Stack) -> None:
    site = await make_site(stack)
    other = await make_site(stack)
    r = await other.resident.post("/api/v1/passes", json={"door_ids": [site.gate["id"]]})
    assert r.status_code == 404
    newcomer = await new_resident(stack)
    r = await newcomer.post("/api/v1/passes", json={})
    assert r.status_code == 403


async def test_household_members_see_and_revoke_the_households_passes(stack: Stack) -> None:
    site = await make_site(stack)
    home, next_door = site.world.rooms[0], site.world.rooms[1]
    partner = await approved_resident(stack, home, site.admin_h, role="family")
    neighbour = await approved_resident(stack, next_door, site.admin_h)
    applicant = await new_resident(stack)  # asked to join the household, not approved yet
    assert (await applicant.join(home.id, "tenant")).status_code == 201
    mine = await create_pass(site, visitor_name="张三")
    r = await partner.post("/api/v1/passes", json={"visitor_name": "李四"})
    assert r.status_code == 201, r.text
    theirs = r.json()
    r = await neighbour.post("/api/v1/passes", json={"visitor_name": "王五"})
    assert r.status_code == 201, r.text
    other = r.json()

    # Both members of the household see both of its passes, and nothing of next door's.
    for app in (site.resident, partner):
        listed = (await app.get("/api/v1/passes")).json()["items"]
        assert {p["id"] for p in listed} == {mine["id"], theirs["id"]}
    r = await partner.get(f"/api/v1/passes/{mine['id']}")
    assert r.status_code == 200 and r.json()["token"] == mine["token"]
    assert (await partner.get(f"/api/v1/passes/{mine['id']}/qr")).status_code == 200

    # Another household, or a member not yet approved: the pass does not exist for them.
    for outsider in (neighbour, applicant):
        listed = (await outsider.get("/api/v1/passes")).json()["items"]
        assert mine["id"] not in {p["id"] for p in listed}
        for path in ("", "/qr"):
            r = await outsider.get(f"/api/v1/passes/{mine['id']}{path}")
            assert (r.status_code, error_code(r)) == (404, "not_found"), path
        r = await outsider.post(f"/api/v1/passes/{mine['id']}/revoke")
        assert r.status_code == 404
    r = await site.resident.get(f"/api/v1/passes/{other['id']}")
    assert r.status_code == 404
    assert (await VisitorPass.get(id=mine["id"])).state == PassState.ACTIVE

    # A member may cancel a pass another member made.
    r = await partner.post(f"/api/v1/passes/{mine['id']}/revoke")
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    row = await VisitorPass.get(id=mine["id"])
    assert row.state == PassState.REVOKED and row.revoked_by == f"resident:{await _id(partner)}"


async def _id(app) -> int:  # type: ignore[no-untyped-def]
    return (await Resident.get(openid=app.openid)).id


async def test_share_link_qr_and_public_key(stack: Stack) -> None:
    site = await make_site(stack)
    p = await create_pass(site, visitor_name="李四", visitor_phone="13900002222")
    page = await stack.client.get(p["share_url"])
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    html = page.text
    assert "访客通行证" in html and "Visitor pass" in html and "<svg" in html
    assert "+08:00" not in html and "Asia/Shanghai" in html
    for secret in ("13900002222", "李四", "1栋", "1单元"):
        assert secret not in html.split("<svg")[0] + html.split("</svg>")[-1]
    assert (await stack.client.get("/p/not-a-real-token")).status_code == 404
    png = await site.resident.get(f"/api/v1/passes/{p['id']}/qr")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    svg = await site.resident.get(f"/api/v1/passes/{p['id']}/qr", params={"format": "svg"})
    assert svg.content.lstrip().startswith(b"<svg")
    # The token verifies with the published key, offline.
    key = await pass_key_pem(stack, site.world.community.id)
    from device_bridge.simulator.passes import PassVerifier

    verdict = PassVerifier(key, str(site.world.community.id), site.gate["device_uid"]).check(
        p["token"]
    )
    assert verdict.ok and verdict.claims["uses"] == 1
    # Cancelled: the page says so and shows no QR.
    await site.resident.post(f"/api/v1/passes/{p['id']}/revoke")
    page = await stack.client.get(p["share_url"])
    assert "已作废" in page.text and "<svg" not in page.text


async def test_pass_key_rotation(stack: Stack) -> None:
    """New passes are signed with the new key; gates accept both until the old passes
    expire; a gate checking passes by itself gets the new key, an offline one on return."""
    site = await make_site(stack)
    cid = site.world.community.id
    pem = await pass_key_pem(stack, cid)
    cfg = {"pass_public_key": pem, "community_id": str(cid)}
    away = await register_device(
        stack, cid, site.admin_h, kind="face_gate", name="西门", methods=["card", "qr"]
    )
    old = await create_pass(site, max_uses=5)
    async with (
        simulator(stack, site.gate, **cfg) as off,
        simulator(stack, away, **cfg) as off2,
    ):
        off2.go_offline()
        await until(lambda: _offline(away["id"]))
        r = await stack.client.post(
            f"/api/v1/staff/communities/{cid}/pass-key/rotate", headers=site.admin_h
        )
        assert r.status_code == 200, r.text
        kid = r.json()["kid"]
        assert {k["kid"] for k in r.json()["keys"]} == {"", kid}
        new = await create_pass(site, max_uses=5)
        assert jwt.get_unverified_header(new["token"])["kid"] == kid
        # The old pass keeps its token (a QR already shared stays valid).
        again = (await site.resident.get(f"/api/v1/passes/{old['id']}")).json()
        assert again["token"] == old["token"]
        await until(lambda: _has_keys(off, kid))
        for token in (old["token"], new["token"]):
            _, verdict = await off.scan_qr(token)
            assert verdict is not None and verdict.ok, verdict
        await off2.go_online()
        await until(lambda: _has_keys(off2, kid))
        _, verdict = await off2.scan_qr(new["token"])
        assert verdict is not None and verdict.ok, verdict
        # A forged token naming the new kid fails everywhere.
        claims = jwt.decode(new["token"], options={"verify_signature": False})
        forged = jwt.encode(
            claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}
        )
        _, verdict = await off.scan_qr(forged)
        assert verdict is not None and verdict.reason == "bad_signature"
    async with simulator(stack, site.gate) as gate:  # asks the server: both keys accepted
        await gate.scan_qr(old["token"])
        await gate.scan_qr(new["token"])
        await gate.scan_qr(forged)
        rows = await wait_events(site.gate["id"], 6)
    assert sorted(r.reason for r in rows[-3:]) == ["pass_forged", "visitor_pass", "visitor_pass"]
    # Once the old passes have expired, gates are told to forget the old key.
    clock.advance(25 * 3600)
    keys = (await stack.client.get(f"/api/v1/communities/{cid}/pass-key")).json()["keys"]
    assert [k["kid"] for k in keys] == [kid]
    # The server no longer accepts it either, though it verified the old token before
    # (its signature cache answers only for keys still accepted): forged, not expired.
    from domain.passes.service import check_at_gate
    from models import Device

    decision, _ = await check_at_gate(
        stack.runtime, await Device.get(id=site.gate["id"]), old["token"]
    )
    assert decision.reason == "pass_forged"


async def _has_keys(sim, kid: str) -> bool:  # noqa: ANN001
    return sim.passes is not None and kid in sim.passes.keys and "" in sim.passes.keys


async def _offline(device_id: int) -> bool:
    from models import Device

    return not (await Device.get(id=device_id)).online
