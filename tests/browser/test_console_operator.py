"""An operator sets up a second community and its first staff member, who signs in."""

from __future__ import annotations

from typing import Any

from models import Community, StaffAccount, StaffRole, StaffRoleName
from tests.browser.support import PHONE, TABLET, assert_accessible, assert_fits, shot, sign_in
from tests.helpers import make_staff, make_world
from tests.stack import Stack


async def test_operator_creates_a_community_and_its_first_staff_member(
    stack: Stack, open_page: Any
) -> None:
    world = await make_world()
    operator = await make_staff(world.community)
    operator.is_operator = True
    await operator.save(update_fields=["is_operator"])
    page = await open_page()
    await sign_in(page, operator.username)
    assert page.url.endswith("/console/ops/")
    await page.wait_for_selector(f"#overview tr[data-community='{world.community.id}']")
    await assert_accessible(page, "overview")
    await shot(page, "setup-ops-overview", "zh", stack.backend)
    for size in (TABLET, PHONE):
        await page.set_viewport_size(size)
        await assert_fits(page, f"overview at {size['width']}px")
    await page.set_viewport_size({"width": 1280, "height": 800})

    name = f"第二小区-{world.community.id}"
    await page.click("nav >> text=小区管理")
    form = page.locator("#new-community")
    await form.locator("input[name=city]").fill("示范市")
    await form.locator("input[name=name]").fill(name)
    await form.locator("input[name=name_en]").fill("Second Garden")
    await form.locator("button[type=submit]").click()
    await page.wait_for_selector(".flash-ok")
    community = await Community.get(name=name)
    assert await page.locator(f"#communities tr[data-community='{community.id}']").count() == 1
    await assert_accessible(page, "communities")
    await shot(page, "setup-ops-communities", "zh", stack.backend)

    await page.click("nav >> text=账号管理")
    form = page.locator("#new-staff")
    username = f"wang.admin{community.id}"
    await form.locator("input[name=username]").fill(username)
    await form.locator("input[name=display_name]").fill("王管理")
    await form.locator("select[name=community_id]").select_option(str(community.id))
    await form.locator("input[value=admin]").check()
    await form.locator("button[type=submit]").click()
    password = (await page.inner_text("[data-password]")).strip()
    assert len(password) >= 12
    staff = await StaffAccount.get(username=username)
    roles = await StaffRole.filter(staff=staff).values_list("community_id", "role")
    assert roles == [(community.id, StaffRoleName.ADMIN)]

    # The new admin signs in (their own browser) and lands on the new community.
    theirs = await open_page(lang="en")
    await sign_in(theirs, username, password)
    assert theirs.url.endswith(f"/console/c/{community.id}/")
    assert await theirs.inner_text("h1") == "Community at a glance"
    assert await theirs.locator("nav >> text=Staff").count() == 1
    # ... and sees nothing of the first community.
    r = await theirs.goto(f"/console/c/{world.community.id}/")
    assert r.status == 404
