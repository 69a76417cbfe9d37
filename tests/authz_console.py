"""Who may use which console page or form: the console's authorization matrix.

`tests/test_console_authz.py` signs each role in to the console (a cookie session, as a
browser would), calls every console route as each of them, and checks the status and,
for a refusal, that nothing changed. Every form is also sent without its CSRF token by
a role that may use it: refused (403), nothing changed. The test also walks the app's
routes and fails for a console route that has no entry here.

A rule: `allow` (roles that succeed, with status `ok`), `prepare(ctx, role)` (path
params and form fields, fresh for each call), `deny` (statuses that differ from the
defaults below), `verify` (checks after an allowed call), `stream` (server-sent events:
only refusals are called, an allowed call would not end).
Defaults for refused roles: anonymous: 303 to the sign-in page for a GET, 401 for a
POST; staff of another community (OUTSIDER) and an operator with no role there: 404 on
community pages; everyone else 403.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from domain.access.snapshots import snapshot_store
from models import (
    AccessCard,
    AccessEvent,
    AccessMethod,
    AccessResult,
    Alarm,
    AlarmKind,
    AlarmState,
    BlockKind,
    BlocklistEntry,
    Device,
    DeviceKind,
    DeviceStatus,
    EnrollmentState,
    FaceEnrollment,
    Membership,
    MembershipRole,
    MembershipState,
    PassKind,
    Resident,
    ResidentBlock,
    Room,
    StaffAccount,
    StaffRole,
    StaffRoleName,
    VisitorPass,
)
from tests.helpers import World
from tests.stack import Stack

ANONYMOUS, ADMIN, APPROVER, GUARD = "anonymous", "admin", "approver", "guard"
OUTSIDER = "outsider"  # every role, in another community
OPERATOR = "operator"  # a city operator (no role in the community under test)
SECURITY = "security"  # 治安保卫: the police link's role, nothing of the property desk
ROLES = (ANONYMOUS, ADMIN, APPROVER, GUARD, SECURITY, OUTSIDER, OPERATOR)
AP = frozenset({ADMIN, APPROVER})
AG = frozenset({ADMIN, GUARD})
APG = frozenset({ADMIN, APPROVER, GUARD})
A = frozenset({ADMIN})
OP = frozenset({OPERATOR})


@dataclass
class Ctx:
    stack: Stack
    world: World
    other: World
    staff: dict[str, StaffAccount]  # role -> account


@dataclass
class Call:
    params: dict[str, Any] = field(default_factory=dict)
    form: dict[str, Any] = field(default_factory=dict)
    files: Any = None
    state: dict[str, Any] = field(default_factory=dict)


Prepare = Callable[[Ctx, str], Awaitable[Call]]
Verify = Callable[[Ctx, Call, str, httpx.Response], Awaitable[None]]


async def community(ctx: Ctx, role: str) -> Call:
    return Call(params={"cid": ctx.world.community.id})


@dataclass(frozen=True)
class Rule:
    allow: frozenset[str]
    prepare: Prepare = community
    ok: int = 200
    deny: dict[str, int] = field(default_factory=dict)
    verify: Verify | None = None
    stream: bool = False
    scope: str = "community"  # community | operator | staff

    def expected(self, method: str, role: str) -> int:
        if role in self.allow:
            return self.ok
        if role in self.deny:
            return self.deny[role]
        if role == ANONYMOUS:
            return 303 if method == "GET" else 401
        if self.scope == "community" and role in (OUTSIDER, OPERATOR):
            return 404
        return 403


def tag(n: int = 3) -> str:
    return secrets.token_hex(n)


async def resident_here(ctx: Ctx, state: MembershipState = MembershipState.APPROVED) -> Membership:
    unit = ctx.world.units[0]
    room = await Room.create(
        unit=unit, building_id=unit.building_id, community=ctx.world.community, number=tag(4)
    )
    resident = await Resident.create(name=f"住户{tag()}")
    return await Membership.create(
        resident=resident,
        room=room,
        community=ctx.world.community,
        role=MembershipRole.OWNER,
        state=state,
    )


async def device(ctx: Ctx, status: DeviceStatus = DeviceStatus.ACTIVE) -> Device:
    return await Device.create(
        device_uid=f"cx-{tag(6)}",
        community=ctx.world.community,
        kind=DeviceKind.FACE_GATE,
        name=f"门{tag()}",
        methods=["card", "remote"],
        status=status,
    )


def with_form(prepare: Prepare, **form: Any) -> Prepare:
    async def p(ctx: Ctx, role: str) -> Call:
        call = await prepare(ctx, role)
        call.form.update(form)
        return call

    return p


# --- prepare ---------------------------------------------------------------------------


async def p_pending_membership(ctx: Ctx, role: str) -> Call:
    m = await resident_here(ctx, MembershipState.PENDING)
    return Call(
        params={"cid": ctx.world.community.id, "mid": m.id},
        form={"decision": "reject", "reason": "矩阵测试"},
    )


async def v_membership(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    m = await Membership.get(id=call.params["mid"])
    assert m.state in (MembershipState.REJECTED, MembershipState.ENDED), m.state


async def p_enrollment(ctx: Ctx, role: str) -> Call:
    import tests.authz_table  # noqa: F401  (authz_faces is imported through it)
    from tests.authz_faces import _pending

    e = await _pending(ctx)  # type: ignore[arg-type]
    return Call(
        params={"cid": ctx.world.community.id, "eid": e.id},
        form={"decision": "reject", "reason": "矩阵测试"},
    )


async def v_enrollment(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert (await FaceEnrollment.get(id=call.params["eid"])).state == EnrollmentState.REJECTED


async def v_photo(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert r.headers["content-type"] == "image/jpeg" and r.content.startswith(b"\xff\xd8")


async def p_event(ctx: Ctx, role: str) -> Call:
    cid = ctx.world.community.id
    ref = snapshot_store(ctx.stack.settings).save(cid, f"cx-{tag()}", b"\xff\xd8\xff cx")
    e = await AccessEvent.create(
        community_id=cid,
        method=AccessMethod.FACE,
        result=AccessResult.DENIED,
        reason="unknown_person",
        snapshot_ref=ref,
    )
    return Call(params={"cid": cid, "eid": e.id})


async def p_alarm(ctx: Ctx, role: str) -> Call:
    a = await Alarm.create(community_id=ctx.world.community.id, kind=AlarmKind.FENCE)
    return Call(
        params={"cid": ctx.world.community.id, "alarm_id": a.id},
        form={"state": "acknowledged", "note": "矩阵测试"},
    )


async def v_alarm(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert (await Alarm.get(id=call.params["alarm_id"])).state == AlarmState.ACKNOWLEDGED


async def p_device(ctx: Ctx, role: str) -> Call:
    d = await device(ctx)
    return Call(params={"cid": ctx.world.community.id, "device_id": d.id})


async def p_replace(ctx: Ctx, role: str) -> Call:
    """A dead face terminal, a peer, and a connected replacement (its key reported)."""
    terminals = [await device(ctx) for _ in range(3)]
    for n, d in enumerate(terminals):
        d.methods = ["face", "card", "remote"]
        d.library_key = "M" * 43 if n == 2 else ""
        await d.save()
    peer, old, new = terminals
    return Call(
        params={"cid": ctx.world.community.id, "device_id": old.id},
        form={"new_device_id": str(new.id), "reason": "矩阵"},
        state={"spare": [peer.id, new.id]},
    )


async def v_replaced(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert (await Device.get(id=call.params["device_id"])).status == DeviceStatus.REVOKED
    await Device.filter(id__in=call.state["spare"]).update(status=DeviceStatus.DISABLED)


async def p_disabled_door(ctx: Ctx, role: str) -> Call:
    d = await device(ctx, DeviceStatus.DISABLED)
    return Call(
        params={"cid": ctx.world.community.id, "device_id": d.id}, form={"reason": "矩阵测试"}
    )


async def v_rotated(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert (await Device.get(id=call.params["device_id"])).credential_version == 2
    assert "data-secret" in r.text


async def v_disabled(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert (await Device.get(id=call.params["device_id"])).status == DeviceStatus.DISABLED


async def p_new_community(ctx: Ctx, role: str) -> Call:
    return Call(form={"city": "矩阵市", "name": f"矩阵小区{tag()}"})


async def p_new_staff_ops(ctx: Ctx, role: str) -> Call:
    name = f"cx.{tag(4)}"
    return Call(
        form={"username": name, "community_id": ctx.world.community.id, "roles": ["guard"]},
        state={"username": name},
    )


async def p_new_staff_here(ctx: Ctx, role: str) -> Call:
    name = f"cx.{tag(4)}"
    return Call(
        params={"cid": ctx.world.community.id},
        form={"username": name, "roles": ["guard"]},
        state={"username": name},
    )


async def v_new_staff(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    staff = await StaffAccount.get(username=call.state["username"])
    assert await StaffRole.filter(staff=staff, community_id=ctx.world.community.id).exists()
    assert "data-password" in r.text


async def colleague(ctx: Ctx) -> StaffAccount:
    staff = await StaffAccount.create(username=f"cx.{tag(4)}", password_hash="x")
    await StaffRole.create(staff=staff, community=ctx.world.community, role=StaffRoleName.GUARD)
    return staff


async def p_colleague_roles(ctx: Ctx, role: str) -> Call:
    s = await colleague(ctx)
    return Call(
        params={"staff_id": s.id},
        form={"community_id": ctx.world.community.id, "roles": ["approver"]},
    )


async def v_colleague_roles(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    held = await StaffRole.filter(staff_id=call.params["staff_id"]).values_list("role", flat=True)
    assert list(held) == [StaffRoleName.APPROVER]


async def p_colleague_disable(ctx: Ctx, role: str) -> Call:
    s = await colleague(ctx)
    return Call(params={"staff_id": s.id}, form={"active": "false"})


async def v_colleague_disabled(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert not (await StaffAccount.get(id=call.params["staff_id"])).is_active


async def p_colleague(ctx: Ctx, role: str) -> Call:
    return Call(params={"staff_id": (await colleague(ctx)).id})


async def v_reset(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert (await StaffAccount.get(id=call.params["staff_id"])).password_hash != "x"


async def p_resident(ctx: Ctx, role: str) -> Call:
    m = await resident_here(ctx)
    return Call(params={"cid": ctx.world.community.id, "rid": m.resident_id, "mid": m.id})


async def p_move_out(ctx: Ctx, role: str) -> Call:
    call = await p_resident(ctx, role)
    call.form = {"rid": call.params["rid"], "reason": "矩阵测试"}
    return call


async def p_block(ctx: Ctx, role: str) -> Call:
    call = await p_resident(ctx, role)
    call.form = {"blocked": "true", "reason": "矩阵测试"}
    return call


async def v_blocked(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert await ResidentBlock.exists(
        resident_id=call.params["rid"], community_id=call.params["cid"]
    )


async def p_issue_card(ctx: Ctx, role: str) -> Call:
    call = await p_resident(ctx, role)
    call.form = {"card_no": tag(5).upper()}
    return call


async def v_card(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert await AccessCard.filter(card_no=call.form["card_no"], active=True).exists()


async def p_card(ctx: Ctx, role: str) -> Call:
    m = await resident_here(ctx)
    card = await AccessCard.create(
        community_id=ctx.world.community.id, resident_id=m.resident_id, card_no=tag(5).upper()
    )
    return Call(
        params={"cid": ctx.world.community.id, "card_id": card.id}, form={"rid": m.resident_id}
    )


async def v_card_revoked(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert not (await AccessCard.get(id=call.params["card_id"])).active


async def p_notice(ctx: Ctx, role: str) -> Call:
    return Call(
        params={"cid": ctx.world.community.id},
        form={"title": f"通知{tag()}", "body": "矩阵测试", "unit_ids": [ctx.world.units[0].id]},
    )


async def p_building(ctx: Ctx, role: str) -> Call:
    return Call(params={"cid": ctx.world.community.id}, form={"name": f"B{tag()}"})


async def p_unit(ctx: Ctx, role: str) -> Call:
    return Call(
        params={"cid": ctx.world.community.id},
        form={"building_id": ctx.world.buildings[0].id, "name": f"U{tag()}"},
    )


async def p_room(ctx: Ctx, role: str) -> Call:
    return Call(
        params={"cid": ctx.world.community.id},
        form={"unit_id": ctx.world.units[0].id, "number": tag(4)},
    )


async def p_import(ctx: Ctx, role: str) -> Call:
    phone = "139" + "".join(str(secrets.randbelow(10)) for _ in range(8))
    csv = f"楼栋,单元,房号,姓名,手机号,身份\n9栋,1单元,{tag(2)},张三,{phone},业主\n"
    return Call(
        params={"cid": ctx.world.community.id},
        files={"file": ("residents.csv", csv.encode(), "text/csv")},
    )


async def v_import(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    """The import runs in the background: wait for it, so that it changes nothing during
    the next role's call."""
    import asyncio
    import json

    job = r.text.split("/setup/import/")[1].split('"')[0]
    key = f"console:import:{ctx.world.community.id}:{job}"
    for _ in range(400):
        raw = await ctx.stack.runtime.kv.get(key)
        if raw and json.loads(raw)["state"] != "running":
            assert json.loads(raw)["state"] == "finished", raw
            return
        await asyncio.sleep(0.05)
    raise AssertionError("import did not finish")


async def p_import_job(ctx: Ctx, role: str) -> Call:
    job = tag(8)
    await ctx.stack.runtime.kv.set(
        f"console:import:{ctx.world.community.id}:{job}",
        '{"state": "running", "done": 1, "total": 2}',
        600,
    )
    return Call(params={"cid": ctx.world.community.id, "job": job})


async def p_pass(ctx: Ctx, role: str) -> Call:
    from datetime import timedelta

    from anxin.clock import utcnow

    m = await resident_here(ctx)
    p = await VisitorPass.create(
        community_id=ctx.world.community.id,
        room_id=m.room_id,
        created_by_id=m.resident_id,
        kind=PassKind.VISITOR,
        visitor_name="访客",
        valid_from=utcnow(),
        valid_until=utcnow() + timedelta(hours=2),
        max_uses=1,
        share_token=tag(12),
    )
    return Call(params={"cid": ctx.world.community.id, "pass_id": p.id})


async def p_block_plate(ctx: Ctx, role: str) -> Call:
    return Call(
        params={"cid": ctx.world.community.id},
        form={"kind": "plate", "plate": f"浙A{secrets.randbelow(10**5):05d}", "reason": "矩阵测试"},
    )


async def p_block_entry(ctx: Ctx, role: str) -> Call:
    e = await BlocklistEntry.create(
        community_id=ctx.world.community.id, kind=BlockKind.PLATE, plate=f"浙B{tag(2)}", reason="x"
    )
    return Call(params={"cid": ctx.world.community.id, "entry_id": e.id})


C = "/console/c/{cid}"
OPS = {"scope": "operator"}
TABLE: dict[tuple[str, str], Rule] = {
    ("GET", "/console/"): Rule(frozenset(ROLES) - {ANONYMOUS}, ok=303, scope="staff"),
    # Any role here opens the home page; each figure and chart needs its own right.
    ("GET", f"{C}/"): Rule(APG | {SECURITY}),
    ("GET", f"{C}/charts.json"): Rule(APG | {SECURITY}),
    ("GET", f"{C}/approvals"): Rule(AP),
    ("POST", f"{C}/memberships/{{mid}}/decide"): Rule(
        AP, p_pending_membership, ok=303, verify=v_membership
    ),
    ("GET", f"{C}/faces/{{eid}}/photo"): Rule(AP, p_enrollment, verify=v_photo),
    ("POST", f"{C}/faces/{{eid}}/decide"): Rule(AP, p_enrollment, ok=303, verify=v_enrollment),
    ("GET", f"{C}/residents"): Rule(APG),
    ("GET", f"{C}/residents/{{rid}}"): Rule(APG, p_resident),
    ("POST", f"{C}/memberships/{{mid}}/end"): Rule(AP, p_move_out, ok=303, verify=v_membership),
    ("POST", f"{C}/residents/{{rid}}/block"): Rule(A, p_block, ok=303, verify=v_blocked),
    ("POST", f"{C}/residents/{{rid}}/cards"): Rule(AP, p_issue_card, ok=303, verify=v_card),
    ("POST", f"{C}/cards/{{card_id}}/revoke"): Rule(AP, p_card, ok=303, verify=v_card_revoked),
    ("GET", f"{C}/access"): Rule(AG),
    ("GET", f"{C}/access/stream"): Rule(AG, stream=True),
    ("GET", f"{C}/access/{{eid}}/snapshot"): Rule(AG, p_event),
    ("GET", f"{C}/access.csv"): Rule(AG),
    ("GET", f"{C}/alarms"): Rule(AG),
    ("POST", f"{C}/alarms/{{alarm_id}}"): Rule(AG, p_alarm, ok=303, verify=v_alarm),
    ("GET", f"{C}/devices"): Rule(AG),
    # A disabled door: the allowed roles pass the check and are told it is not active.
    ("POST", f"{C}/devices/{{device_id}}/open"): Rule(AG, p_disabled_door, ok=409),
    ("POST", f"{C}/devices/{{device_id}}/rotate"): Rule(A, p_device, verify=v_rotated),
    ("POST", f"{C}/devices/{{device_id}}/replace"): Rule(A, p_replace, ok=303, verify=v_replaced),
    ("POST", f"{C}/devices/{{device_id}}/status"): Rule(
        A, with_form(p_device, status="disabled"), ok=303, verify=v_disabled
    ),
    ("GET", f"{C}/visitors"): Rule(AG),
    ("GET", f"{C}/visitors.csv"): Rule(AG),
    ("GET", f"{C}/passes"): Rule(AG),
    ("POST", f"{C}/passes/{{pass_id}}/revoke"): Rule(AG, p_pass, ok=303),
    ("GET", f"{C}/blocklist"): Rule(AG),
    ("POST", f"{C}/blocklist"): Rule(AG, p_block_plate, ok=303),
    ("POST", f"{C}/blocklist/{{entry_id}}/remove"): Rule(AG, p_block_entry, ok=303),
    ("GET", f"{C}/notices"): Rule(AP),
    ("POST", f"{C}/notices"): Rule(AP, p_notice, ok=303),
    ("GET", f"{C}/audit"): Rule(A),
    ("GET", f"{C}/setup"): Rule(A),
    ("POST", f"{C}/setup/buildings"): Rule(A, p_building, ok=303),
    ("POST", f"{C}/setup/units"): Rule(A, p_unit, ok=303),
    ("POST", f"{C}/setup/rooms"): Rule(A, p_room, ok=303),
    ("POST", f"{C}/setup/import"): Rule(A, p_import, verify=v_import),
    ("GET", f"{C}/setup/import/{{job}}"): Rule(A, p_import_job),
    ("GET", f"{C}/staff"): Rule(A),
    ("POST", f"{C}/staff"): Rule(A, p_new_staff_here, verify=v_new_staff),
    # Operator pages: an admin elsewhere is refused like everyone else.
    ("GET", "/console/ops/"): Rule(OP, **OPS),
    ("GET", "/console/ops/communities"): Rule(OP, **OPS),
    ("POST", "/console/ops/communities"): Rule(OP, p_new_community, ok=303, **OPS),
    ("GET", "/console/ops/staff"): Rule(OP, **OPS),
    ("POST", "/console/ops/staff"): Rule(OP, p_new_staff_ops, verify=v_new_staff, **OPS),
    # Account actions: the community's admin or an operator; an admin elsewhere finds no
    # such account.
    ("POST", "/console/staff/{staff_id}/roles"): Rule(
        A | OP,
        p_colleague_roles,
        ok=303,
        verify=v_colleague_roles,
        scope="staff",
        deny={OUTSIDER: 404},
    ),
    ("POST", "/console/staff/{staff_id}/active"): Rule(
        A | OP,
        p_colleague_disable,
        ok=303,
        verify=v_colleague_disabled,
        scope="staff",
        deny={OUTSIDER: 404},
    ),
    ("POST", "/console/staff/{staff_id}/reset-password"): Rule(
        A | OP, p_colleague, verify=v_reset, scope="staff", deny={OUTSIDER: 404}
    ),
}

# Console routes whose owners have not written their entry yet. They still get the checks
# that need no knowledge of the page (tests/test_console_authz.py
# test_pending_routes_keep_the_console_rules): anonymous callers and staff of another
# community are refused, and a form without its CSRF token is refused. Move a route from
# here to TABLE with its roles.
PENDING: set[tuple[str, str]] = set()

# Video pages (issue 18).
from tests.authz_console_video import RULES as _VIDEO_RULES  # noqa: E402

assert not (set(_VIDEO_RULES) & set(TABLE)), "a console route has two authz entries"
TABLE.update(_VIDEO_RULES)

# Sign-in, sign-out and the language switch are for everyone (tests/test_console_session.py).
PUBLIC = {
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("POST", "/console/logout"),
    ("GET", "/console/lang/{lang}"),
}

# The police link's pages (issue 19).
from tests.authz_console_police import RULES as _POLICE_RULES  # noqa: E402

assert not (set(_POLICE_RULES) & set(TABLE)), "a console route has two entries"
TABLE.update(_POLICE_RULES)
