"""Console sign-in, session cookie, CSRF, CSP and language switch (HTTP level)."""

from __future__ import annotations

from models import AuditLog, StaffRoleName
from tests.console_helpers import anonymous_client, console_client, csrf_of
from tests.helpers import STAFF_PASSWORD, make_staff, make_world
from tests.stack import Stack


async def test_sign_in_sets_a_strict_http_only_cookie_and_a_strict_csp(stack: Stack) -> None:
    world = await make_world()
    staff = await make_staff(world.community, StaffRoleName.ADMIN)
    async with console_client(stack, staff.username) as (client, _):
        r = await client.get("/console/login")
        r = await client.post(
            "/console/login",
            data={
                "username": staff.username,
                "password": STAFF_PASSWORD,
                "csrf_token": csrf_of(r.text),
            },
        )
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
        page = await client.get(f"/console/c/{world.community.id}/")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "<script>" not in page.text and " style=" not in page.text
        assert "小区概况" in page.text


async def test_wrong_password_locks_out_like_the_api(stack: Stack) -> None:
    world = await make_world()
    staff = await make_staff(world.community, StaffRoleName.GUARD)
    async with anonymous_client(stack) as fresh:
        statuses = []
        for _ in range(6):
            form = await fresh.get("/console/login")
            r = await fresh.post(
                "/console/login",
                data={
                    "username": staff.username,
                    "password": "wrong",
                    "csrf_token": csrf_of(form.text),
                },
            )
            statuses.append(r.status_code)
        assert statuses[0] == 401 and statuses[-1] == 429
        form = await fresh.get("/console/login")
        r = await fresh.post(
            "/console/login",
            data={
                "username": staff.username,
                "password": STAFF_PASSWORD,
                "csrf_token": csrf_of(form.text),
            },
        )
        assert r.status_code == 429  # locked even with the right password
    assert await AuditLog.filter(action="staff.login_failed", actor_id=staff.id).count() >= 5


async def test_sign_in_form_without_its_token_is_refused(stack: Stack) -> None:
    world = await make_world()
    staff = await make_staff(world.community, StaffRoleName.GUARD)
    r = await stack.client.post(
        "/console/login", data={"username": staff.username, "password": STAFF_PASSWORD}
    )
    assert r.status_code == 403 and "anxin_console=" not in r.headers.get("set-cookie", "")


async def test_pages_need_a_session_and_sign_out_ends_it(stack: Stack) -> None:
    world = await make_world()
    staff = await make_staff(world.community, StaffRoleName.APPROVER)
    r = await stack.client.get(f"/console/c/{world.community.id}/")
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")
    async with console_client(stack, staff.username) as (client, csrf):
        assert (await client.post("/console/logout")).status_code == 403  # no token
        assert (await client.get(f"/console/c/{world.community.id}/")).status_code == 200
        r = await client.post("/console/logout", data={"csrf_token": csrf})
        assert r.status_code == 303
        r = await client.get(f"/console/c/{world.community.id}/")
        assert r.status_code == 303


async def test_a_disabled_account_loses_its_session_at_once(stack: Stack) -> None:
    world = await make_world()
    staff = await make_staff(world.community, StaffRoleName.GUARD)
    async with console_client(stack, staff.username) as (client, _):
        staff.is_active = False
        await staff.save(update_fields=["is_active"])
        r = await client.get(f"/console/c/{world.community.id}/")
        assert r.status_code == 303


async def test_another_communitys_pages_do_not_exist(stack: Stack) -> None:
    world, other = await make_world(), await make_world()
    staff = await make_staff(world.community, StaffRoleName.ADMIN)
    async with console_client(stack, staff.username) as (client, _):
        r = await client.get(f"/console/c/{other.community.id}/")
        assert r.status_code == 404
        r = await client.get(f"/console/c/{other.community.id}/charts.json")
        assert r.status_code == 404


async def test_language_switch_and_open_redirects(stack: Stack) -> None:
    r = await stack.client.get("/console/lang/en?next=/console/login")
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert "anxin_lang=en" in r.headers["set-cookie"]
    r = await stack.client.get("/console/login", headers={"cookie": "anxin_lang=en"})
    assert "Staff sign-in" in r.text
    for evil in ("https://evil.example/", "//evil.example/", "/console/\\evil"):
        r = await stack.client.get("/console/lang/zh", params={"next": evil})
        assert r.headers["location"] == "/console/"
