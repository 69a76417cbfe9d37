"""Authz matrix entries for the staff operations the console needed (merged into
tests/authz_table.py TABLE): snapshots, a guard opening a door, ..."""

from __future__ import annotations

import httpx

from domain.access.snapshots import snapshot_store
from models import (
    AccessCard,
    AccessEvent,
    AccessMethod,
    AccessResult,
    AuditLog,
    DeviceStatus,
    OutboxEvent,
    StaffAccount,
    StaffRole,
    StaffRoleName,
)
from tests.authz_table import (
    ADMIN,
    APPROVER,
    GUARD,
    OUTSIDER,
    V1,
    Call,
    Ctx,
    Rule,
    Verify,
    fresh_device,
    no_probing,
    p_community,
    swap_param,
    tag,
)

JPEG = b"\xff\xd8\xff\xe0 matrix snapshot"


async def p_snapshot(ctx: Ctx, role: str) -> Call:
    cid = ctx.world.community.id
    ref = snapshot_store(ctx.stack.settings).save(cid, f"m-{tag()}", JPEG)
    event = await AccessEvent.create(
        community_id=cid,
        method=AccessMethod.FACE,
        result=AccessResult.DENIED,
        reason="unknown_person",
        snapshot_ref=ref,
    )
    return Call(params={"event_id": event.id})


async def v_snapshot(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert r.content == JPEG and r.headers["content-type"] == "image/jpeg"
    assert await AuditLog.filter(
        action="snapshot.viewed", target_id=str(call.params["event_id"])
    ).exists()


async def p_staff_open(ctx: Ctx, role: str) -> Call:
    # A disabled door: the allowed roles pass the permission check and are then told the
    # door is not active (a live door needs a device on the line: tests/browser).
    device = await fresh_device(ctx)
    device.status = DeviceStatus.DISABLED
    await device.save(update_fields=["status"])
    return Call(params={"device_id": device.id}, json={"reason": "矩阵测试"})


async def v_staff_open(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert r.json()["error"]["code"] == "device_not_active", r.text


RULES: dict[tuple[str, str], Rule] = {
    ("GET", f"{V1}/staff/access-events/{{event_id}}/snapshot"): Rule(
        "staff", frozenset({ADMIN, GUARD}), p_snapshot, verify=v_snapshot
    ),
    ("POST", f"{V1}/staff/devices/{{device_id}}/open"): Rule(
        "staff", frozenset({ADMIN, GUARD}), p_staff_open, ok=409, verify=v_staff_open
    ),
}

no_probing(
    RULES,
    {
        ("GET", f"{V1}/staff/access-events/{{event_id}}/snapshot"): swap_param("event_id"),
        ("POST", f"{V1}/staff/devices/{{device_id}}/open"): swap_param("device_id"),
    },
    frozenset({OUTSIDER}),
)


# --- communities and staff accounts (api/accounts) ----------------------------------------

ONLY_OPERATORS = {OUTSIDER: 403}  # nobody in the matrix is an operator: all refused


async def p_new_community(ctx: Ctx, role: str) -> Call:
    return Call(json={"city": "矩阵市", "name": f"矩阵小区{tag()}"})


async def p_new_staff(ctx: Ctx, role: str) -> Call:
    username = f"m.{tag(4)}"
    return Call(
        json={"username": username, "community_id": ctx.world.community.id, "roles": ["guard"]},
        state={"username": username},
    )


async def v_new_staff(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    staff = await StaffAccount.get(username=call.state["username"])
    assert await StaffRole.filter(staff=staff, community_id=ctx.world.community.id).exists()
    assert len(r.json()["password"]) >= 12


async def colleague(ctx: Ctx) -> StaffAccount:
    staff = await StaffAccount.create(username=f"m.{tag(4)}", password_hash="x")
    await StaffRole.create(staff=staff, community=ctx.world.community, role=StaffRoleName.GUARD)
    return staff


async def p_colleague(ctx: Ctx, role: str) -> Call:
    return Call(params={"staff_id": (await colleague(ctx)).id})


async def p_colleague_roles(ctx: Ctx, role: str) -> Call:
    call = await p_colleague(ctx, role)
    call.json = {"community_id": ctx.world.community.id, "roles": ["approver"]}
    return call


async def v_roles(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    held = await StaffRole.filter(staff_id=call.params["staff_id"]).values_list("role", flat=True)
    assert list(held) == [StaffRoleName.APPROVER]


def v_active(active: bool) -> Verify:
    async def verify(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
        assert (await StaffAccount.get(id=call.params["staff_id"])).is_active is active

    return verify


async def v_reset(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    staff = await StaffAccount.get(id=call.params["staff_id"])
    assert staff.password_hash != "x" and r.json()["password"] not in staff.password_hash


ACCOUNTS = f"{V1}/staff/accounts/{{staff_id}}"
RULES.update(
    {
        ("POST", f"{V1}/operator/communities"): Rule(
            "staff", frozenset(), p_new_community, ok=201, deny=ONLY_OPERATORS
        ),
        ("GET", f"{V1}/operator/communities"): Rule("staff", frozenset(), deny=ONLY_OPERATORS),
        ("GET", f"{V1}/operator/overview"): Rule("staff", frozenset(), deny=ONLY_OPERATORS),
        ("POST", f"{V1}/staff/accounts"): Rule(
            "staff", frozenset({ADMIN}), p_new_staff, ok=201, verify=v_new_staff
        ),
        # An admin elsewhere lists the staff of their own community (not this one's).
        ("GET", f"{V1}/staff/accounts"): Rule("staff", frozenset({ADMIN, OUTSIDER})),
        ("PUT", f"{ACCOUNTS}/roles"): Rule(
            "staff", frozenset({ADMIN}), p_colleague_roles, verify=v_roles
        ),
        ("POST", f"{ACCOUNTS}/disable"): Rule(
            "staff", frozenset({ADMIN}), p_colleague, verify=v_active(False)
        ),
        ("POST", f"{ACCOUNTS}/enable"): Rule(
            "staff", frozenset({ADMIN}), p_colleague, verify=v_active(True)
        ),
        ("POST", f"{ACCOUNTS}/reset-password"): Rule(
            "staff", frozenset({ADMIN}), p_colleague, verify=v_reset
        ),
    }
)


# --- access cards, audit log, property notices ------------------------------------------


async def p_issue_card(ctx: Ctx, role: str) -> Call:
    return Call(
        params={"community_id": ctx.world.community.id},
        json={"resident_id": ctx.resident_id, "card_no": tag(6).upper()},
    )


async def v_card_issued(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    card = await AccessCard.get(id=r.json()["id"])
    assert card.active and card.resident_id == ctx.resident_id


async def p_card(ctx: Ctx, role: str) -> Call:
    card = await AccessCard.create(
        community_id=ctx.world.community.id, resident_id=ctx.resident_id, card_no=tag(6).upper()
    )
    return Call(params={"card_id": card.id}, json={"reason": "矩阵测试"})


async def v_card_revoked(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert not (await AccessCard.get(id=call.params["card_id"])).active


async def p_notice(ctx: Ctx, role: str) -> Call:
    return Call(
        params={"community_id": ctx.world.community.id},
        json={"title": f"通知{tag()}", "body": "矩阵测试", "room_ids": [ctx.home.id]},
    )


async def v_notice(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    event = await OutboxEvent.get(id=r.json()["id"])
    assert event.event_type == "property_notice" and event.recipients["rooms"] == [ctx.home.id]


A_OR_P = frozenset({ADMIN, APPROVER})
RULES.update(
    {
        ("GET", f"{V1}/staff/communities/{{community_id}}/cards"): Rule(
            "staff", A_OR_P, p_community
        ),
        ("POST", f"{V1}/staff/communities/{{community_id}}/cards"): Rule(
            "staff", A_OR_P, p_issue_card, ok=201, verify=v_card_issued
        ),
        ("POST", f"{V1}/staff/cards/{{card_id}}/revoke"): Rule(
            "staff", A_OR_P, p_card, verify=v_card_revoked
        ),
        ("GET", f"{V1}/staff/communities/{{community_id}}/audit-log"): Rule(
            "staff", frozenset({ADMIN}), p_community
        ),
        ("GET", f"{V1}/staff/communities/{{community_id}}/notices"): Rule(
            "staff", A_OR_P, p_community
        ),
        ("POST", f"{V1}/staff/communities/{{community_id}}/notices"): Rule(
            "staff", A_OR_P, p_notice, ok=201, verify=v_notice
        ),
    }
)

no_probing(
    RULES,
    {("POST", f"{V1}/staff/cards/{{card_id}}/revoke"): swap_param("card_id")},
    frozenset({OUTSIDER}),
)
