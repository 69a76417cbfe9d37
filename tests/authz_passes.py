"""Authz matrix entries for doors, passes, intercom, codes, vehicles, blocklist and the
visitor register (merged into tests/authz_table.py TABLE)."""

from __future__ import annotations

import secrets
from datetime import timedelta

import httpx

from anxin.clock import utcnow
from device_bridge.service import BRIDGE
from device_bridge.simulator.device import DeviceConfig, SimulatedDevice
from models import (
    BlockKind,
    BlocklistEntry,
    HouseholdCode,
    IntercomCallRecord,
    Vehicle,
    VisitorPass,
)
from tests.authz_table import (
    ADMIN,
    GUARD,
    NEWCOMER,
    RESIDENT,
    RESIDENTS,
    ROLES,
    V1,
    Call,
    Ctx,
    Rule,
    no_args,
)
from tests.devices import register_device

AG = frozenset({ADMIN, GUARD})
ME = frozenset({RESIDENT})
NOT_MINE = {NEWCOMER: 404}


def _plate() -> str:
    return "粤B" + "".join(secrets.choice("0123456789") for _ in range(5))


async def _gate(ctx: Ctx, kind: str = "face_gate") -> dict:  # type: ignore[type-arg]
    methods = {"face_gate": ["card", "qr", "remote"], "intercom_panel": ["intercom", "qr"]}
    return await register_device(
        ctx.stack, ctx.world.community.id, ctx.headers[ADMIN], kind=kind, methods=methods[kind]
    )


async def _sim(ctx: Ctx, device: dict) -> SimulatedDevice:  # type: ignore[type-arg]
    sim = SimulatedDevice(
        DeviceConfig(
            device_id=device["device_uid"],
            secret=device["secret"],
            kind=device["kind"],
            root=ctx.stack.settings.topic_root,
        ),
        mqtt_url=ctx.stack.runtime.get(BRIDGE).mqtt_url,
    )
    return await sim.start()


async def v_stop_sim(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    await call.state["sim"].stop(clear_retained=True)
    assert r.json()["opened"] is True


async def p_open(ctx: Ctx, role: str) -> Call:
    gate = await _gate(ctx)
    state = {"sim": await _sim(ctx, gate)} if role == RESIDENT else {}
    return Call(params={"device_id": gate["id"]}, state=state)


async def _my_pass(ctx: Ctx) -> VisitorPass:
    now = utcnow()
    return await VisitorPass.create(
        community_id=ctx.world.community.id,
        room_id=ctx.home.id,
        created_by_id=ctx.resident_id,
        valid_from=now,
        valid_until=now + timedelta(hours=1),
        max_uses=1,
        doors=["*"],
        share_token=secrets.token_urlsafe(24),
    )


async def p_new_pass(ctx: Ctx, role: str) -> Call:
    await _gate(ctx)
    return Call(json={"visitor_name": "矩阵", "room_id": ctx.home.id})


async def p_pass(ctx: Ctx, role: str) -> Call:
    return Call(params={"pass_id": (await _my_pass(ctx)).id})


async def p_community(ctx: Ctx, role: str) -> Call:
    return Call(params={"community_id": ctx.world.community.id})


async def _call(ctx: Ctx, device_id: int) -> IntercomCallRecord:
    return await IntercomCallRecord.create(
        community_id=ctx.world.community.id,
        device_id=device_id,
        room_id=ctx.home.id,
        expires_at=utcnow() + timedelta(seconds=45),
        event_key=f"matrix:{secrets.token_hex(8)}",
    )


async def p_accept(ctx: Ctx, role: str) -> Call:
    panel = await _gate(ctx, "intercom_panel")
    state = {"sim": await _sim(ctx, panel)} if role == RESIDENT else {}
    return Call(params={"call_id": (await _call(ctx, panel["id"])).id}, state=state)


async def p_decline(ctx: Ctx, role: str) -> Call:
    panel = await _gate(ctx, "intercom_panel")
    return Call(params={"call_id": (await _call(ctx, panel["id"])).id})


async def p_set_code(ctx: Ctx, role: str) -> Call:
    return Call(params={"room_id": ctx.home.id}, json={"code": "604917"})


async def p_clear_code(ctx: Ctx, role: str) -> Call:
    await HouseholdCode.update_or_create(
        room_id=ctx.home.id, defaults={"code_hash": "x" * 64, "salt": "s", "key_id": "dev"}
    )
    return Call(params={"room_id": ctx.home.id})


async def v_new_code(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    code = r.json()["code"]
    assert code.isdigit() and len(code) == 6
    assert await HouseholdCode.exists(room_id=ctx.home.id)


async def p_home(ctx: Ctx, role: str) -> Call:
    return Call(params={"room_id": ctx.home.id})


async def p_add_vehicle(ctx: Ctx, role: str) -> Call:
    await Vehicle.filter(room_id=ctx.home.id).delete()
    return Call(params={"room_id": ctx.home.id}, json={"plate": _plate()})


async def p_vehicle(ctx: Ctx, role: str) -> Call:
    v = await Vehicle.create(
        community_id=ctx.world.community.id, room_id=ctx.home.id, plate=_plate()
    )
    return Call(params={"room_id": ctx.home.id, "vehicle_id": v.id})


async def p_block(ctx: Ctx, role: str) -> Call:
    return Call(
        params={"community_id": ctx.world.community.id},
        json={"kind": "plate", "plate": _plate(), "reason": "矩阵测试"},
    )


async def p_block_entry(ctx: Ctx, role: str) -> Call:
    e = await BlocklistEntry.create(
        community_id=ctx.world.community.id, kind=BlockKind.PLATE, plate=_plate(), reason="矩阵"
    )
    return Call(params={"entry_id": e.id})


RULES: dict[tuple[str, str], Rule] = {
    ("GET", f"{V1}/doors"): Rule("resident", RESIDENTS, no_args),
    ("POST", f"{V1}/doors/{{device_id}}/open"): Rule(
        "resident", ME, p_open, deny=NOT_MINE, verify=v_stop_sim
    ),
    ("POST", f"{V1}/passes"): Rule("resident", ME, p_new_pass, ok=201, deny=NOT_MINE),
    ("GET", f"{V1}/passes"): Rule("resident", RESIDENTS, no_args),
    ("GET", f"{V1}/passes/{{pass_id}}"): Rule("resident", ME, p_pass, deny=NOT_MINE),
    ("GET", f"{V1}/passes/{{pass_id}}/qr"): Rule("resident", ME, p_pass, deny=NOT_MINE),
    ("POST", f"{V1}/passes/{{pass_id}}/revoke"): Rule("resident", ME, p_pass, deny=NOT_MINE),
    ("GET", f"{V1}/communities/{{community_id}}/pass-key"): Rule(
        "public", frozenset(ROLES), p_community
    ),
    ("GET", f"{V1}/staff/communities/{{community_id}}/passes"): Rule("staff", AG, p_community),
    ("POST", f"{V1}/staff/communities/{{community_id}}/pass-key/rotate"): Rule(
        "staff", frozenset({ADMIN}), p_community
    ),
    ("POST", f"{V1}/staff/passes/{{pass_id}}/revoke"): Rule("staff", AG, p_pass),
    ("GET", f"{V1}/intercom/calls"): Rule("resident", RESIDENTS, no_args),
    ("POST", f"{V1}/intercom/calls/{{call_id}}/accept"): Rule(
        "resident", ME, p_accept, deny=NOT_MINE, verify=v_stop_sim
    ),
    ("POST", f"{V1}/intercom/calls/{{call_id}}/decline"): Rule(
        "resident", ME, p_decline, deny=NOT_MINE
    ),
    ("PUT", f"{V1}/households/{{room_id}}/door-code"): Rule(
        "resident", ME, p_set_code, deny=NOT_MINE
    ),
    ("POST", f"{V1}/households/{{room_id}}/door-code/new"): Rule(
        "resident", ME, p_home, deny=NOT_MINE, verify=v_new_code
    ),
    ("DELETE", f"{V1}/households/{{room_id}}/door-code"): Rule(
        "resident", ME, p_clear_code, deny=NOT_MINE
    ),
    ("GET", f"{V1}/households/{{room_id}}/vehicles"): Rule("resident", ME, p_home, deny=NOT_MINE),
    ("POST", f"{V1}/households/{{room_id}}/vehicles"): Rule(
        "resident", ME, p_add_vehicle, ok=201, deny=NOT_MINE
    ),
    ("DELETE", f"{V1}/households/{{room_id}}/vehicles/{{vehicle_id}}"): Rule(
        "resident", ME, p_vehicle, deny=NOT_MINE
    ),
    ("GET", f"{V1}/staff/communities/{{community_id}}/blocklist"): Rule("staff", AG, p_community),
    ("POST", f"{V1}/staff/communities/{{community_id}}/blocklist"): Rule(
        "staff", AG, p_block, ok=201
    ),
    ("DELETE", f"{V1}/staff/blocklist/{{entry_id}}"): Rule("staff", AG, p_block_entry),
    ("GET", f"{V1}/staff/communities/{{community_id}}/visitor-register"): Rule(
        "staff", AG, p_community
    ),
    ("GET", f"{V1}/staff/communities/{{community_id}}/visitor-register.csv"): Rule(
        "staff", AG, p_community
    ),
}
