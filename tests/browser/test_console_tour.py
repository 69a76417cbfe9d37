"""Every main screen, in Chinese and English, with a week of history behind it: it
renders, passes axe-core (no serious or critical issue), fits a phone, and is saved as a
screenshot (artifacts/screenshots/<backend>/<lang>/)."""

from __future__ import annotations

from typing import Any

from boot.demo_history import seed_history
from models import Device, DeviceKind, Membership, MembershipState, StaffRoleName
from tests.browser.support import PHONE, assert_accessible, assert_fits, shot, sign_in
from tests.helpers import make_staff, make_world
from tests.stack import Stack

COMMUNITY_PAGES = [
    ("home", ""),
    ("approvals", "approvals"),
    ("residents", "residents"),
    ("access", "access"),
    ("alarms", "alarms"),
    ("devices", "devices"),
    ("visitors", "visitors"),
    ("passes", "passes"),
    ("blocklist", "blocklist"),
    ("notices", "notices"),
    ("setup", "setup"),
    ("staff", "staff"),
    ("audit", "audit"),
]
OPERATOR_PAGES = [("ops-overview", ""), ("ops-communities", "communities"), ("ops-staff", "staff")]
ON_A_PHONE = {"home", "approvals", "access", "residents", "ops-overview"}


async def test_every_main_screen_in_both_languages(stack: Stack, open_page: Any) -> None:
    world = await make_world(buildings=2, units=2, rooms_per_unit=12)
    cid = world.community.id
    for uid, kind, name in (
        ("gate", DeviceKind.FACE_GATE, "南门人脸闸机"),
        ("unit", DeviceKind.FACE_GATE, "1栋1单元门"),
        ("car", DeviceKind.BARRIER_GATE, "车行道闸"),
    ):
        await Device.create(
            device_uid=f"tour-{cid}-{uid}",
            community_id=cid,
            kind=kind,
            name=name,
            methods=["face", "card", "qr", "remote"],
        )
    assert await seed_history(cid) > 1000
    admin = await make_staff(world.community, StaffRoleName.ADMIN)
    admin.display_name = "物业管理员"
    await admin.save(update_fields=["display_name"])
    operator = await make_staff(world.community)
    operator.is_operator = True
    await operator.save(update_fields=["is_operator"])
    member = await Membership.filter(community_id=cid, state=MembershipState.APPROVED).first()
    assert member is not None
    pages = [*COMMUNITY_PAGES, ("resident", f"residents/{member.resident_id}")]

    for lang in ("zh", "en"):
        page = await open_page(lang=lang)
        await sign_in(page, admin.username)
        for name, path in pages:
            await page.goto(f"/console/c/{cid}/{path}")
            assert await page.locator("h1").count() == 1, name
            if name == "home":
                await page.wait_for_selector("[data-chart='by_hour'][data-ready='1'] svg")
                await page.wait_for_selector("[data-chart='refusals'][data-ready='1'] svg")
            await assert_accessible(page, f"{name} ({lang})")
            await shot(page, name, lang, stack.backend)
            if name in ON_A_PHONE:
                await page.set_viewport_size(PHONE)
                await assert_fits(page, f"{name} on a phone ({lang})")
                await shot(page, f"{name}-phone", lang, stack.backend)
                await page.set_viewport_size({"width": 1280, "height": 800})
        ops = await open_page(lang=lang)
        await sign_in(ops, operator.username)
        for name, path in OPERATOR_PAGES:
            await ops.goto(f"/console/ops/{path}")
            await assert_accessible(ops, f"{name} ({lang})")
            await shot(ops, name, lang, stack.backend)
        await ops.set_viewport_size(PHONE)
        await ops.goto("/console/ops/")
        await assert_fits(ops, f"overview on a phone ({lang})")
        await shot(ops, "ops-overview-phone", lang, stack.backend)
