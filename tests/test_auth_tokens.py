"""Tokens: rotation, replay, logout, expiry, tampering, blocking; staff passwords and lockout;
binding a phone number (merging a resident staff imported earlier)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import jwt
import pytest
from argon2 import PasswordHasher

from anxin.clock import clock
from domain.identity.service import (
    STAFF_LOGIN_LOCK_S,
    STAFF_LOGIN_MAX_FAILURES,
    STAFF_LOGIN_MAX_FAILURES_ACCOUNT,
    login_failure_key,
)
from miniprogram_mock.client import MiniProgram
from models import (
    AuditLog,
    Membership,
    MembershipState,
    RefreshToken,
    Resident,
    StaffAccount,
    StaffRole,
    StaffRoleName,
)
from tests.helpers import (
    STAFF_PASSWORD,
    World,
    approved_resident,
    error_code,
    make_staff,
    make_world,
    new_resident,
    staff_headers,
)
from tests.stack import Stack


@dataclass
class Env:
    world: World
    admin: StaffAccount
    admin_h: dict[str, str]


@pytest.fixture(scope="module")
async def env(stack: Stack) -> AsyncIterator[Env]:
    world = await make_world(units=1, rooms_per_unit=6)
    admin = await make_staff(world.community, StaffRoleName.ADMIN)
    yield Env(world, admin, await staff_headers(stack, admin))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def family_of(refresh_token: str) -> list[RefreshToken]:
    from auth.tokens import _hash

    row = await RefreshToken.get(token_hash=_hash(refresh_token))
    return await RefreshToken.filter(family=row.family).order_by("id")


# --- rotation, replay, logout --------------------------------------------------------


async def test_refresh_rotates_and_old_token_is_spent(stack: Stack) -> None:
    app = await new_resident(stack)
    first = app.refresh_token
    r = await app.refresh()
    assert r.status_code == 200, r.text
    assert app.refresh_token != first
    assert (await app.get("/api/v1/me")).status_code == 200
    rows = await family_of(first)
    assert len(rows) == 2 and rows[0].used_at is not None and rows[1].used_at is None


async def test_replayed_refresh_token_revokes_whole_family(stack: Stack) -> None:
    app = await new_resident(stack)
    stolen = app.refresh_token
    assert (await app.refresh()).status_code == 200
    current = app.refresh_token
    other_login = await new_resident(stack)  # another person's login is untouched

    r = await stack.client.post("/api/v1/auth/refresh", json={"refresh_token": stolen})
    assert r.status_code == 401 and error_code(r) == "refresh_token_reused"
    assert r.headers["www-authenticate"] == "Bearer"

    # The legitimate holder's newer token died with the family: log in again.
    r = await stack.client.post("/api/v1/auth/refresh", json={"refresh_token": current})
    assert r.status_code == 401 and error_code(r) == "refresh_token_invalid"
    rows = await family_of(stolen)
    assert all(row.revoked_at is not None for row in rows)
    assert {row.revoked_reason for row in rows if row.used_at is None} == {"reuse_detected"}
    assert (await other_login.refresh()).status_code == 200


async def test_logout_revokes_this_login_only(stack: Stack) -> None:
    phone = await new_resident(stack)
    tablet = await login_again(stack, phone.openid)  # same person, second device
    r = await stack.client.post("/api/v1/auth/logout", json={"refresh_token": phone.refresh_token})
    assert r.status_code == 200 and r.json() == {"ok": True}
    r = await phone.refresh()
    assert r.status_code == 401 and error_code(r) == "refresh_token_invalid"
    assert {row.revoked_reason for row in await family_of(phone.refresh_token or "")} == {"logout"}
    assert (await tablet.refresh()).status_code == 200
    # Logging out twice, or with an unknown token, is harmless.
    for token in (phone.refresh_token, "rt_unknown"):
        again = await stack.client.post("/api/v1/auth/logout", json={"refresh_token": token})
        assert again.status_code == 200


async def login_again(stack: Stack, openid: str | None) -> MiniProgram:
    app = MiniProgram(stack.client, stack.wechat_url, openid=openid)
    await app.login()
    return app


async def test_concurrent_refresh_with_one_token_lets_one_win(stack: Stack) -> None:
    import asyncio

    app = await new_resident(stack)
    body = {"refresh_token": app.refresh_token}
    results = await asyncio.gather(
        *(stack.client.post("/api/v1/auth/refresh", json=body) for _ in range(2))
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses[0] == 200 and statuses[1] == 401, [r.text for r in results]


# --- expiry and tampering ------------------------------------------------------------


async def test_expired_access_token_then_refresh(stack: Stack) -> None:
    app = await new_resident(stack)
    clock.advance(stack.settings.access_token_ttl_s + 1)
    r = await app.get("/api/v1/me")
    assert r.status_code == 401 and error_code(r) == "token_expired"
    assert r.json()["error"]["message_zh"] == "登录已过期，请重新登录"
    assert (await app.refresh()).status_code == 200
    assert (await app.get("/api/v1/me")).status_code == 200


async def test_expired_refresh_token(stack: Stack) -> None:
    app = await new_resident(stack)
    clock.advance(stack.settings.refresh_token_ttl_s + 1)
    r = await app.refresh()
    assert r.status_code == 401 and error_code(r) == "refresh_token_expired"


def flip(char: str) -> str:
    return "A" if char != "A" else "B"


def _forge(stack: Stack, secret: str | None = None, **claims: object) -> str:
    payload: dict[str, object] = {
        "iss": "anxin",
        "sub": "resident:1",
        "typ": "access",
        "iat": int(clock.time()),
        "exp": int(clock.time()) + 600,
        "jti": "x",
    }
    payload.update(claims)
    return jwt.encode(payload, secret or stack.settings.jwt_secret, algorithm="HS256")


async def test_tampered_and_forged_tokens_are_refused(stack: Stack) -> None:
    app = await new_resident(stack)
    good = app.access_token
    assert good is not None
    header, payload, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    resident_id = int(claims["sub"].split(":")[1])
    other_payload = (
        base64.urlsafe_b64encode(json.dumps({**claims, "sub": "staff:1"}).encode())
        .rstrip(b"=")
        .decode()
    )
    none_alg = (
        base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        + "."
        + payload
        + "."
    )
    bad = {
        "flipped signature": f"{header}.{payload}.{sig[:-2]}{flip(sig[-2])}{sig[-1]}",
        "swapped payload": f"{header}.{other_payload}.{sig}",
        "alg none": none_alg,
        "other secret": _forge(
            stack, "another-secret-entirely-32-bytes!", sub=f"resident:{resident_id}"
        ),
        "refresh typ": _forge(stack, typ="refresh", sub=f"resident:{resident_id}"),
        "unknown subject kind": _forge(stack, sub=f"admin:{resident_id}"),
        "non-numeric id": _forge(stack, sub="resident:abc"),
        "no exp": jwt.encode(
            {"iss": "anxin", "sub": f"resident:{resident_id}", "typ": "access"},
            stack.settings.jwt_secret,
            algorithm="HS256",
        ),
        "wrong issuer": _forge(stack, iss="evil", sub=f"resident:{resident_id}"),
        "refresh token as bearer": app.refresh_token or "",
        "garbage": "not-a-jwt",
    }
    for what, token in bad.items():
        r = await stack.client.get("/api/v1/me", headers=bearer(token))
        assert r.status_code == 401, (what, r.text)
        assert error_code(r) == "token_invalid", (what, r.text)
    # A forged token for a subject that does not exist is refused too.
    r = await stack.client.get(
        "/api/v1/me", headers=bearer(_forge(stack, sub="resident:2147483000"))
    )
    assert r.status_code == 401 and error_code(r) == "token_invalid"
    # The untouched token still works: the refusals above were about the tampering.
    assert (await stack.client.get("/api/v1/me", headers=bearer(good))).status_code == 200


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"]
)
async def test_missing_or_malformed_authorization(stack: Stack, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    r = await stack.client.get("/api/v1/me", headers=headers)
    assert r.status_code == 401 and error_code(r) == "unauthorized"


# --- staff decisions that end sessions -----------------------------------------------


async def test_deactivated_staff_and_removed_role_count_at_once(stack: Stack, env: Env) -> None:
    staff = await make_staff(env.world.community, StaffRoleName.GUARD, StaffRoleName.APPROVER)
    login = await stack.client.post(
        "/api/v1/auth/staff/login", json={"username": staff.username, "password": STAFF_PASSWORD}
    )
    tokens = login.json()
    h = bearer(tokens["access_token"])
    tree = f"/api/v1/staff/communities/{env.world.community.id}/tree"
    queue = f"/api/v1/staff/communities/{env.world.community.id}/memberships"
    assert (await stack.client.get(tree, headers=h)).status_code == 200

    # A role taken away counts on the next request, not when the token expires.
    await StaffRole.filter(staff_id=staff.id, role=StaffRoleName.APPROVER).delete()
    me = await stack.client.get("/api/v1/me", headers=h)
    assert me.json()["roles"] == {str(env.world.community.id): ["guard"]}
    await StaffRole.filter(staff_id=staff.id).delete()
    r = await stack.client.get(queue, headers=h)
    assert r.status_code == 404 and error_code(r) == "not_found"

    staff.is_active = False
    await staff.save(update_fields=["is_active"])
    r = await stack.client.get("/api/v1/me", headers=h)
    assert r.status_code == 401 and error_code(r) == "token_invalid"
    r = await stack.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert r.status_code == 401
    assert not await RefreshToken.filter(
        subject_type="staff", subject_id=staff.id, revoked_at=None
    ).exists()
    r = await stack.client.post(
        "/api/v1/auth/staff/login", json={"username": staff.username, "password": STAFF_PASSWORD}
    )
    assert r.status_code == 401 and error_code(r) == "invalid_credentials"


# --- staff passwords -----------------------------------------------------------------


async def test_staff_login_wrong_password_then_lockout(stack: Stack, env: Env) -> None:
    staff = await make_staff(env.world.community, StaffRoleName.GUARD)
    url = "/api/v1/auth/staff/login"
    wrong = {"username": staff.username, "password": "not the password"}
    for i in range(1, STAFF_LOGIN_MAX_FAILURES + 1):
        r = await stack.client.post(url, json=wrong)
        assert r.status_code == 401 and error_code(r) == "invalid_credentials", i
        # The same message for a wrong password and an unknown user.
        assert r.json()["error"]["message_en"] == "wrong username or password"
    failures = await AuditLog.filter(action="staff.login_failed", actor_id=staff.id).values_list(
        "details", flat=True
    )
    assert sorted(d["failures"] for d in failures) == list(range(1, STAFF_LOGIN_MAX_FAILURES + 1))

    right = {"username": staff.username, "password": STAFF_PASSWORD}
    r = await stack.client.post(url, json=right)
    assert r.status_code == 429 and error_code(r) == "login_locked"
    # What is left of the lock, in whole seconds rounded up (the tries took a moment).
    assert STAFF_LOGIN_LOCK_S - 60 < int(r.headers["retry-after"]) <= STAFF_LOGIN_LOCK_S
    assert not await AuditLog.filter(action="staff.login", actor_id=staff.id).exists()

    # ASGI test client's address: the lock is per (username, address).
    key = login_failure_key(staff.username, "127.0.0.1")
    ttl = await stack.runtime.kv.ttl(key)
    assert 0 < ttl <= STAFF_LOGIN_LOCK_S
    if stack.backend == "sqlite":  # the in-process counter follows the service clock
        clock.advance(STAFF_LOGIN_LOCK_S + 1)
    else:  # Redis keeps its own time: let the lock lapse as its TTL would
        await stack.runtime.kv.delete(key)
    r = await stack.client.post(url, json=right)
    assert r.status_code == 200, r.text
    assert await AuditLog.filter(action="staff.login", actor_id=staff.id).exists()


async def test_lockout_from_one_address_does_not_lock_out_another(stack: Stack, env: Env) -> None:
    staff = await make_staff(env.world.community, StaffRoleName.GUARD)
    for _ in range(STAFF_LOGIN_MAX_FAILURES):
        await stack.runtime.kv.incr(login_failure_key(staff.username, "203.0.113.9"), 60)
        await stack.runtime.kv.incr(login_failure_key(staff.username), 60)
    right = {"username": staff.username, "password": STAFF_PASSWORD}
    r = await stack.client.post("/api/v1/auth/staff/login", json=right)
    assert r.status_code == 200, r.text
    # But enough failures from everywhere together lock the account itself.
    for _ in range(STAFF_LOGIN_MAX_FAILURES_ACCOUNT):
        await stack.runtime.kv.incr(login_failure_key(staff.username), 60)
    r = await stack.client.post("/api/v1/auth/staff/login", json=right)
    assert r.status_code == 429 and error_code(r) == "login_locked"


async def test_unknown_username_is_refused_like_a_wrong_password(stack: Stack) -> None:
    r = await stack.client.post(
        "/api/v1/auth/staff/login", json={"username": "nobody-here", "password": "whatever123"}
    )
    assert r.status_code == 401 and error_code(r) == "invalid_credentials"
    assert await _audit_has_username("nobody-here")


async def _audit_has_username(username: str) -> bool:
    rows = await AuditLog.filter(action="staff.login_failed", actor_id=None).values_list(
        "details", flat=True
    )
    return any(d.get("username") == username for d in rows)


async def test_staff_password_is_argon2id_and_rehashed_when_weak(stack: Stack, env: Env) -> None:
    staff = await make_staff(env.world.community, StaffRoleName.GUARD)
    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(STAFF_PASSWORD)
    staff.password_hash = weak
    await staff.save(update_fields=["password_hash"])
    r = await stack.client.post(
        "/api/v1/auth/staff/login", json={"username": staff.username, "password": STAFF_PASSWORD}
    )
    assert r.status_code == 200, r.text
    stored = (await StaffAccount.get(id=staff.id)).password_hash
    assert stored != weak and stored.startswith("$argon2id$")
    assert "m=65536" in stored  # memory-hard: 64 MiB


# --- phone number binding ------------------------------------------------------------


async def test_phone_code_is_one_time(stack: Stack) -> None:
    app = await new_resident(stack)
    code = (
        await app.wechat.post("/__mock__/phone_code", json={"phone_number": "13611112222"})
    ).json()["code"]
    r = await app.post("/api/v1/me/phone", json={"code": code})
    assert r.status_code == 200
    r = await app.post("/api/v1/me/phone", json={"code": code})
    assert r.status_code == 400 and error_code(r) == "wechat_phone_code_invalid"
    r = await app.post("/api/v1/me/phone", json={"code": "made-up"})
    assert r.status_code == 400 and error_code(r) == "wechat_phone_code_invalid"
    assert (await Resident.get(openid=app.openid)).phone == "13611112222"


async def test_membership_states_after_staff_end(stack: Stack, env: Env) -> None:
    """Move-out ends the household at once for the resident."""
    app = await approved_resident(stack, env.world.rooms[5], env.admin_h)
    mid = (await app.get("/api/v1/me/memberships")).json()["items"][0]["id"]
    r = await stack.client.post(
        f"/api/v1/staff/memberships/{mid}/end", json={"reason": "搬离"}, headers=env.admin_h
    )
    assert r.status_code == 200 and r.json()["state"] == "ended"
    assert (await Membership.get(id=mid)).state == MembershipState.ENDED
    r = await app.get(f"/api/v1/households/{env.world.rooms[5].id}/members")
    assert r.status_code == 404
