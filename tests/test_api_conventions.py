"""The API's conventions at work: pages, language, idempotent retries (both backends)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from anxin.clock import utcnow
from api import idempotency
from models import (
    AccessEvent,
    DeviceCommand,
    IdempotencyRecord,
    Resident,
    StaffRoleName,
    VisitorPass,
)
from tests.devices import simulator
from tests.helpers import approved_resident, error_code, make_staff, make_world, staff_headers
from tests.passes_helpers import make_site
from tests.stack import Stack

V1 = "/api/v1"


async def test_a_collection_is_walked_page_by_page(stack: Stack) -> None:
    world = await make_world(units=1, rooms_per_unit=5)
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    residents = [await approved_resident(stack, room, admin_h) for room in world.rooms]
    url = f"{V1}/staff/communities/{world.community.id}/memberships"
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await stack.client.get(url, headers=admin_h, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"items", "next"} and len(body["items"]) <= 2
        seen += [m["id"] for m in body["items"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
    assert pages == 3 and seen == sorted(seen, reverse=True) and len(set(seen)) == 5
    for bad in ({"limit": 0}, {"limit": 201}, {"cursor": "not a cursor!"}, {"cursor": "e30"}):
        r = await stack.client.get(url, headers=admin_h, params=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["code"] in ("validation_error", "invalid_cursor")
    for mp in residents:
        await mp.aclose()


async def test_language_follows_the_header_then_the_residents_setting(stack: Stack) -> None:
    world = await make_world(units=1, rooms_per_unit=1)
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    app = await approved_resident(stack, world.rooms[0], admin_h)
    missing = f"{V1}/passes/2147483000"

    async def message(headers: dict[str, str] | None = None) -> str:
        r = await app.get(missing, headers=headers or {})
        assert r.status_code == 404
        return r.json()["error"]["message"]

    assert await message() == "未找到该记录"
    assert await message({"Accept-Language": "en-US,en;q=0.9,zh;q=0.1"}) == "pass not found"
    assert await message({"Accept-Language": "zh-Hans-CN, en;q=0.5"}) == "未找到该记录"

    r = await app.put(f"{V1}/me/language", json={"language": "en"})
    assert r.status_code == 200 and r.json()["language"] == "en"
    assert (await app.get(f"{V1}/me")).json()["language"] == "en"
    assert await message() == "pass not found"  # no header: their own setting
    assert await message({"Accept-Language": "de"}) == "pass not found"
    assert await message({"Accept-Language": "zh-CN"}) == "未找到该记录"  # the header wins

    r = await app.put(f"{V1}/me/language", json={"language": "fr"})
    assert r.status_code == 422
    await app.aclose()


async def test_routes_reading_their_caller_with_their_rows_refuse_and_speak_alike(
    stack: Stack,
) -> None:
    """The notification page, the unread count, the pass list and the door list read the
    caller's row in their own statement: a refused caller is refused as on every other
    route (before its input is judged), staff on a residents' route get 403, and a bad
    input is answered in the resident's own language."""
    world = await make_world(units=1, rooms_per_unit=1)
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    app = await approved_resident(stack, world.rooms[0], admin_h)
    assert (await app.put(f"{V1}/me/language", json={"language": "en"})).status_code == 200
    for url in (f"{V1}/notifications", f"{V1}/passes", f"{V1}/doors"):
        assert (await app.get(url)).status_code == 200
        r = await app.get(url, params={"limit": 0})
        assert r.status_code == 422 and r.json()["error"]["message"] == "request validation failed"
        r = await stack.client.get(url, headers=admin_h, params={"limit": 0})
        want = 422 if url.endswith("notifications") else 403
        assert r.status_code == want, r.text
    for url in (f"{V1}/passes", f"{V1}/doors"):
        r = await stack.client.get(url, headers=admin_h)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"

    me = (await app.get(f"{V1}/me")).json()
    await Resident.filter(id=me["id"]).update(deleted_at=utcnow())
    for url in ("notifications", "notifications/unread-count", "passes", "doors"):
        for params in ({}, {"limit": 0}):
            r = await app.get(f"{V1}/{url}", params=params)
            assert r.status_code == 401, (url, params, r.text)
            assert r.json()["error"]["code"] == "token_invalid"
    await app.aclose()


async def test_remote_open_retried_with_the_same_key_opens_once(stack: Stack) -> None:
    site = await make_site(stack)
    url = f"{V1}/doors/{site.gate['id']}/open"
    async with simulator(stack, site.gate) as gate:
        key = {"Idempotency-Key": "open-7f3a9c"}
        first = await site.resident.post(url, headers=key)
        assert first.status_code == 200, first.text
        await gate.wait_opened(1)
        again = await site.resident.post(url, headers=key)
        assert again.status_code == 200
        assert again.json() == first.json()
        assert again.headers.get("idempotent-replayed") == "true"
        # One opening, one command, one log entry.
        assert await AccessEvent.filter(device_id=site.gate["id"]).count() == 1
        assert (
            await DeviceCommand.filter(device_id=site.gate["id"], reason="remote_open").count() == 1
        )
        # Another key is another opening.
        other = await site.resident.post(url, headers={"Idempotency-Key": "open-second"})
        assert other.status_code == 200 and other.json()["event_id"] != first.json()["event_id"]
        assert await AccessEvent.filter(device_id=site.gate["id"]).count() == 2


async def test_concurrent_duplicates_wait_for_the_first(stack: Stack) -> None:
    site = await make_site(stack)
    url = f"{V1}/doors/{site.gate['id']}/open"
    async with simulator(stack, site.gate):
        key = {"Idempotency-Key": "tap-tap-tap"}
        answers = await asyncio.gather(*(site.resident.post(url, headers=key) for _ in range(4)))
        assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
        assert len({r.json()["event_id"] for r in answers}) == 1
        assert await AccessEvent.filter(device_id=site.gate["id"]).count() == 1


async def test_a_failed_open_is_the_answer_to_its_key(stack: Stack) -> None:
    """No acknowledgement: the door may have moved, so the key never opens again."""
    site = await make_site(stack)
    url = f"{V1}/doors/{site.gate['id']}/open"
    saved = stack.settings.open_ack_timeout_s
    stack.settings.open_ack_timeout_s = 0.3
    try:
        key = {"Idempotency-Key": "no-ack-1"}
        first = await site.resident.post(url, headers=key)  # nobody listens
        assert first.status_code == 504 and error_code(first) == "door_no_ack"
        again = await site.resident.post(url, headers={**key, "Accept-Language": "en"})
    finally:
        stack.settings.open_ack_timeout_s = saved
    assert again.status_code == 504 and error_code(again) == "door_no_ack"
    assert again.json()["error"]["message"] == "the door did not acknowledge in time"
    assert again.json()["error"]["request_id"] != first.json()["error"]["request_id"]
    assert await DeviceCommand.filter(device_id=site.gate["id"], reason="remote_open").count() == 1


async def test_a_key_in_progress_is_409_and_a_reused_key_is_422(stack: Stack, monkeypatch) -> None:
    site = await make_site(stack)
    now = utcnow()
    await IdempotencyRecord.create(
        scope=f"resident:{site.resident_id}",
        operation="openDoor",
        key="busy-key",
        fingerprint=idempotency.fingerprint(site.gate["id"]),
        locked_until=now + timedelta(seconds=60),
        expires_at=now + timedelta(hours=24),
    )
    monkeypatch.setattr(idempotency, "WAIT_S", 0.2)
    r = await site.resident.post(
        f"{V1}/doors/{site.gate['id']}/open", headers={"Idempotency-Key": "busy-key"}
    )
    assert r.status_code == 409 and error_code(r) == "idempotency_in_progress"
    assert not await AccessEvent.filter(device_id=site.gate["id"]).exists()

    body = {"visitor_name": "王芳"}
    key = {"Idempotency-Key": "pass-1"}
    first = await site.resident.post(f"{V1}/passes", json=body, headers=key)
    assert first.status_code == 201, first.text
    again = await site.resident.post(f"{V1}/passes", json=body, headers=key)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert await VisitorPass.filter(room_id=site.world.rooms[0].id).count() == 1
    other = await site.resident.post(f"{V1}/passes", json={"visitor_name": "李雷"}, headers=key)
    assert other.status_code == 422 and error_code(other) == "idempotency_key_reused"
    bad = await site.resident.post(f"{V1}/passes", json=body, headers={"Idempotency-Key": "a b"})
    assert bad.status_code == 422


async def test_records_expire_and_are_purged(stack: Stack) -> None:
    from anxin.clock import clock
    from anxin.scheduler import run_job_once

    site = await make_site(stack)
    key = {"Idempotency-Key": "old-pass"}
    first = await site.resident.post(f"{V1}/passes", json={}, headers=key)
    assert first.status_code == 201, first.text
    clock.advance(timedelta(hours=25).total_seconds())
    assert await run_job_once(idempotency.PURGE_JOB, stack.runtime) >= 1
    assert not await IdempotencyRecord.filter(key="old-pass").exists()
