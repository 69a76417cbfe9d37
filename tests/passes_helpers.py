"""Shared builders for the pass, door, intercom, vehicle and visitor-register tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from miniprogram_mock.client import MiniProgram
from models import AccessEvent, Resident, StaffRoleName
from tests.devices import register_device
from tests.helpers import World, approved_resident, make_staff, make_world, staff_headers
from tests.stack import Stack


@dataclass
class Site:
    world: World
    admin_h: dict[str, str]
    resident: MiniProgram
    resident_id: int
    gate: dict[str, Any]  # main gate: face, card, qr, remote


async def make_site(stack: Stack, **gate: Any) -> Site:
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    resident = await approved_resident(stack, world.rooms[0], admin_h)
    rid = (await Resident.get(openid=resident.openid)).id
    gate.setdefault("kind", "face_gate")
    gate.setdefault("methods", ["face", "card", "qr", "remote"])
    device = await register_device(stack, world.community.id, admin_h, **gate)
    return Site(world, admin_h, resident, rid, device)


async def wait_events(device_id: int, count: int = 1, wait_s: float = 8.0) -> list[AccessEvent]:
    """The device's access events in the order they happened, once there are at least `count`."""
    rows: list[AccessEvent] = []
    for _ in range(int(wait_s / 0.02)):
        rows = await AccessEvent.filter(device_id=device_id).order_by("occurred_at", "id")
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"{len(rows)} access events, wanted {count}: {[r.reason for r in rows]}")


async def until(predicate: Any, wait_s: float = 8.0) -> None:
    for _ in range(int(wait_s / 0.02)):
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def pass_key_pem(stack: Stack, community_id: int) -> str:
    r = await stack.client.get(f"/api/v1/communities/{community_id}/pass-key")
    assert r.status_code == 200, r.text
    return r.json()["public_key_pem"]


async def create_pass(site: Site, **body: Any) -> dict[str, Any]:
    r = await site.resident.post("/api/v1/passes", json=body)
    assert r.status_code == 201, r.text
    return r.json()
