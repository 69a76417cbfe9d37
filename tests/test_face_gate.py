"""Faces at the gate through the broker: central (server match) and edge (terminal library),
withdrawal, move-out with an offline terminal, retention, and the data export."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from anxin.clock import clock
from domain.access.policy import resident_may_enter
from domain.access.snapshots import snapshot_store
from domain.faces import service
from domain.faces.galleries import GALLERIES
from domain.faces.library import FACE_LIBRARY
from models import (
    AccessCard,
    AccessEvent,
    AccessMethod,
    Community,
    Device,
    FaceDelivery,
    FaceEnrollment,
    FaceStoragePolicy,
    StaffRoleName,
)
from tests.devices import register_device, simulator
from tests.face_data import photo_bytes
from tests.helpers import approved_resident, make_staff, make_world, staff_headers
from tests.stack import Stack
from tests.test_faces_support import V1, consent_all, embedding, enroll_and_approve, eventually


async def _events(device_id: int, count: int) -> list[AccessEvent]:
    async def enough() -> list[AccessEvent] | None:
        rows = await AccessEvent.filter(device_id=device_id).order_by("id")
        return rows if len(rows) >= count else None

    return await eventually(enough)


async def test_central_server_match_and_withdrawal(stack: Stack) -> None:
    world = await make_world()
    await Community.filter(id=world.community.id).update(
        face_storage_policy=FaceStoragePolicy.CENTRAL
    )
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    app = await approved_resident(stack, world.rooms[0], admin_h)
    me = (await app.get(f"{V1}/me")).json()["id"]
    cid = world.community.id
    gate = await register_device(stack, cid, admin_h, kind="face_gate")
    e = await enroll_and_approve(stack, app, cid, admin_h, "obama")
    row = await FaceEnrollment.get(id=e["id"])
    assert row.embedding_enc is not None and row.photo_enc is None  # central keeps it
    galleries = stack.runtime.get(GALLERIES)
    await eventually(lambda: galleries.gallery(cid))
    await eventually(lambda: _in_gallery(galleries, cid, row.person_id))

    async with simulator(stack, gate, match_mode="server") as sim:
        await sim.capture_face(embedding=embedding("obama2"))  # another photo of him
        opening = await sim.wait_opened()
        assert opening.person_id == row.person_id
        ev = (await _events(gate["id"], 1))[-1]
        assert (ev.result.value, ev.reason, ev.resident_id) == ("granted", "resident", me)
        assert ev.score and ev.score > 0.4

        await sim.capture_face(embedding=embedding("biden"))  # someone else: unknown
        ev = (await _events(gate["id"], 2))[-1]
        assert (ev.result.value, ev.reason) == ("denied", "unknown_person")

        consents = (await app.get(f"{V1}/me/face/consents")).json()["items"]
        gate_consent = next(c for c in consents if c["purpose"] == "gate_entry")
        r = await app.post(f"{V1}/me/face/consents/{gate_consent['id']}/withdraw")
        assert r.status_code == 200 and r.json()["withdrawn_at"]
        await eventually(lambda: not _in_gallery_sync(galleries, cid, row.person_id))
        await sim.capture_face(embedding=embedding("obama3"))
        ev = (await _events(gate["id"], 3))[-1]
        assert (ev.result.value, ev.reason) == ("denied", "unknown_person")
        assert len(sim.opened) == 1
    row = await FaceEnrollment.get(id=e["id"])
    assert row.state.value == "removed" and row.embedding_enc is None
    # Without consent there is no new enrollment either.
    from tests.test_faces_support import upload

    r = await upload(app, cid, photo_bytes("obama"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "consent_missing"
    await app.aclose()


async def _in_gallery(galleries, cid: int, person_id: str) -> bool:  # noqa: ANN001
    return person_id in (await galleries.gallery(cid))


def _in_gallery_sync(galleries, cid: int, person_id: str) -> bool:  # noqa: ANN001
    return person_id in galleries._galleries.get(cid, {})  # noqa: SLF001


async def test_edge_terminal_library_move_out_while_offline(stack: Stack) -> None:
    world = await make_world()
    cid = world.community.id
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    app = await approved_resident(stack, world.rooms[0], admin_h)
    me = (await app.get(f"{V1}/me")).json()["id"]
    gate = await register_device(stack, cid, admin_h, kind="face_gate", name="北门")
    door = await register_device(
        stack, cid, admin_h, kind="unit_door", unit_id=world.units[0].id, name="1单元"
    )
    sync = stack.runtime.get(FACE_LIBRARY)
    async with simulator(stack, gate) as g, simulator(stack, door) as d:
        await eventually(lambda: g.library_synced.is_set() and d.library_synced.is_set())
        e = await enroll_and_approve(stack, app, cid, admin_h, "obama")
        pid = f"f{e['id']}"
        await eventually(lambda: pid in g.library and pid in d.library)
        await sync.idle(cid)
        # The template reached each terminal sealed to it: the broker saw no embedding.
        for term in (g, d):
            syncs = [raw for raw in term.received if b'"library_sync"' in raw]
            assert any(b'"sealed"' in raw for raw in syncs)
            assert not any(b'"embedding"' in raw for raw in syncs)

        # Every terminal acknowledged: the server keeps no usable copy, only the record.
        row = await FaceEnrollment.get(id=e["id"])
        assert row.embedding_enc is None and row.photo_enc is None
        deliveries = await FaceDelivery.filter(enrollment_id=row.id, op="add")
        assert {x.device_id for x in deliveries} == {gate["id"], door["id"]}
        assert {x.state.value for x in deliveries} == {"acked"}
        view = (
            await stack.client.get(f"{V1}/staff/communities/{cid}/face-library", headers=admin_h)
        ).json()
        assert {(x["intended_version"], x["acked_version"]) for x in view["devices"]} == {(1, 1)}

        # ... and the gate still recognises the resident from its own library.
        await g.capture_face(embedding=embedding("obama2"))
        opening = await g.wait_opened()
        assert opening.person_id == pid
        ev = (await _events(gate["id"], 1))[-1]
        assert (ev.result.value, ev.resident_id) == ("granted", me)
        await g.capture_face(embedding=embedding("person_b_1"))
        ev = (await _events(gate["id"], 2))[-1]
        assert (ev.result.value, ev.reason) == ("denied", "unknown_person")

        # The unit door is offline while the resident moves out.
        d.go_offline()
        await eventually(lambda: _offline(door["id"]))
        membership = (await app.get(f"{V1}/me/memberships")).json()["items"][0]
        r = await stack.client.post(
            f"{V1}/staff/memberships/{membership['id']}/end",
            json={"reason": "搬离"},
            headers=admin_h,
        )
        assert r.status_code == 200
        await eventually(lambda: _purge_scheduled(row.id))
        assert pid in g.library  # the grace period has not passed yet
        clock.advance(
            timedelta(days=stack.settings.face_move_out_grace_days, hours=1).total_seconds()
        )
        # Other tests' moved-out faces may fall due in the same shared database too.
        assert row.id in await service.purge_moved_out(stack.runtime)
        await eventually(lambda: pid not in g.library)
        assert pid in d.library  # still on the offline door's flash

        # On reconnect the removal arrives before the door matches anything.
        await d.go_online()
        await d.capture_face(embedding=embedding("obama2"))
        assert pid not in d.library
        await asyncio.sleep(0.3)
        assert not d.opened
        await sync.idle(cid)
        removes = await FaceDelivery.filter(enrollment_id=row.id, op="remove")
        assert {x.state.value for x in removes} == {"acked"} and len(removes) == 2
    admin = await make_staff(world.community, StaffRoleName.ADMIN)  # tokens aged with the clock
    report = (
        await stack.client.get(
            f"{V1}/staff/communities/{cid}/privacy/deletions",
            headers=await staff_headers(stack, admin),
        )
    ).json()
    assert "embedding.deleted:delivered_to_all_terminals" in report["summary"]
    assert "face.removed:moved_out" in report["summary"]
    await app.aclose()


async def _offline(device_id: int) -> bool:
    return not (await Device.get(id=device_id)).online


async def _purge_scheduled(enrollment_id: int) -> bool:
    return (await FaceEnrollment.get(id=enrollment_id)).purge_after is not None


async def test_no_face_keeps_every_other_way_in(stack: Stack) -> None:
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    app = await approved_resident(stack, world.rooms[0], admin_h)
    me = (await app.get(f"{V1}/me")).json()["id"]
    await AccessCard.create(community=world.community, resident_id=me, card_no="NF-1")
    gate = await register_device(
        stack, world.community.id, admin_h, kind="unit_door", unit_id=world.units[0].id
    )
    device = await Device.get(id=gate["id"])
    for method in (AccessMethod.CODE, AccessMethod.REMOTE, AccessMethod.CARD):
        assert (await resident_may_enter(device, me, method)).granted, method
    async with simulator(stack, gate) as sim:
        await sim.swipe_card("NF-1")
        assert (await sim.wait_opened()).reason == "resident"
    assert not await FaceEnrollment.filter(resident_id=me).exists()
    await app.aclose()


async def test_snapshot_retention_and_export(stack: Stack) -> None:
    world = await make_world()
    cid = world.community.id
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    alice = await approved_resident(stack, world.rooms[0], admin_h)
    bob = await approved_resident(stack, world.rooms[1], admin_h)
    alice_id = (await alice.get(f"{V1}/me")).json()["id"]
    bob_id = (await bob.get(f"{V1}/me")).json()["id"]
    await enroll_and_approve(stack, alice, cid, admin_h, "person_b_1")
    assert (await consent_all(bob, cid)).status_code == 201
    gate = await register_device(stack, cid, admin_h, kind="face_gate")
    async with simulator(stack, gate, match_mode="server") as sim:
        await sim.capture_face(embedding=embedding("biden"), image=b"\xff\xd8\xff fake jpeg")
        ev = (await _events(gate["id"], 1))[-1]
    assert ev.snapshot_ref.startswith("snap:")
    store = snapshot_store(stack.settings)
    assert store.load(ev.snapshot_ref) == b"\xff\xd8\xff fake jpeg"

    clock.advance((stack.settings.snapshot_retention_days - 1) * 86400)
    await service.purge_snapshots(stack.runtime)
    assert (await AccessEvent.get(id=ev.id)).snapshot_ref == ev.snapshot_ref
    clock.advance(2 * 86400)
    assert await service.purge_snapshots(stack.runtime) >= 1
    assert (await AccessEvent.get(id=ev.id)).snapshot_ref == ""
    clock.reset()
    report = (
        await stack.client.get(f"{V1}/staff/communities/{cid}/privacy/deletions", headers=admin_h)
    ).json()
    assert report["summary"].get("snapshot.deleted:retention", 0) >= 1

    r = await alice.get(f"{V1}/me/data-export")
    assert r.status_code == 200
    data = r.json()
    assert data["resident"]["id"] == alice_id
    assert data["memberships"] and all(m["room"] for m in data["memberships"])
    assert {c["purpose"] for c in data["face_consents"]} >= {"gate_entry", "terminal_storage"}
    assert [e["resident_id"] for e in data["face_enrollments"]] == [alice_id]
    assert data["face_processing_records"] and data["audit_entries"]
    text = json.dumps(data, ensure_ascii=False)
    assert "embedding_enc" not in text and "photo_enc" not in text
    for section, rows in data.items():
        if isinstance(rows, list):
            for row in rows:
                assert row.get("resident_id") in (None, alice_id), (section, row)
    bob_rows = json.dumps((await bob.get(f"{V1}/me/data-export")).json())
    assert str(bob_id) in bob_rows
    assert (await bob.get(f"{V1}/me/data-export")).json()["face_enrollments"] == []

    count = (await stack.client.get(f"{V1}/staff/privacy/face-count", headers=admin_h)).json()
    assert count["people_with_face_data"] >= 1 and count["warning"] is False
    stack.settings.face_count_warning_at = 1
    try:
        count = (await stack.client.get(f"{V1}/staff/privacy/face-count", headers=admin_h)).json()
        assert count["warning"] and count["message_zh"]
    finally:
        stack.settings.face_count_warning_at = 80_000
    await alice.aclose()
    await bob.aclose()
