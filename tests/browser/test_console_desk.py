"""The property desk in a real browser: approvals, the live access log with snapshots,
alarms, and a guard opening a door."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from models import (
    AccessEvent,
    AccessMethod,
    Alarm,
    AlarmState,
    AuditLog,
    EnrollmentState,
    FaceEnrollment,
    Membership,
    MembershipState,
    StaffRoleName,
)
from tests.browser.support import PHONE, assert_accessible, assert_fits, shot, sign_in
from tests.devices import register_device, simulator
from tests.face_data import photo_bytes
from tests.helpers import approved_resident, make_staff, make_world, new_resident, staff_headers
from tests.stack import Stack
from tests.test_faces_support import consent_all, embedding, eventually, upload


def jpeg(color: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (160, 120), color).save(buf, "JPEG")
    return buf.getvalue()


async def test_approver_approves_watches_the_gate_and_acknowledges_an_alarm(
    stack: Stack, open_page: Any
) -> None:
    world = await make_world()
    cid = world.community.id
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    # A membership request and a face enrollment, both made through the API.
    newcomer = await new_resident(stack)
    r = await newcomer.join(world.rooms[1].id, "tenant")
    assert r.status_code == 201, r.text
    membership_id = r.json()["id"]
    owner = await approved_resident(stack, world.rooms[0], admin_h)
    assert (await consent_all(owner, cid)).status_code == 201
    r = await upload(owner, cid, photo_bytes("person_b_1"))
    assert r.status_code == 201, r.text
    enrollment_id = r.json()["id"]

    # The desk: approver and guard roles (the access log and alarms are a guard's).
    desk = await make_staff(world.community, StaffRoleName.APPROVER, StaffRoleName.GUARD)
    page = await open_page()
    await sign_in(page, desk.username)
    await page.click("nav >> text=审核")
    await page.wait_for_selector(f"[data-membership='{membership_id}']")
    photo = page.locator(f"[data-enrollment='{enrollment_id}'] img")
    await photo.wait_for()
    assert await photo.evaluate("img => img.complete && img.naturalWidth > 0")
    assert "合格" in await page.inner_text(f"[data-enrollment='{enrollment_id}']")
    await assert_accessible(page, "approvals")
    await shot(page, "desk-approvals", "zh", stack.backend)

    # A rejection needs a reason: nothing changes without one.
    item = page.locator(f"[data-membership='{membership_id}']")
    await item.locator("button[value=reject]").click()
    await page.wait_for_selector("#flash .flash-error")
    assert (await Membership.get(id=membership_id)).state == MembershipState.PENDING
    await item.locator("button[value=approve]").click()
    await item.locator("text=已批准").wait_for()
    assert (await Membership.get(id=membership_id)).state == MembershipState.APPROVED
    face = page.locator(f"[data-enrollment='{enrollment_id}']")
    await face.locator("button[value=approve]").click()
    await face.locator("text=已批准").wait_for()
    assert (await FaceEnrollment.get(id=enrollment_id)).state == EnrollmentState.APPROVED

    # The access log, live: a gate recognises the owner; the row appears with its snapshot.
    gate = await register_device(stack, cid, admin_h, kind="face_gate", name="南门闸机")
    await page.click("nav >> text=通行记录")
    await page.wait_for_selector("[data-live-status]")
    async with simulator(stack, gate) as sim:
        await eventually(lambda: sim.library.version > 0)
        await sim.capture_face(embedding=embedding("person_b_2"), snapshot=jpeg())
        await sim.wait_opened()
        row = page.locator("#access-rows tr[data-event]").first
        await row.wait_for(timeout=15_000)
        text = await row.inner_text()
        assert "南门闸机" in text and "放行" in text and "住户通行" in text, text
        thumb = row.locator("img.thumb")
        await thumb.wait_for()
        await page.wait_for_function(
            "() => { const i = document.querySelector('#access-rows img.thumb');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        await assert_accessible(page, "access log")
        await shot(page, "desk-access-log", "zh", stack.backend)
        await page.set_viewport_size(PHONE)
        await assert_fits(page, "access log on a phone")
        await page.set_viewport_size({"width": 1280, "height": 800})

        # CSV export of what the filters show
        async with page.expect_download() as download_info:
            await page.click("text=导出 CSV")
        download = await download_info.value
        content = (await download.path()).read_text(encoding="utf-8-sig")
        assert "南门闸机" in content and "住户通行" in content

        # An alarm: the door is forced; the guard acknowledges it.
        await sim.door_forced()

        async def forced() -> Alarm | None:
            return await Alarm.filter(community_id=cid).first()

        alarm = await eventually(forced)
    await page.click("nav >> text=告警")
    item = page.locator(f"[data-alarm='{alarm.id}']")
    await item.wait_for()
    assert "门被强行打开" in await item.inner_text()
    await assert_accessible(page, "alarms")
    await shot(page, "desk-alarms", "zh", stack.backend)
    await item.locator("input[name=note]").fill("保安已到场")
    await item.locator("button[value=acknowledged]").click()
    await item.locator("text=已确认").wait_for()
    alarm = await Alarm.get(id=alarm.id)
    assert alarm.state == AlarmState.ACKNOWLEDGED and alarm.handled_by_id == desk.id
    assert alarm.note == "保安已到场"


async def test_a_guard_opens_a_door_with_a_reason(stack: Stack, open_page: Any) -> None:
    world = await make_world()
    cid = world.community.id
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    gate = await register_device(stack, cid, admin_h, kind="face_gate", name="北门闸机")
    guard = await make_staff(world.community, StaffRoleName.GUARD)
    async with simulator(stack, gate) as sim:
        page = await open_page()
        await sign_in(page, guard.username)
        await page.click("nav >> text=设备")
        item = page.locator(f"[data-device='{gate['id']}']")
        await item.wait_for()
        assert await item.locator("button:has-text('轮换凭证')").count() == 0  # admin only
        await assert_accessible(page, "devices")
        await shot(page, "desk-devices", "zh", stack.backend)
        await item.locator("input[name=reason]").fill("快递员无手机，核实后放行")
        await item.locator("button:has-text('立即开门')").click()
        await page.wait_for_selector("#flash .flash-ok")
        opening = await sim.wait_opened()
        assert opening.reason == "staff_open"
    event = await AccessEvent.filter(device_id=gate["id"], method=AccessMethod.STAFF).first()
    assert event is not None and event.reason == "staff_open"
    audit = await AuditLog.filter(action="door.staff_open", actor_id=guard.id).first()
    assert audit is not None and audit.details["reason"] == "快递员无手机，核实后放行"
    assert audit.details["access_event_id"] == event.id
