"""The console in a real browser: sign in, the home page with its charts, zh and en."""

from __future__ import annotations

from typing import Any

from models import StaffRoleName
from tests.browser.support import PHONE, TABLET, assert_accessible, assert_fits, shot, sign_in
from tests.helpers import make_staff, make_world
from tests.stack import Stack


async def test_admin_signs_in_and_sees_the_home_page(stack: Stack, open_page: Any) -> None:
    world = await make_world()
    admin = await make_staff(world.community, StaffRoleName.ADMIN)
    for lang in ("zh", "en"):
        page = await open_page(lang=lang)
        await page.goto("/console/login")
        await assert_accessible(page, "sign-in")
        await shot(page, "login", lang, stack.backend)
        await sign_in(page, admin.username)
        assert page.url.endswith(f"/console/c/{world.community.id}/")
        heading = await page.inner_text("h1")
        assert heading == ("小区概况" if lang == "zh" else "Community at a glance")
        await page.wait_for_selector("[data-chart='by_hour'][data-ready='1'] svg")
        await assert_accessible(page, "home")
        await shot(page, "first-home", lang, stack.backend)
    for size in (TABLET, PHONE):
        await page.set_viewport_size(size)
        await assert_fits(page, f"home at {size['width']}px")
    await shot(page, "first-home-phone", lang, stack.backend)
