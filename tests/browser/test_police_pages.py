"""The police-link console pages in a real browser: the security officer's alerts (with
the capture) and outsider tracing, zh and en, accessible and usable on a phone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from anxin.clock import utcnow
from domain.access.snapshots import snapshot_store
from models import (
    AccessEvent,
    AccessMethod,
    AccessResult,
    Device,
    DeviceKind,
    PoliceAlert,
    StaffRoleName,
    TraceQuery,
)
from tests.browser.support import PHONE, assert_accessible, assert_fits, shot, sign_in
from tests.helpers import make_staff, make_world
from tests.police_helpers import jpeg
from tests.stack import Stack


async def test_security_officer_handles_an_alert_and_traces(stack: Stack, open_page: Any) -> None:
    world = await make_world()
    cid = world.community.id
    officer = await make_staff(world.community, StaffRoleName.SECURITY)
    gate = await Device.create(
        device_uid=f"bgate-{cid}",
        community=world.community,
        kind=DeviceKind.FACE_GATE,
        name="东门人脸门禁",
        place="东门",
        methods=["face"],
    )
    ref = snapshot_store(stack.settings).save(cid, "browser", jpeg(7, 160))
    event = await AccessEvent.create(
        community_id=cid,
        device_id=gate.id,
        method=AccessMethod.QR,
        result=AccessResult.GRANTED,
        reason="delivery_pass",
        snapshot_ref=ref,
        occurred_at=utcnow() - timedelta(minutes=5),
    )
    await PoliceAlert.create(
        agreement_id=1,
        community_id=cid,
        notification_id=f"browser-{cid}",
        title="布控人员",
        access_event_id=event.id,
        device_id=gate.id,
    )
    for lang in ("zh", "en"):
        page = await open_page(lang=lang)
        await sign_in(page, officer.username)
        await page.goto(f"/console/c/{cid}/police-alerts")
        await page.wait_for_selector("img.snapshot")
        assert await page.evaluate("document.querySelector('img.snapshot').naturalWidth") == 160
        await assert_accessible(page, "police alerts")
        await shot(page, "police-alerts", lang, stack.backend)
        await page.goto(f"/console/c/{cid}/trace")
        now = utcnow().astimezone()
        await page.fill("input[name=since]", (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
        await page.fill("input[name=until]", (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
        await page.fill("input[name=reason]", "浏览器排查测试")
        await page.fill("input[name=case_no]", f"B-{lang}")
        await page.click("form.stack button[type=submit]")
        await page.wait_for_load_state("domcontentloaded")
        assert "东门" in await page.inner_text("main")
        await assert_accessible(page, "tracing")
        await shot(page, "police-trace", lang, stack.backend)
        await page.set_viewport_size(PHONE)
        await assert_fits(page, "tracing on a phone")
    assert await TraceQuery.filter(community_id=cid, case_no__in=["B-zh", "B-en"]).count() == 2
