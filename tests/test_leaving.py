"""What a person leaves behind, walked end to end through the broker on both backends:
after a move-out (or leaving the household) no pass, code, card, vehicle, face or remote
open of that person opens anything, at a gate that asks the server or at one that checks
passes by itself, offline included; and a crash between the steps is finished by the job.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from domain.households import leaving
from models import (
    AccessCard,
    AccessEvent,
    Departure,
    FaceEnrollment,
    HouseholdCode,
    Membership,
    MembershipState,
    Notification,
    PassRevocation,
    PassState,
    Resident,
    Vehicle,
    VisitorPass,
)
from tests.devices import register_device, simulator
from tests.helpers import approved_resident, error_code
from tests.passes_helpers import Site, create_pass, make_site, pass_key_pem, until, wait_events
from tests.stack import Stack
from tests.test_faces_support import V1, embedding, enroll_and_approve, eventually

PLATE = "粤B12345"
CODE = "604917"


@dataclass
class Home:
    site: Site
    b: Any  # the member who stays (MiniProgram)
    gate: dict[str, Any]  # asks the server for passes; matches faces in its library
    offline_gate: dict[str, Any]  # checks passes by itself with the community's key
    barrier: dict[str, Any]
    panel: dict[str, Any]
    key: str
    pass_: dict[str, Any]
    membership_id: int
    enrollment_id: int

    @property
    def a(self) -> Any:
        return self.site.resident

    @property
    def room_id(self) -> int:
        return self.site.world.rooms[0].id

    def offline_cfg(self) -> dict[str, Any]:
        return {"pass_public_key": self.key, "community_id": str(self.site.world.community.id)}


async def _home(stack: Stack, *, with_b: bool = True) -> Home:
    """Resident A (owner) with a card, a car, a pass, a face and the household code;
    resident B (family) who stays."""
    site = await make_site(stack)
    cid = site.world.community.id
    b = (
        await approved_resident(stack, site.world.rooms[0], site.admin_h, "family")
        if with_b
        else None
    )
    offline_gate = await register_device(
        stack, cid, site.admin_h, kind="face_gate", name="北门", methods=["face", "card", "qr"]
    )
    barrier = await register_device(stack, cid, site.admin_h, kind="barrier_gate", name="车库")
    panel = await register_device(
        stack, cid, site.admin_h, kind="intercom_panel", unit_id=site.world.units[0].id
    )
    await AccessCard.create(community_id=cid, resident_id=site.resident_id, card_no="A-1")
    r = await site.resident.post(
        f"{V1}/households/{site.world.rooms[0].id}/vehicles", json={"plate": PLATE}
    )
    assert r.status_code == 201, r.text
    r = await stack.client.put(
        f"{V1}/households/{site.world.rooms[0].id}/door-code",
        json={"code": CODE},
        headers=site.resident.headers,
    )
    assert r.status_code == 200, r.text
    p = await create_pass(site, max_uses=5)
    assert offline_gate["device_uid"] in p["doors"] and site.gate["device_uid"] in p["doors"]
    e = await enroll_and_approve(stack, site.resident, cid, site.admin_h, "obama")
    m = (await site.resident.get(f"{V1}/me/memberships")).json()["items"][0]["id"]
    return Home(
        site,
        b,
        site.gate,
        offline_gate,
        barrier,
        panel,
        await pass_key_pem(stack, cid),
        p,
        m,
        e["id"],
    )


async def _move_out(stack: Stack, home: Home) -> httpx.Response:
    return await stack.client.post(
        f"{V1}/staff/memberships/{home.membership_id}/end",
        json={"reason": "房屋出售"},
        headers=home.site.admin_h,
    )


async def _last(device_id: int, count: int) -> AccessEvent:
    return (await wait_events(device_id, count))[-1]


async def _last_code(device_id: int, count: int) -> AccessEvent:
    """The panel's `count`-th code entry (intercom calls log rows of their own)."""

    async def enough() -> list[AccessEvent] | None:
        rows = await AccessEvent.filter(device_id=device_id, method="code").order_by("id")
        return rows if len(rows) >= count else None

    return (await eventually(enough))[count - 1]


async def _nothing_of_a_opens(stack: Stack, home: Home) -> None:
    """At every kind of door, every way in of A's is refused."""
    pid = f"f{home.enrollment_id}"
    async with (
        simulator(stack, home.gate) as gate,
        simulator(stack, home.barrier) as barrier,
        simulator(stack, home.panel) as panel,
    ):
        await eventually(lambda: pid in gate.library)  # edge: kept through the grace period
        await gate.scan_qr(home.pass_["token"])
        assert (await _last(home.gate["id"], 1)).reason == "pass_revoked"
        await gate.swipe_card("A-1")
        ev = await _last(home.gate["id"], 2)
        assert ev.result.value == "denied" and ev.reason in ("unknown_card", "moved_out")
        await gate.capture_face(embedding=embedding("obama2"))
        assert (await _last(home.gate["id"], 3)).reason == "moved_out"
        await barrier.read_plate(PLATE)
        assert (await _last(home.barrier["id"], 1)).reason == "unknown_plate"
        r = await home.a.post(f"{V1}/doors/{home.gate['id']}/open")
        assert r.status_code in (403, 404), r.text
        # The intercom rings the household; A is not part of it any more.
        if home.b is not None:  # someone to ring
            await panel.call_room("101")
            await until(lambda: _has_call(home.panel["id"]))
            assert (await home.a.get(f"{V1}/intercom/calls")).json()["items"] == []
            assert (await home.b.get(f"{V1}/intercom/calls")).json()["items"] != []
        await panel.enter_code("101", CODE)
        code_ev = await _last_code(home.panel["id"], 1)
        assert not gate.opened and not barrier.opened
    return code_ev  # type: ignore[return-value]


async def _has_call(device_id: int) -> bool:
    from models import IntercomCallRecord

    return await IntercomCallRecord.exists(device_id=device_id)


async def test_move_out_ends_everything_at_every_door(stack: Stack) -> None:
    home = await _home(stack)
    async with simulator(stack, home.offline_gate, **home.offline_cfg()) as off:
        _, verdict = await off.scan_qr(home.pass_["token"])
        assert verdict is not None and verdict.ok  # checked by the gate itself
        off.go_offline()  # the gate is offline while A moves out
        r = await _move_out(stack, home)
        assert r.status_code == 200, r.text

        # One transaction ended it all, and the departure was finished at once.
        d = await Departure.get(resident_id=home.site.resident_id)
        assert d.kind.value == "moved_out" and d.finished_at is not None and d.left_community
        assert d.summary["passes_revoked"] == [home.pass_["id"]]
        assert d.summary["vehicles_removed"] == [PLATE] and d.summary["cards_disabled"] == ["A-1"]
        assert (await VisitorPass.get(id=home.pass_["id"])).state == PassState.REVOKED
        assert not await Vehicle.exists(plate=PLATE, community_id=home.site.world.community.id)
        assert not (
            await AccessCard.get(card_no="A-1", community_id=home.site.world.community.id)
        ).active
        assert (await FaceEnrollment.get(id=home.enrollment_id)).purge_after is not None
        assert await HouseholdCode.exists(room_id=home.room_id)  # B still lives there
        owed = await PassRevocation.filter(visitor_pass_id=home.pass_["id"]).values_list(
            "device_id", flat=True
        )
        assert {home.offline_gate["id"], home.gate["id"], home.barrier["id"]} <= set(owed)

        # A can no longer fetch the pass's token (nor see it).
        r = await home.a.get(f"{V1}/passes/{home.pass_['id']}")
        assert r.status_code == 404
        assert (await home.a.get(f"{V1}/passes")).json()["items"] == []

        # The offline gate gets the revocation when it comes back.
        await off.go_online()
        await until(lambda: _acked(home.pass_["id"], home.offline_gate["id"]))
        _, verdict = await off.scan_qr(home.pass_["token"])
        assert verdict is not None and verdict.reason == "revoked"
        assert len(off.opened) == 1

    code_ev = await _nothing_of_a_opens(stack, home)
    # B stays; the code still opens for the household, and B was offered a new one.
    assert code_ev.reason == "household_code"
    b_id = (await Resident.get(openid=home.b.openid)).id
    await until(lambda: Notification.exists(recipient_id=b_id, event_type="household_member_left"))
    note = await Notification.get(recipient_id=b_id, event_type="household_member_left")
    change = note.data["change_code"]
    r = await home.b.post(change["url"])
    assert r.status_code == 200, r.text
    new_code = r.json()["code"]
    async with simulator(stack, home.panel) as panel:
        await panel.enter_code("101", CODE)
        assert (await _last_code(home.panel["id"], 2)).reason == "code_wrong"
        await panel.enter_code("101", new_code)
        assert (await _last_code(home.panel["id"], 3)).reason == "household_code"
    # A second removal of the same membership changes nothing: 409.
    r = await _move_out(stack, home)
    assert (r.status_code, error_code(r)) == (409, "membership_not_active")
    assert await Departure.filter(resident_id=home.site.resident_id).count() == 1


async def _acked(pass_id: int, device_id: int) -> bool:
    return await PassRevocation.exists(
        visitor_pass_id=pass_id, device_id=device_id, acked_at__not_isnull=True
    )


async def test_the_last_member_leaving_takes_the_code_and_the_households_passes(
    stack: Stack,
) -> None:
    home = await _home(stack, with_b=False)
    r = await home.a.post(f"{V1}/me/memberships/{home.membership_id}/leave")
    assert r.status_code == 200, r.text
    d = await Departure.get(resident_id=home.site.resident_id)
    assert d.kind.value == "left" and d.summary["codes_cleared"] == [home.room_id]
    assert not await HouseholdCode.exists(room_id=home.room_id)
    code_ev = await _nothing_of_a_opens(stack, home)
    assert code_ev.reason == "code_not_set"


async def test_a_crash_between_the_steps_is_finished_by_the_job(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = await _home(stack)

    async def crash(runtime: Any, departure: Any) -> None:
        raise RuntimeError("process died after the commit")

    async with simulator(stack, home.offline_gate, **home.offline_cfg()) as off:
        with monkeypatch.context() as m:
            m.setattr(leaving, "finish", crash)
            r = await _move_out(stack, home)
        assert r.status_code == 200, r.text  # the move-out itself is committed
        d = await Departure.get(resident_id=home.site.resident_id)
        assert d.finished_at is None
        assert (await VisitorPass.get(id=home.pass_["id"])).state == PassState.REVOKED
        # The job finishes the departure whatever reached the gates before it ran (since the
        # last merges the revocation may already be owed and pushed by the gate's own sync).
        assert await leaving.finish_departures(stack.runtime, older_than_s=0) == 1
        await until(lambda: _acked(home.pass_["id"], home.offline_gate["id"]))
        _, verdict = await off.scan_qr(home.pass_["token"])
        assert verdict is not None and verdict.reason == "revoked" and not off.opened
    d = await Departure.get(id=d.id)
    assert d.finished_at is not None and d.attempts == 1
    assert await leaving.finish_departures(stack.runtime, older_than_s=0) == 0
    await _nothing_of_a_opens(stack, home)


async def test_a_crash_inside_the_transaction_changes_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = await _home(stack)

    async def crash(*args: Any, **kwargs: Any) -> list[int]:
        raise RuntimeError("process died half way")

    transport = httpx.ASGITransport(app=stack.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://anxin.test") as client:
        with monkeypatch.context() as m:
            m.setattr(leaving, "schedule_purge", crash)  # after passes, cars and cards
            r = await client.post(
                f"{V1}/staff/memberships/{home.membership_id}/end",
                json={"reason": "x"},
                headers=home.site.admin_h,
            )
    assert r.status_code == 500
    assert (await Membership.get(id=home.membership_id)).state == MembershipState.APPROVED
    assert (await VisitorPass.get(id=home.pass_["id"])).state == PassState.ACTIVE
    assert (
        await Vehicle.exists(plate=PLATE, community_id=home.site.world.community.id)
        and (await AccessCard.get(card_no="A-1", community_id=home.site.world.community.id)).active
    )
    assert not await PassRevocation.exists(visitor_pass_id=home.pass_["id"])
    assert not await Departure.exists(resident_id=home.site.resident_id)
    # Tried again, it goes through whole.
    r = await _move_out(stack, home)
    assert r.status_code == 200, r.text
    assert (await Departure.get(resident_id=home.site.resident_id)).finished_at is not None


async def test_two_removals_at_once_one_outcome(stack: Stack) -> None:
    import asyncio

    home = await _home(stack)
    results = await asyncio.gather(
        _move_out(stack, home),
        home.a.post(f"{V1}/me/memberships/{home.membership_id}/leave"),
        return_exceptions=True,
    )
    codes = sorted(r.status_code for r in results if isinstance(r, httpx.Response))
    assert codes in ([200, 409], [200, 404]), codes
    assert await Departure.filter(resident_id=home.site.resident_id).count() == 1
    with contextlib.suppress(Exception):
        await home.b.aclose()


# -- races on faces: one outcome, one library change ------------------------------------


async def _pending_face(stack: Stack) -> tuple[Site, int]:
    from tests.face_data import photo_bytes
    from tests.test_faces_support import consent_all, upload

    site = await make_site(stack)
    assert (await consent_all(site.resident, site.world.community.id)).status_code == 201
    r = await upload(site.resident, site.world.community.id, photo_bytes("obama"))
    assert r.status_code == 201, r.text
    return site, r.json()["id"]


async def _library_changes(enrollment_id: int) -> list[str]:
    from models import FaceLibraryChange

    rows = await FaceLibraryChange.filter(enrollment_id=enrollment_id).order_by("version")
    return [c.op.value for c in rows]


async def test_two_reviewers_deciding_one_enrollment(stack: Stack) -> None:
    import asyncio

    from models import FaceRecord

    site, eid = await _pending_face(stack)
    url = f"{V1}/staff/face-enrollments/{eid}"
    results = await asyncio.gather(
        stack.client.post(f"{url}/approve", json={"reason": ""}, headers=site.admin_h),
        stack.client.post(f"{url}/approve", json={"reason": ""}, headers=site.admin_h),
        stack.client.post(f"{url}/reject", json={"reason": "模糊"}, headers=site.admin_h),
    )
    assert sorted(r.status_code for r in results) == [200, 409, 409]
    assert {error_code(r) for r in results if r.status_code == 409} == {"enrollment_not_pending"}
    decided = await FaceRecord.filter(
        enrollment_id=eid, action__in=["enrollment.approved", "enrollment.rejected"]
    ).count()
    assert decided == 1
    state = (await FaceEnrollment.get(id=eid)).state.value
    assert await _library_changes(eid) == (["add"] if state == "approved" else [])


async def test_two_removals_of_one_face_and_approval_during_withdrawal(stack: Stack) -> None:
    import asyncio

    from domain.faces import service as faces
    from models import FaceRecord

    site, eid = await _pending_face(stack)
    r = await stack.client.post(
        f"{V1}/staff/face-enrollments/{eid}/approve", json={"reason": ""}, headers=site.admin_h
    )
    assert r.status_code == 200, r.text
    one, two = await FaceEnrollment.get(id=eid), await FaceEnrollment.get(id=eid)
    await asyncio.gather(
        faces.remove_face(stack.runtime, one, "consent_withdrawn", "resident", 1),
        faces.remove_face(stack.runtime, two, "blocked", "staff", 2),
    )
    assert await _library_changes(eid) == ["add", "remove"]
    assert await FaceRecord.filter(enrollment_id=eid, action="face.removed").count() == 1
    assert await FaceRecord.filter(enrollment_id=eid, action="embedding.deleted").count() == 1

    # A reviewer approves while the resident withdraws consent: whichever comes first,
    # the face ends removed, and never left on a terminal.
    site, eid = await _pending_face(stack)
    consents = (await site.resident.get(f"{V1}/me/face/consents")).json()["items"]
    gate_consent = next(c for c in consents if c["purpose"] == "gate_entry")
    approve, withdraw = await asyncio.gather(
        stack.client.post(
            f"{V1}/staff/face-enrollments/{eid}/approve", json={"reason": ""}, headers=site.admin_h
        ),
        site.resident.post(f"{V1}/me/face/consents/{gate_consent['id']}/withdraw"),
    )
    assert withdraw.status_code == 200, withdraw.text
    assert approve.status_code in (200, 403, 409), approve.text
    assert (await FaceEnrollment.get(id=eid)).state.value == "removed"
    assert await _library_changes(eid) in ([], ["add", "remove"])
    assert await FaceRecord.filter(enrollment_id=eid, action="face.removed").count() == 1


async def test_account_deletion_ends_everything_and_the_face_at_once(stack: Stack) -> None:
    from models import FaceConsent, RefreshToken

    home = await _home(stack)
    rid = home.site.resident_id
    pid = f"f{home.enrollment_id}"
    async with simulator(stack, home.gate) as gate, simulator(stack, home.barrier) as barrier:
        await eventually(lambda: pid in gate.library)
        r = await home.a.delete(f"{V1}/me")
        assert r.status_code == 200, r.text
        assert r.json()["communities"] == [home.site.world.community.id]
        # The face leaves the terminal now, not after a grace period.
        await eventually(lambda: pid not in gate.library)
        await gate.scan_qr(home.pass_["token"])
        assert (await _last(home.gate["id"], 1)).reason == "pass_revoked"
        await gate.swipe_card("A-1")
        assert (await _last(home.gate["id"], 2)).result.value == "denied"
        await gate.capture_face(embedding=embedding("obama2"))
        assert (await _last(home.gate["id"], 3)).reason == "unknown_person"
        await barrier.read_plate(PLATE)
        assert (await _last(home.barrier["id"], 1)).reason == "unknown_plate"
        assert not gate.opened and not barrier.opened
    d = await Departure.get(resident_id=rid)
    assert d.kind.value == "account_deleted" and d.finished_at is not None
    face = await FaceEnrollment.get(id=home.enrollment_id)
    assert face.state.value == "removed" and face.embedding_enc is None
    assert not await FaceConsent.exists(resident_id=rid, withdrawn_at=None)
    gone = await Resident.get(id=rid)
    assert (gone.openid, gone.name, gone.phone) == (None, "", None) and gone.deleted_at
    assert not await RefreshToken.exists(subject_type="resident", subject_id=rid, revoked_at=None)
    assert (await home.a.get(f"{V1}/me")).status_code == 401
    assert (await home.a.delete(f"{V1}/me")).status_code == 401
    # B, who stays, was told and offered a new code.
    b_id = (await Resident.get(openid=home.b.openid)).id
    await until(lambda: Notification.exists(recipient_id=b_id, event_type="household_member_left"))


async def test_a_block_ends_everything_in_the_community_at_once(stack: Stack) -> None:
    home = await _home(stack)
    rid, cid = home.site.resident_id, home.site.world.community.id
    pid = f"f{home.enrollment_id}"
    async with (
        simulator(stack, home.gate) as gate,
        simulator(stack, home.barrier) as barrier,
        simulator(stack, home.offline_gate, **home.offline_cfg()) as off,
    ):
        await eventually(lambda: pid in gate.library and pid in off.library)
        off.go_offline()
        r = await stack.client.post(
            f"{V1}/staff/communities/{cid}/residents/{rid}/block",
            json={"blocked": True, "reason": "安全原因"},
            headers=home.site.admin_h,
        )
        assert r.status_code == 200, r.text
        d = await Departure.get(resident_id=rid)
        assert d.kind.value == "blocked" and d.finished_at is not None
        assert d.summary["passes_revoked"] == [home.pass_["id"]]
        # The face leaves the online terminal now; the offline one on its return.
        await eventually(lambda: pid not in gate.library)
        await gate.scan_qr(home.pass_["token"])
        assert (await _last(home.gate["id"], 1)).reason == "pass_revoked"
        await gate.swipe_card("A-1")
        assert (await _last(home.gate["id"], 2)).result.value == "denied"
        await gate.capture_face(embedding=embedding("obama2"))
        assert (await _last(home.gate["id"], 3)).reason == "unknown_person"
        await barrier.read_plate(PLATE)
        assert (await _last(home.barrier["id"], 1)).reason == "unknown_plate"
        # A block is per community: the account stays, this community's doors are no
        # longer theirs (like any door of a community they do not live in).
        r = await home.a.post(f"{V1}/doors/{home.gate['id']}/open")
        assert r.status_code == 404, r.text
        await off.go_online()
        await eventually(lambda: pid not in off.library)
        await until(lambda: _acked(home.pass_["id"], home.offline_gate["id"]))
        _, verdict = await off.scan_qr(home.pass_["token"])
        assert verdict is not None and verdict.reason == "revoked"
        assert not gate.opened and not barrier.opened and not off.opened
    face = await FaceEnrollment.get(id=home.enrollment_id)
    assert face.state.value == "removed" and face.removed_reason == "blocked"


async def test_moving_back_in_cancels_the_deletion_only_with_valid_consent(stack: Stack) -> None:
    from models import FaceConsent, FaceRecord

    for consent_valid in (True, False):
        home = await _home(stack, with_b=False)
        pid = f"f{home.enrollment_id}"
        r = await _move_out(stack, home)
        assert r.status_code == 200, r.text
        assert (await FaceEnrollment.get(id=home.enrollment_id)).purge_after is not None
        if not consent_valid:
            # A withdrawal whose removal a crash interrupted: the consent is gone.
            await FaceConsent.filter(resident_id=home.site.resident_id).update(
                withdrawn_at=home.site.world.community.created_at
            )
        r = await home.a.join(home.room_id, "owner")
        assert r.status_code == 201, r.text
        r = await stack.client.post(
            f"{V1}/staff/memberships/{r.json()['id']}/approve",
            json={"reason": ""},
            headers=home.site.admin_h,
        )
        assert r.status_code == 200, r.text
        face = await FaceEnrollment.get(id=home.enrollment_id)
        if consent_valid:
            assert face.state.value == "approved" and face.purge_after is None
            assert await FaceRecord.exists(enrollment_id=face.id, action="purge.cancelled")
            async with simulator(stack, home.gate) as gate:
                await eventually(lambda g=gate, p=pid: p in g.library)
                await gate.capture_face(embedding=embedding("obama2"))
                opening = await gate.wait_opened()
                assert opening.person_id == pid
        else:
            assert face.state.value == "removed" and face.removed_reason == "consent_missing"
            async with simulator(stack, home.gate) as gate:
                await eventually(gate.library_synced.is_set)
                assert pid not in gate.library
