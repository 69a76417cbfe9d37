"""The GA/T 1400 police link against the fake police platform, on both backends:
registration with Digest, keepalive, uploads per agreement, outages, withdrawal."""

from __future__ import annotations

import base64
from datetime import timedelta

import httpx

from anxin.clock import clock, utcnow
from domain.access.snapshots import snapshot_store
from domain.police import uploads
from models import (
    AccessMethod,
    AuditLog,
    Membership,
    MembershipRole,
    MembershipState,
    PassKind,
    PoliceLinkState,
    PoliceUpload,
    Resident,
    UploadState,
    Vehicle,
    VisitorPass,
)
from police_link.client import ViidClient, ViidUnauthorized
from tests.helpers import approved_resident
from tests.police_helpers import PASSWORD, police_site
from tests.stack import Stack


async def _state(agreement_id: int) -> PoliceLinkState:
    return await PoliceLinkState.get(agreement_id=agreement_id)


async def test_register_with_digest_wrong_password_refused_then_retried(stack: Stack) -> None:
    async with police_site(stack) as site:
        site.fake.users[site.username] = "the-platform-has-another-one"
        a = await site.agree(["apes"])
        link = site.link()
        try:
            await link.run_once()
            attempts = site.fake.register_attempts
            assert attempts and not any(x["authorized"] for x in attempts)
            st = await _state(a["id"])
            assert not st.registered and st.register_failures == 1
            assert st.next_register_at > utcnow()
            assert site.fake.received("/VIID/APEs") == {}  # nothing without registering
            # Not before its back-off: no new attempt.
            await link.run_once()
            assert len(site.fake.register_attempts) == len(attempts)
            # The platform's password is corrected; the link retries later by itself.
            site.fake.users[site.username] = PASSWORD
            clock.advance(400)
            await link.run_once()
            st = await _state(a["id"])
            assert st.registered and st.register_failures == 0
            assert "33010600002000000001" in site.fake.registered
            assert len(site.fake.received("/VIID/APEs")) == 2
            # Keepalive once the interval has passed, with User-Identify.
            before = site.fake.keepalives["33010600002000000001"]
            clock.advance(stack.settings.police_keepalive_s + 1)
            await link.run_once()
            assert site.fake.keepalives["33010600002000000001"] == before + 1
            # The platform forgets us (restart): the keepalive's 401 makes us register again.
            site.fake.registered.clear()
            clock.advance(stack.settings.police_keepalive_s + 1)
            await link.run_once()
            assert not (await _state(a["id"])).registered
            clock.advance(400)
            await link.run_once()
            assert (await _state(a["id"])).registered
        finally:
            await link.stop()
        # Stopping the process unregisters.
        assert "33010600002000000001" in site.fake.unregistered


async def test_digest_client_against_fake_directly(stack: Stack) -> None:
    async with police_site(stack) as site:
        good = ViidClient(site.url, "33010600002000000009", site.username, PASSWORD)
        bad = ViidClient(site.url, "33010600002000000008", site.username, "wrong-password")
        try:
            await good.register()
            await good.keepalive()
            try:
                await bad.register()
            except ViidUnauthorized:
                pass
            else:
                raise AssertionError("a wrong Digest password registered")
            # An unregistered caller cannot upload.
            r = await httpx.AsyncClient().post(
                f"{site.url}/VIID/Faces",
                json={"FaceListObject": {"FaceObject": []}},
                headers={"User-Identify": "33010600002000000008"},
            )
            assert r.status_code == 401 and "Digest" in r.headers["www-authenticate"]
        finally:
            await good.aclose()
            await bad.aclose()


async def test_uploads_of_each_category_carry_the_standard_fields(stack: Stack) -> None:
    async with police_site(stack) as site:
        a = await site.agree()
        resident = await site.resident("李四", "13900000001")
        room = site.world.rooms[0]
        membership = await Membership.create(
            resident=resident,
            room=room,
            community=site.world.community,
            role=MembershipRole.OWNER,
            state=MembershipState.APPROVED,
        )
        await Vehicle.create(community=site.world.community, room=room, plate="浙A12345")
        now = utcnow()
        visitor = await VisitorPass.create(
            community=site.world.community,
            room=room,
            created_by=resident,
            kind=PassKind.VISITOR,
            visitor_name="王五",
            visitor_phone="13700000002",
            plate="浙B54321",
            valid_from=now,
            valid_until=now + timedelta(hours=4),
            max_uses=2,
            share_token=f"s{membership.id}-{a['id']}",
        )
        face = await site.passage(resident_id=resident.id)
        car = await site.passage(method=AccessMethod.PLATE, plate="浙A12345", reason="plate")
        link = site.link()
        try:
            await link.run_once()
            (p,) = site.fake.received("/VIID/Community/PersonInfos").values()
            assert p["DataStatus"] == 0
            # Moving out is sent as the same PersonID with DataStatus 1.
            membership.state = MembershipState.ENDED
            await membership.save()
            await link.run_once()
        finally:
            await link.stop()
        f = site.fake
        (p,) = f.received("/VIID/Community/PersonInfos").values()
        assert p["DataStatus"] == 1 and f.receipts[p["PersonID"]] == 2
        # Capture devices and doors, with 20-digit ids of the agreement's centre code.
        apes = f.received("/VIID/APEs")
        assert len(apes) == 2
        for ape_id, ape in apes.items():
            assert len(ape_id) == 20 and ape_id.startswith("3301060000121")
            assert ape["CommunityID"] == "33010600002160000001"
            assert "Password" not in ape or not ape["Password"]
        assert len(f.received("/VIID/Community/DoorDevices")) == 2
        doors = list(f.received("/VIID/Community/DoorInfos").values())
        assert {d["Name"] for d in doors} == {"东门人脸门禁", "北门道闸"}
        # The face capture: 48-digit FaceID, the snapshot inline as base64 JPEG.
        (face_obj,) = f.received("/VIID/Faces").values()
        assert len(face_obj["FaceID"]) == 48 and face_obj["FaceID"][41:43] == "06"
        assert face_obj["SourceID"] == face_obj["FaceID"][:41]
        assert face_obj["DeviceID"] == face_obj["FaceID"][:20]
        (sub,) = face_obj["SubImageList"]["SubImageInfoObject"]
        data = base64.b64decode(sub["Data"])
        assert data == snapshot_store(stack.settings).load(face.snapshot_ref)
        assert sub["Type"] == "14" and sub["Width"] == 96 and len(sub["ShotTime"]) == 14
        assert "PersonID" not in face_obj and "Name" not in face_obj  # our match is not sent
        # The vehicle passage: plate, pass time, image.
        (mv,) = f.received("/VIID/MotorVehicles").values()
        assert mv["PlateNo"] == "浙A12345" and mv["HasPlate"] == "1"
        assert len(mv["MotorVehicleID"]) == 48 and len(mv["PassTime"]) == 14
        assert mv["SubImageList"]["SubImageInfoObject"][0]["Type"] == "01"
        # Registrations: visitor, resident, vehicle.
        (v,) = f.received("/VIID/Community/VisitorInfos").values()
        assert (v["Name"], v["Phone"], v["PlateNo"]) == ("王五", "13700000002", "浙B54321")
        assert p["Name"] == "李四" and p["IDNumber"] == ""
        assert "PhotoData" not in p  # faces never leave for the registry
        (c,) = f.received("/VIID/Community/CarInfos").values()
        assert c["PlateNo"] == "浙A12345"
        assert f.refused == []
        # Every upload recorded: what, when, which agreement, result.
        rows = await PoliceUpload.filter(agreement_id=a["id"])
        assert rows and all(u.state == UploadState.SENT and u.sent_at for u in rows)
        r = await stack.client.get(
            f"/api/v1/staff/communities/{site.cid}/police-uploads",
            params={"category": "face_captures"},
            headers=site.admin_h,
        )
        assert r.status_code == 200
        (rec,) = r.json()["items"]
        assert rec["object_id"] == face_obj["FaceID"] and rec["state"] == "sent"
        assert "SubImageList" in rec["fields_sent"] and rec["source"] == f"access_event:{face.id}"
        assert car.id  # the plate event went as a MotorVehicle (checked above)
        # Residents' rights: the export lists what was shared about them, under what terms.
        shared = await uploads.shared_about_resident(resident.id)
        kinds = {s["category"] for s in shared}
        assert {"face_captures", "resident_registry", "visitor_registrations"} <= kinds
        assert all(s["document_no"] == "杭公（治）备〔2026〕12号" for s in shared)
        assert visitor.id


async def test_a_residents_export_lists_what_was_shared_about_them(stack: Stack) -> None:
    async with police_site(stack) as site:
        await site.agree(["resident_registry", "face_captures"])
        app = await approved_resident(stack, site.world.rooms[0], site.admin_h)
        me = (await stack.client.get("/api/v1/me", headers=app.headers)).json()["id"]
        await Resident.filter(id=me).update(name="钱七")  # the registry needs a name
        await site.passage(resident_id=me)
        link = site.link()
        try:
            await link.run_once()
        finally:
            await link.stop()
        r = await stack.client.get("/api/v1/me/data-export", headers=app.headers)
        assert r.status_code == 200, r.text
        shared = r.json()["police_uploads"]
        assert sorted(s["category"] for s in shared) == ["face_captures", "resident_registry"]
        assert all(s["state"] == "sent" and s["platform"] == "测试市公安局视图库" for s in shared)
        assert all(s["legal_basis"] == "pipl_13_3" and s["retention_days"] == 180 for s in shared)


async def test_nothing_without_an_agreement_or_outside_its_categories(stack: Stack) -> None:
    async with police_site(stack) as site:
        await site.passage()
        link = site.link()
        try:
            await link.run_once()  # no agreement: nothing registered, nothing queued
            assert site.fake.register_attempts == []
            assert await PoliceUpload.filter(community_id=site.cid).count() == 0
            await site.agree(["apes"])
            await site.passage()
            await link.run_once()
        finally:
            await link.stop()
        assert len(site.fake.received("/VIID/APEs")) == 2
        for path in ("/VIID/Faces", "/VIID/MotorVehicles", "/VIID/Community/PersonInfos"):
            assert site.fake.received(path) == {}
        cats = set(
            await PoliceUpload.filter(community_id=site.cid).values_list("category", flat=True)
        )
        assert cats == {"apes"}
        # Only an operator may open a flow; property admins and security cannot.
        for h in (site.admin_h, site.security_h):
            r = await stack.client.post(
                f"/api/v1/operator/communities/{site.cid}/police-agreements",
                json={**site.agreement, "password": PASSWORD},
                headers=h,
            )
            assert r.status_code in (403, 422)
        # A second active agreement is refused: withdraw first.
        r = await stack.client.post(
            f"/api/v1/operator/communities/{site.cid}/police-agreements",
            json={
                k: v
                for k, v in {**site.agreement, "password": PASSWORD}.items()
                if k
                in {
                    "platform_name",
                    "base_url",
                    "system_id",
                    "username",
                    "password",
                    "center_code",
                    "community_code",
                    "legal_basis",
                    "document_no",
                    "categories",
                    "retention_days",
                    "approved_by",
                }
            },
            headers=site.operator_h,
        )
        assert r.status_code == 409, r.text


async def test_withdrawal_stops_the_flow_at_once(stack: Stack) -> None:
    async with police_site(stack) as site:
        a = await site.agree(["face_captures"])
        link = site.link()
        try:
            await link.run_once()  # registered, nothing yet
            site.fake.mode = "down"
            for _ in range(5):
                await site.passage()
            await link.run_once()  # queued, platform down
            queued = await PoliceUpload.filter(agreement_id=a["id"], state="queued").count()
            assert queued == 5
            r = await stack.client.post(
                f"/api/v1/operator/police-agreements/{a['id']}/withdraw",
                json={"reason": "协议到期"},
                headers=site.operator_h,
            )
            assert r.status_code == 200, r.text
            assert r.json()["cancelled_uploads"] == 5 and r.json()["state"] == "withdrawn"
            site.fake.mode = "none"
            clock.advance(900)
            await site.passage()
            await link.run_once()
        finally:
            await link.stop()
        assert site.fake.received("/VIID/Faces") == {}
        assert await PoliceUpload.filter(agreement_id=a["id"], state="sent").count() == 0
        assert await AuditLog.filter(action="police.agreement.withdraw").count() >= 1


async def test_one_link_process_per_agreement_at_a_time(stack: Stack) -> None:
    async with police_site(stack) as site:
        await site.agree(["face_captures"])
        first, second = site.link(), site.link()
        try:
            await first.run_once()
            await site.passage()
            assert await second.run_once() is False  # the first holds the lease
            assert site.fake.received("/VIID/Faces") == {}
            await first.stop()  # releases it
            await second.run_once()
            assert len(site.fake.received("/VIID/Faces")) == 1
        finally:
            await first.stop()
            await second.stop()


async def test_outage_loses_nothing_and_duplicates_nothing(stack: Stack) -> None:
    async with police_site(stack) as site:
        a = await site.agree(["face_captures"])
        link = site.link()
        try:
            for _ in range(20):
                await site.passage()
            await link.run_once()
            assert len(site.fake.received("/VIID/Faces")) == 20
            # The platform goes down; passages keep coming and wait in the queue.
            site.fake.mode = "down"
            for _ in range(30):
                await site.passage()
            await link.run_once()
            st = await _state(a["id"])
            assert not st.registered and st.last_error
            assert await PoliceUpload.filter(agreement_id=a["id"], state="queued").count() == 30
            # It comes back but loses its answers once: stored, yet we hear nothing.
            site.fake.mode = "lose_replies"
            clock.advance(900)
            await link.run_once()
            site.fake.mode = "none"
            clock.advance(900)
            await link.run_once()
            await link.run_once()
        finally:
            await link.stop()
        faces = site.fake.received("/VIID/Faces")
        assert len(faces) == 50  # every passage arrived
        sent = await PoliceUpload.filter(agreement_id=a["id"], state="sent").count()
        assert sent == 50
        ids = await PoliceUpload.filter(agreement_id=a["id"]).values_list("object_id", flat=True)
        assert sorted(ids) == sorted(faces)  # one object per passage, same ids on resend
        # A resend after a lost answer is the same object: the platform keeps it once.
        assert all(n <= 2 for n in site.fake.receipts.values())
        assert sum(site.fake.receipts.values()) - site.fake.duplicates() == 50
