"""Face enrollment as a new user would do it: consent, upload, refusals, staff review,
guardians, liveness, and bad input that stores nothing."""

from __future__ import annotations

import asyncio
import io
from datetime import date

import numpy as np
from PIL import Image

from anxin.clock import clock
from domain.faces.service import CHALLENGE_ACTIONS
from face_engine.imaging import encode_jpeg
from models import (
    EnrollmentState,
    FaceConsent,
    FaceEnrollment,
    FaceLibraryChange,
    FaceRecord,
    LibraryOp,
    Membership,
    MembershipRole,
    MembershipState,
    OutboxEvent,
    Resident,
    StaffRoleName,
)
from tests.face_data import act, photo_bytes
from tests.helpers import (
    approved_resident,
    error_code,
    make_staff,
    make_world,
    new_resident,
    staff_headers,
)
from tests.passes_helpers import until
from tests.stack import Stack
from tests.test_faces_support import (
    V1,
    consent_all,
    engine,
    enroll_and_approve,
    upload,
)


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (120, 120, 120)).save(buf, "PNG")
    return buf.getvalue()


def _bomb() -> bytes:
    """A small PNG whose header declares 50,000 x 50,000 pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )


async def test_consent_upload_refusals_review(stack: Stack) -> None:
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    app = await approved_resident(stack, world.rooms[0], admin_h)
    cid = world.community.id
    me = (await app.get(f"{V1}/me")).json()["id"]

    # No consent, no enrollment.
    r = await upload(app, cid, photo_bytes("obama"))
    assert (r.status_code, error_code(r)) == (403, "consent_missing")
    assert set(r.json()["error"]["details"]["missing"]) == {"gate_entry", "terminal_storage"}

    texts = (await app.get(f"{V1}/faces/consent-texts")).json()["items"]
    assert {t["purpose"] for t in texts} == {"gate_entry", "terminal_storage", "server_storage"}
    assert all(t["text_zh"] and t["text_en"] for t in texts)
    r = await app.post(
        f"{V1}/me/face/consents",
        json={"community_id": cid, "consents": [{"purpose": "gate_entry", "version": 99}]},
    )
    assert (r.status_code, error_code(r)) == (409, "consent_text_outdated")
    assert (await consent_all(app, cid)).status_code == 201
    mine = (await app.get(f"{V1}/me/face/consents")).json()["items"]
    assert {c["purpose"] for c in mine} >= {"gate_entry", "terminal_storage"}
    assert all(c["text_zh"] for c in mine)

    # Bad input: a clear 4xx, and nothing stored.
    jpeg = photo_bytes("obama")
    cases = [
        (b"%PDF-1.4 not an image at all", 415, "image_unsupported_type"),
        (jpeg[: len(jpeg) // 3], 422, "image_corrupt"),
        (_bomb(), 422, "image_dimensions_too_large"),
        (_png(640, 480), 422, "face_no_face"),
        (photo_bytes("players"), 422, "face_multiple_faces"),
    ]
    for data, status, code in cases:
        r = await upload(app, cid, data)
        assert (r.status_code, error_code(r)) == (status, code), (code, r.text)
        assert r.json()["error"]["message_zh"] and r.json()["error"]["message_en"]
    blurred = encode_jpeg(__import__("cv2").GaussianBlur(engine().decode(jpeg), (0, 0), 6))
    r = await upload(app, cid, blurred)
    assert (r.status_code, error_code(r)) == (422, "face_too_blurry")
    small = __import__("cv2").resize(engine().decode(jpeg), None, fx=0.25, fy=0.25)
    r = await upload(app, cid, encode_jpeg(small))
    assert (r.status_code, error_code(r)) == (422, "face_too_small")
    r = await app.post(f"{V1}/me/face/enrollments", json={"community_id": cid})
    assert (r.status_code, error_code(r)) == (415, "multipart_required")
    big = b"\xff\xd8\xff" + b"\0" * (stack.settings.max_upload_bytes + 200_000)
    r = await upload(app, cid, big)
    assert (r.status_code, error_code(r)) == (413, "upload_too_large")
    # Someone else's household.
    stranger = await Resident.create(name="别人")
    await Membership.create(
        resident=stranger,
        room=world.rooms[3],
        community=world.community,
        role=MembershipRole.OWNER,
        state=MembershipState.APPROVED,
    )
    r = await upload(app, cid, jpeg, resident_id=stranger.id)
    assert (r.status_code, error_code(r)) == (403, "not_guardian")
    assert await FaceEnrollment.filter(community_id=cid).count() == 0

    # A good photo: pending, reviewed with the photo, approved; the photo then goes.
    r = await upload(app, cid, jpeg)
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    assert r.json()["state"] == "pending" and r.json()["photo_held"]
    approver_h = await staff_headers(
        stack, await make_staff(world.community, StaffRoleName.APPROVER)
    )
    guard_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.GUARD))
    q = await stack.client.get(f"{V1}/staff/communities/{cid}/face-enrollments", headers=guard_h)
    assert q.status_code == 403
    q = (
        await stack.client.get(f"{V1}/staff/communities/{cid}/face-enrollments", headers=approver_h)
    ).json()["items"]
    assert [e["id"] for e in q] == [eid]
    assert q[0]["quality"]["reason"] is None and q[0]["duplicate"] is False
    photo = await stack.client.get(q[0]["photo_url"], headers=approver_h)
    assert photo.status_code == 200 and photo.content == jpeg
    # An uploaded photo is never sniffed into something a browser would run.
    assert photo.headers["x-content-type-options"] == "nosniff"
    assert photo.headers["cache-control"] == "no-store"
    row = await FaceEnrollment.get(id=eid)
    assert jpeg not in bytes(row.photo_enc) and row.photo_enc[:3] == b"AX1"  # encrypted
    r = await stack.client.post(
        f"{V1}/staff/face-enrollments/{eid}/reject", json={"reason": ""}, headers=approver_h
    )
    assert (r.status_code, error_code(r)) == (422, "reason_required")
    r = await stack.client.post(
        f"{V1}/staff/face-enrollments/{eid}/approve", json={"reason": "ok"}, headers=approver_h
    )
    assert r.status_code == 200 and r.json()["state"] == "approved"
    assert not r.json()["photo_held"]
    # The resident's message was queued in the decision's own transaction.
    queued = await OutboxEvent.get(dedupe_key=f"face-enrollment:{eid}:enrollment_approved")
    assert queued.recipients["residents"] == [me]
    r = await stack.client.get(f"{V1}/staff/face-enrollments/{eid}/photo", headers=approver_h)
    assert r.status_code == 410
    actions = set(await FaceRecord.filter(enrollment_id=eid).values_list("action", flat=True))
    assert {
        "enrollment.submitted",
        "photo.viewed",
        "enrollment.approved",
        "photo.deleted",
    } <= actions

    # The same face for another resident of the community is flagged to staff.
    other = await approved_resident(stack, world.rooms[1], admin_h)
    assert (await consent_all(other, cid)).status_code == 201
    r = await upload(other, cid, photo_bytes("obama2"))
    assert r.status_code == 201
    q = (
        await stack.client.get(f"{V1}/staff/communities/{cid}/face-enrollments", headers=approver_h)
    ).json()["items"]
    flagged = next(e for e in q if e["id"] == r.json()["id"])
    assert flagged["duplicate"] and flagged["duplicate_of"][0]["resident_id"] == me
    r = await stack.client.post(
        f"{V1}/staff/face-enrollments/{flagged['id']}/reject",
        json={"reason": "与其他住户人脸重复"},
        headers=approver_h,
    )
    assert r.status_code == 200
    rejected = f"face-enrollment:{flagged['id']}:enrollment_rejected"
    assert (await OutboxEvent.get(dedupe_key=rejected)).payload["reason"] == "与其他住户人脸重复"
    row = await FaceEnrollment.get(id=flagged["id"])
    assert row.photo_enc is None and row.embedding_enc is None
    await other.aclose()
    await app.aclose()


async def test_guardian_enrolls_child_and_others_cannot(stack: Stack) -> None:
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    cid = world.community.id
    parent = await approved_resident(stack, world.rooms[0], admin_h)
    neighbour = await approved_resident(stack, world.rooms[1], admin_h)
    child_app = await approved_resident(stack, world.rooms[0], admin_h, role="family")
    child = await Resident.get(id=(await child_app.get(f"{V1}/me")).json()["id"])
    today = clock.now().date()
    child.birth_date = date(today.year - 8, 1, 1)
    await child.save(update_fields=["birth_date"])

    r = await consent_all(child_app, cid)
    assert (r.status_code, error_code(r)) == (403, "guardian_required")
    r = await consent_all(neighbour, cid, resident_id=child.id)
    assert (r.status_code, error_code(r)) == (403, "not_guardian")
    r = await upload(neighbour, cid, photo_bytes("person_b_1"), resident_id=child.id)
    assert r.status_code == 403
    assert not await FaceConsent.filter(resident_id=child.id).exists()

    r = await consent_all(parent, cid, resident_id=child.id)
    assert r.status_code == 201, r.text
    assert {c["given_by"] for c in r.json()["items"]} == {"guardian"}
    parent_id = (await parent.get(f"{V1}/me")).json()["id"]
    assert {c["guardian_id"] for c in r.json()["items"]} == {parent_id}
    r = await upload(parent, cid, photo_bytes("person_b_1"), resident_id=child.id)
    assert r.status_code == 201, r.text
    assert r.json()["resident_id"] == child.id
    assert r.json()["submitted_by"] == {"type": "guardian", "id": parent_id}
    for a in (parent, neighbour, child_app):
        await a.aclose()


async def test_active_liveness_enrollment(stack: Stack) -> None:
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    cid = world.community.id
    app = await approved_resident(stack, world.rooms[0], admin_h)
    assert (await consent_all(app, cid)).status_code == 201
    r = await app.post(f"{V1}/me/face/challenges", json={"community_id": cid})
    assert r.status_code == 201
    ch = r.json()
    assert len(ch["actions"]) == 3 and set(ch["actions"]) <= set(CHALLENGE_ACTIONS)

    img = engine().decode(photo_bytes("obama"))
    face = engine().detect(img)[0]
    frames = [encode_jpeg(img)] + [encode_jpeg(act(img, face, a)) for a in ch["actions"]]
    # Frames that do not show the asked moves are refused.
    files = [("frames", (f"{i}.jpg", f, "image/jpeg")) for i, f in enumerate(frames[:1] * 2)]
    r = await app.post(
        f"{V1}/me/face/enrollments/liveness", data={"challenge_id": ch["challenge_id"]}, files=files
    )
    assert (r.status_code, error_code(r)) == (422, "liveness_action_not_done")
    # The challenge is single use and expires.
    ch = (await app.post(f"{V1}/me/face/challenges", json={"community_id": cid})).json()
    clock.advance(stack.settings.face_liveness_challenge_ttl_s + 1)
    files = [("frames", (f"{i}.jpg", f, "image/jpeg")) for i, f in enumerate(frames)]
    r = await app.post(
        f"{V1}/me/face/enrollments/liveness", data={"challenge_id": ch["challenge_id"]}, files=files
    )
    assert (r.status_code, error_code(r)) == (410, "challenge_expired")
    clock.reset()
    ch = (await app.post(f"{V1}/me/face/challenges", json={"community_id": cid})).json()
    frames = [encode_jpeg(img)] + [encode_jpeg(act(img, face, a)) for a in ch["actions"]]
    files = [("frames", (f"{i}.jpg", f, "image/jpeg")) for i, f in enumerate(frames)]
    r = await app.post(
        f"{V1}/me/face/enrollments/liveness", data={"challenge_id": ch["challenge_id"]}, files=files
    )
    assert r.status_code == 201, r.text
    assert r.json()["method"] == "liveness"
    row = await FaceEnrollment.get(id=r.json()["id"])
    assert row.liveness["actions"] == ch["actions"]
    assert np.isfinite(row.liveness["min_similarity"])
    await app.aclose()


async def test_staff_enroll_elderly_in_person(stack: Stack) -> None:
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    cid = world.community.id
    elder = await Resident.create(name="王奶奶", birth_date=date(1940, 5, 1))
    await Membership.create(
        resident=elder,
        room=world.rooms[2],
        community=world.community,
        role=MembershipRole.OWNER,
        state=MembershipState.APPROVED,
    )
    url = f"{V1}/staff/communities/{cid}/face-enrollments/in-person"
    files = {"photo": ("p.jpg", photo_bytes("biden"), "image/jpeg")}
    r = await stack.client.post(
        url, data={"resident_id": str(elder.id)}, files=files, headers=admin_h
    )
    assert (r.status_code, error_code(r)) == (422, "consent_required")
    r = await stack.client.post(
        url,
        data={"resident_id": str(elder.id), "consent_confirmed": "true"},
        files=files,
        headers=admin_h,
    )
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "approved" and r.json()["method"] == "in_person"
    consents = await FaceConsent.filter(resident_id=elder.id)
    assert {c.given_by.value for c in consents} == {"in_person"}
    assert all(c.witness_staff_id for c in consents)
    newcomer = await new_resident(stack)
    await newcomer.aclose()


async def test_blocking_a_resident_takes_their_face_off_the_terminals_at_once(
    stack: Stack,
) -> None:
    world = await make_world()
    cid = world.community.id
    admin = await make_staff(world.community, StaffRoleName.ADMIN)
    admin_h = await staff_headers(stack, admin)
    app = await approved_resident(stack, world.rooms[0], admin_h)
    me = (await app.get(f"{V1}/me")).json()["id"]
    e = await enroll_and_approve(stack, app, cid, admin_h, "obama")
    assert await FaceLibraryChange.filter(enrollment_id=e["id"], op=LibraryOp.ADD).exists()

    r = await stack.client.post(
        f"{V1}/staff/communities/{cid}/residents/{me}/block",
        json={"blocked": True, "reason": "安全原因"},
        headers=admin_h,
    )
    assert r.status_code == 200, r.text
    # No remove_blocked_faces run: the block itself sends the library removal.
    await until(
        lambda: FaceLibraryChange.filter(enrollment_id=e["id"], op=LibraryOp.REMOVE).exists()
    )
    await asyncio.sleep(0.2)  # every process heard the block; one acted on it
    removes = await FaceLibraryChange.filter(enrollment_id=e["id"], op=LibraryOp.REMOVE)
    assert len(removes) == 1 and removes[0].reason == "blocked"
    row = await FaceEnrollment.get(id=e["id"])
    assert (row.state, row.removed_reason) == (EnrollmentState.REMOVED, "blocked")
    removed = await FaceRecord.get(enrollment_id=e["id"], action="face.removed")
    assert (removed.actor_type, removed.actor_id) == ("staff", admin.id)  # not the job
