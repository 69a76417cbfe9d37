"""Rules that are exactly as strict as the docs say: doors that would be face-only for
residents, and an access log that tells a guard a bad capture from a stranger."""

from __future__ import annotations

import cv2
import numpy as np

from domain.faces.galleries import GALLERIES
from models import (
    AuditLog,
    Community,
    FaceEnrollment,
    FaceSelfEnrollment,
    FaceStoragePolicy,
    StaffRoleName,
)
from tests.devices import register_device, simulator
from tests.face_data import photo_bytes
from tests.helpers import approved_resident, error_code, make_staff, make_world, staff_headers
from tests.stack import Stack
from tests.test_faces_support import (
    V1,
    consent_all,
    embedding,
    engine,
    enroll_and_approve,
    eventually,
    upload,
)


async def test_a_door_must_not_be_face_only_for_residents(stack: Stack) -> None:
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    url = f"{V1}/staff/communities/{world.community.id}/devices"
    for methods in (["face"], ["face", "intercom"], ["face", "qr"], ["face", "intercom", "qr"]):
        r = await stack.client.post(
            url, json={"kind": "face_gate", "name": "d", "methods": methods}, headers=admin_h
        )
        assert (r.status_code, error_code(r)) == (422, "face_only_refused"), methods
    for methods in (["face", "card"], ["face", "code", "intercom"], ["face", "remote", "qr"]):
        r = await stack.client.post(
            url, json={"kind": "face_gate", "name": "d", "methods": methods}, headers=admin_h
        )
        assert r.status_code == 201, (methods, r.text)
    # Changing an existing door is held to the same rule.
    r = await stack.client.patch(
        f"{V1}/staff/devices/{r.json()['id']}",
        json={"methods": ["face", "intercom"]},
        headers=admin_h,
    )
    assert (r.status_code, error_code(r)) == (422, "face_only_refused")


def _jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


async def test_the_access_log_says_why_a_face_was_refused(stack: Stack) -> None:
    world = await make_world()
    cid = world.community.id
    await Community.filter(id=cid).update(face_storage_policy=FaceStoragePolicy.CENTRAL)
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    app = await approved_resident(stack, world.rooms[0], admin_h)
    gate = await register_device(stack, cid, admin_h, kind="face_gate")
    e = await enroll_and_approve(stack, app, cid, admin_h, "obama")
    person_id = (await FaceEnrollment.get(id=e["id"])).person_id
    galleries = stack.runtime.get(GALLERIES)
    await eventually(lambda: _in_gallery(galleries, cid, person_id))

    img = engine().decode(photo_bytes("obama"))
    tiny = cv2.resize(img, None, fx=0.2, fy=0.2)  # a low-resolution capture: face ~47 px
    small = cv2.resize(img, None, fx=0.25, fy=0.25)
    far = np.full((900, 1200, 3), 120, np.uint8)  # a good frame, the person far off
    far[300 : 300 + small.shape[0], 400 : 400 + small.shape[1]] = small
    blank = np.full((480, 640, 3), 90, np.uint8)

    async with simulator(stack, gate, match_mode="server") as sim:
        await sim.capture_face(image=_jpeg(tiny))
        await sim.capture_face(image=_jpeg(far))
        await sim.capture_face(image=_jpeg(blank))
        await sim.capture_face(embedding=embedding("biden"))
        log = await _log(stack, cid, admin_h, 4)
        m = (await app.get(f"{V1}/me/memberships")).json()["items"][0]["id"]
        r = await stack.client.post(
            f"{V1}/staff/memberships/{m}/end", json={"reason": "sold"}, headers=admin_h
        )
        assert r.status_code == 200, r.text
        await sim.capture_face(embedding=embedding("obama2"))  # still in the grace period
        log = await _log(stack, cid, admin_h, 5)
        assert not sim.opened
    reasons = sorted(ev["reason"] for ev in log[1:])
    assert reasons == ["face_not_found", "face_too_far", "face_too_small", "unknown_person"]
    assert log[0]["reason"] == "moved_out"
    by_reason = {ev["reason"]: ev for ev in log}
    assert by_reason["face_too_far"]["reason_zh"] == "离摄像头太远"
    assert by_reason["face_too_far"]["reason_en"] == "too far from the camera"
    assert by_reason["face_too_small"]["reason_en"].startswith("face image too small")
    assert by_reason["unknown_person"]["reason_en"] == "not recognised (a stranger)"
    assert (by_reason["moved_out"]["reason_zh"], by_reason["moved_out"]["reason_en"]) == (
        "已迁出",
        "moved out",
    )
    await app.aclose()


async def _log(stack: Stack, cid: int, h: dict[str, str], count: int) -> list[dict]:
    async def enough() -> list[dict] | None:
        r = await stack.client.get(
            f"{V1}/staff/communities/{cid}/access-events", params={"method": "face"}, headers=h
        )
        rows = r.json()["items"]
        return rows if len(rows) >= count else None

    return await eventually(enough)


async def _in_gallery(galleries, cid: int, person_id: str) -> bool:  # noqa: ANN001
    return person_id in (await galleries.gallery(cid))


async def test_self_enrollment_needs_the_active_challenge_unless_the_community_allows_photos(
    stack: Stack,
) -> None:
    world = await make_world()
    cid = world.community.id
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    url = f"{V1}/staff/communities/{cid}/face-self-enrollment"
    r = await stack.client.put(url, json={"self_enrollment": "liveness"}, headers=admin_h)
    assert r.status_code == 200 and r.json()["face_self_enrollment"] == "liveness"
    assert (await Community.get(id=cid)).face_self_enrollment == FaceSelfEnrollment.LIVENESS
    assert await AuditLog.filter(action="community.face_self_enrollment", community_id=cid).exists()
    # A community made without saying anything gets the strict default.
    fresh = await Community.create(city_id=world.community.city_id, name=f"默认-{cid}")
    assert fresh.face_self_enrollment == FaceSelfEnrollment.LIVENESS

    app = await approved_resident(stack, world.rooms[0], admin_h)
    assert (await consent_all(app, cid)).status_code == 201
    r = await upload(app, cid, photo_bytes("obama"))
    assert (r.status_code, error_code(r)) == (403, "liveness_required")
    assert not await FaceEnrollment.filter(community_id=cid).exists()  # nothing kept
    # Staff enrolling a resident who stands at the office may use a still photo.
    me = (await app.get(f"{V1}/me")).json()["id"]
    r = await stack.client.post(
        f"{V1}/staff/communities/{cid}/face-enrollments/in-person",
        data={"resident_id": str(me), "consent_confirmed": "true"},
        files={"photo": ("p.jpg", photo_bytes("obama"), "image/jpeg")},
        headers=admin_h,
    )
    assert r.status_code == 201, r.text
    # The community may choose to accept still photos from the phone too.
    r = await stack.client.put(url, json={"self_enrollment": "photo"}, headers=admin_h)
    assert r.status_code == 200
    r = await upload(app, cid, photo_bytes("obama2"))
    assert r.status_code == 201, r.text
    r = await stack.client.put(url, json={"self_enrollment": "selfie"}, headers=admin_h)
    assert r.status_code == 422
    await app.aclose()
