"""Outbox, dispatcher, WeChat subscribe messages, notification centre and preferences.

The stack's own dispatcher is paused in this module so each test decides when delivery
happens (a fresh Dispatcher instance stands for a restarted worker).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from tortoise.transactions import in_transaction

from anxin.clock import clock, utcnow
from api.contract import encode_cursor
from auth.tokens import issue_access_token
from auth.wechat import WECHAT
from domain.access.log import Notice, record_access
from domain.access.policy import Decision
from domain.visitors.intercom import start_call
from domain.visitors.rooms import room_label
from models import (
    AccessEvent,
    AccessMethod,
    AccessResult,
    Channel,
    DeliveryState,
    Device,
    DeviceKind,
    IntercomCallRecord,
    Notification,
    NotificationAttempt,
    NotificationDelivery,
    OutboxEvent,
    OutboxState,
    Resident,
    StaffAccount,
    StaffRoleName,
    WeChatSubscription,
)
from notifications import fanout_sql
from notifications.catalog import EventType
from notifications.claim import claim
from notifications.dispatcher import DISPATCHER, Dispatcher
from notifications.outbox import emit
from notifications.wechat_templates import default_templates, fit
from tests.helpers import (
    approved_resident,
    error_code,
    make_staff,
    make_world,
    staff_headers,
)
from tests.stack import Stack

VISITOR_TMPL = default_templates()["visitor_arrived"].template_id
SEND = "/cgi-bin/message/subscribe/send"


@pytest.fixture
async def quiet(stack: Stack) -> AsyncIterator[Stack]:
    """Pause the stack's dispatcher loops; tests drive fresh dispatchers themselves."""
    running = stack.runtime.get(DISPATCHER)
    await running.stop()
    try:
        yield stack
    finally:
        await running.start()


def fresh(stack: Stack) -> Dispatcher:
    return Dispatcher(stack.runtime, run_loops=False)


async def wechat(stack: Stack, method: str, path: str, **kw: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.wechat_url) as c:
        r = await c.request(method, path, **kw)  # type: ignore[arg-type]
        r.raise_for_status()
        return r


async def subscribed_resident(stack: Stack, accept_in_wechat: bool = True):  # noqa: ANN201
    world = await make_world(units=1, rooms_per_unit=1)
    staff = await make_staff(world.community, StaffRoleName.APPROVER)
    app = await approved_resident(stack, world.rooms[0], await staff_headers(stack, staff))
    action = "accept" if accept_in_wechat else "reject"
    await wechat(
        stack,
        "POST",
        "/__mock__/subscribe",
        json={"openid": app.openid, "template_id": VISITOR_TMPL, "action": action},
    )
    r = await app.post(
        "/api/v1/me/subscriptions", json={"template_id": VISITOR_TMPL, "accepted": True}
    )
    assert r.status_code == 200, r.text
    assert r.json()["quota"] == 1
    resident = await Resident.get(openid=app.openid)
    return world, app, resident


async def visitor_event(resident_id: int, community_id: int, visitor: str = "张三") -> OutboxEvent:
    async with in_transaction():
        return await emit(
            EventType.VISITOR_ARRIVED,
            community_id=community_id,
            residents=[resident_id],
            payload={"visitor": visitor, "door": "南门"},
        )


async def wechat_messages(stack: Stack, openid: str) -> list[dict]:
    return (await wechat(stack, "GET", "/__mock__/messages", params={"openid": openid})).json()


async def delivery_of(note: Notification) -> NotificationDelivery:
    return await NotificationDelivery.get(notification_id=note.id, channel=Channel.WECHAT)


async def test_event_survives_a_crash_before_dispatch(quiet: Stack) -> None:
    stack = quiet
    world, app, resident = await subscribed_resident(stack)
    row = await visitor_event(resident.id, world.community.id)
    # Worker A claims the row and dies before writing anything.
    claimed = await claim(OutboxEvent, limit=1000, lease_s=30)
    assert row.id in [c.id for c in claimed]
    assert not await Notification.filter(outbox_id=row.id).exists()
    # A restarted worker waits for A's lease, then takes over.
    restarted = fresh(stack)
    await restarted.drain()
    assert not await Notification.filter(outbox_id=row.id).exists()
    clock.advance(31)
    await restarted.drain()
    row = await OutboxEvent.get(id=row.id)
    assert row.state == OutboxState.DONE and row.attempts == 2
    note = await Notification.get(outbox_id=row.id, recipient_id=resident.id)
    assert note.title_zh == "访客已到达" and "张三" in note.body_zh and "南门" in note.body_zh
    assert (await delivery_of(note)).state == DeliveryState.SENT
    [msg] = await wechat_messages(stack, app.openid)
    assert msg["data"]["name1"]["value"] == "张三"
    assert msg["data"]["thing3"]["value"] == "南门"
    # A second run finds nothing to do: the row is delivered once.
    assert await fresh(stack).drain() == 0
    assert await Notification.filter(outbox_id=row.id).count() == 1


async def test_a_fan_out_whose_lease_was_taken_writes_nothing(quiet: Stack) -> None:
    """The fan-out (one statement on PostgreSQL) writes copies, deliveries and attempts
    only while it still holds the row's lease; then the new holder fans it out once."""
    stack = quiet
    world, app, resident = await subscribed_resident(stack)
    row = await visitor_event(resident.id, world.community.id)
    [held] = await fanout_sql.claim_outbox(limit=10, lease_s=30, now=utcnow())
    assert held.id == row.id and held.recipients["residents"] == [resident.id]
    await OutboxEvent.filter(id=row.id).update(lease_token="taken-over-by-another")
    assert await fresh(stack)._write_notifications(held, "Asia/Shanghai") is None
    assert not await Notification.filter(outbox_id=row.id).exists()
    assert (await OutboxEvent.get(id=row.id)).state == OutboxState.PROCESSING
    await OutboxEvent.filter(id=row.id).update(state=OutboxState.PENDING, lease_token=None)
    assert await fresh(stack).drain() >= 1
    note = await Notification.get(outbox_id=row.id)
    assert (await delivery_of(note)).state == DeliveryState.SENT
    inapp = NotificationAttempt.filter(notification_id=note.id, channel=Channel.INAPP)
    assert await inapp.count() == 1


async def test_a_fan_out_that_fails_as_the_database_drops_is_handed_back_not_held(
    quiet: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fan-out fails (a dropped connection) and so does the first try to hand the row
    back: the row is handed back on the next try and fanned out on its retry, without
    waiting out the 30 s lease."""
    import notifications.dispatcher as dispatcher_module

    stack = quiet
    # Rows other tests left due in the shared database go first: the pass below is this
    # test's row alone (the suite once had five due here, and the first hand-back that
    # failed was another test's).
    await fresh(stack).drain()
    world, app, resident = await subscribed_resident(stack)
    row = await visitor_event(resident.id, world.community.id)
    worker = fresh(stack)
    monkeypatch.setattr(dispatcher_module, "RELEASE_RETRY_S", (0.01,))

    async def dropped(*a: Any, **kw: Any) -> None:
        raise ConnectionError("connection was closed in the middle of operation")

    real_filter = OutboxEvent.filter
    refused = 0

    def filter_once_down(*a: Any, **kw: Any) -> Any:
        nonlocal refused
        if "lease_token" in kw and refused == 0:
            refused += 1
            raise ConnectionError("connection was closed in the middle of operation")
        return real_filter(*a, **kw)

    monkeypatch.setattr(worker, "_write_notifications", dropped)
    monkeypatch.setattr(OutboxEvent, "filter", filter_once_down)
    assert await worker.process_outbox() == 1
    monkeypatch.undo()
    assert refused == 1
    back = await OutboxEvent.get(id=row.id)
    assert back.state == OutboxState.PENDING and back.lease_token is None
    assert "ConnectionError" in back.last_error
    clock.advance(3)  # its retry is due (at most 2 s after one failure), not its 30 s lease
    assert await fresh(stack).drain() >= 1
    assert await Notification.filter(outbox_id=row.id).count() == 1


async def test_emit_rolls_back_with_its_transaction(quiet: Stack) -> None:
    world = await make_world(units=1, rooms_per_unit=1)
    with pytest.raises(RuntimeError):
        async with in_transaction():
            row = await emit(
                EventType.DOOR_OPENED,
                community_id=world.community.id,
                rooms=[world.rooms[0].id],
                payload={"door": "1单元门", "method": "远程开门"},
            )
            raise RuntimeError("the event itself failed")
    assert not await OutboxEvent.filter(id=row.id).exists()


async def test_emit_dedupes_and_validates(quiet: Stack) -> None:
    world = await make_world(units=1, rooms_per_unit=1)
    kw = {
        "community_id": world.community.id,
        "staff_roles": [StaffRoleName.GUARD],
        "payload": {"alarm": "强行开门", "place": "北门"},
        "dedupe_key": f"alarm:{world.community.id}:1",
    }
    async with in_transaction():
        first = await emit(EventType.SECURITY_ALARM, **kw)
        second = await emit(EventType.SECURITY_ALARM, **kw)
    assert first.id == second.id
    with pytest.raises(ValueError, match="payload lacks"):
        await emit(EventType.SECURITY_ALARM, community_id=1, staff=[1], payload={"alarm": "x"})
    with pytest.raises(ValueError, match="no recipients"):
        await emit(EventType.DOOR_OPENED, community_id=1, payload={"door": "x", "method": "y"})
    with pytest.raises(ValueError, match="unknown"):
        await emit("pizza_ready", community_id=1, residents=[1], payload={})


async def test_room_members_and_staff_roles_are_recipients(quiet: Stack) -> None:
    stack = quiet
    world = await make_world(units=1, rooms_per_unit=1)
    approver = await make_staff(world.community, StaffRoleName.APPROVER)
    guard = await make_staff(world.community, StaffRoleName.GUARD)
    h = await staff_headers(stack, approver)
    a = await approved_resident(stack, world.rooms[0], h)
    b = await approved_resident(stack, world.rooms[0], h, role="family")
    async with in_transaction():
        door = await emit(
            EventType.DOOR_OPENED,
            community_id=world.community.id,
            rooms=[world.rooms[0].id],
            payload={"door": "1单元门", "method": "快递通行证", "method_en": "delivery pass"},
        )
        alarm = await emit(
            EventType.SECURITY_ALARM,
            community_id=world.community.id,
            staff_roles=[StaffRoleName.GUARD],
            payload={"alarm": "强行开门", "alarm_en": "forced open", "place": "北门"},
        )
    await fresh(stack).drain()
    ids = {r.id for r in await Resident.filter(openid__in=[a.openid, b.openid])}
    got = await Notification.filter(outbox_id=door.id).values_list("recipient_id", flat=True)
    assert set(got) == ids
    [staff_note] = await Notification.filter(outbox_id=alarm.id)
    assert (staff_note.recipient_type, staff_note.recipient_id) == ("staff", guard.id)
    assert staff_note.mandatory and "forced open" in staff_note.body_en
    r = await stack.client.get(
        "/api/v1/notifications",
        headers={**await staff_headers(stack, guard), "Accept-Language": "en"},
    )
    assert r.json()["items"][0]["title"] == "Security alarm"


async def test_wechat_token_expiry_mid_send_is_recovered(quiet: Stack) -> None:
    stack = quiet
    world, app, resident = await subscribed_resident(stack)
    await visitor_event(resident.id, world.community.id)
    # Make sure the client holds a token, then let WeChat expire it under our feet.
    await stack.runtime.get(WECHAT).client.access_token()
    await wechat(stack, "POST", "/__mock__/expire_tokens")
    await fresh(stack).drain()
    note = await Notification.get(recipient_id=resident.id, recipient_type="resident")
    delivery = await delivery_of(note)
    assert delivery.state == DeliveryState.SENT and delivery.attempts == 1
    assert len(await wechat_messages(stack, app.openid)) == 1
    attempt = await NotificationAttempt.get(delivery_id=delivery.id)
    assert attempt.outcome == "ok"


async def test_refused_in_wechat_falls_back_to_in_app(quiet: Stack) -> None:
    stack = quiet
    # We were told "accepted", but WeChat says 43101 (refused later, or quota used up).
    world, app, resident = await subscribed_resident(stack, accept_in_wechat=False)
    await visitor_event(resident.id, world.community.id)
    await fresh(stack).drain()
    note = await Notification.get(recipient_id=resident.id, recipient_type="resident")
    delivery = await delivery_of(note)
    assert delivery.state == DeliveryState.UNDELIVERABLE
    attempt = await NotificationAttempt.get(delivery_id=delivery.id)
    assert (attempt.outcome, attempt.error_code) == ("refused_or_no_quota", 43101)
    sub = await WeChatSubscription.get(resident_id=resident.id, template_id=VISITOR_TMPL)
    assert sub.quota == 0
    assert await wechat_messages(stack, app.openid) == []
    r = await app.get("/api/v1/notifications")
    assert [i["id"] for i in r.json()["items"]] == [note.id]


async def test_no_local_quota_means_no_wechat_call(quiet: Stack) -> None:
    stack = quiet
    world, app, resident = await subscribed_resident(stack)
    r = await app.post(
        "/api/v1/me/subscriptions", json={"template_id": VISITOR_TMPL, "accepted": False}
    )
    assert r.json() == {"template_id": VISITOR_TMPL, "quota": 0, "refused": True}
    calls_before = (await wechat(stack, "GET", "/__mock__/stats")).json().get(SEND, 0)
    await visitor_event(resident.id, world.community.id)
    await fresh(stack).drain()
    note = await Notification.get(recipient_id=resident.id, recipient_type="resident")
    assert (await delivery_of(note)).state == DeliveryState.UNDELIVERABLE
    assert (await wechat(stack, "GET", "/__mock__/stats")).json().get(SEND, 0) == calls_before
    r = await app.post("/api/v1/me/subscriptions", json={"template_id": "nope", "accepted": True})
    assert r.status_code == 404


async def test_rate_limit_backs_off_then_delivers(quiet: Stack) -> None:
    stack = quiet
    world, app, resident = await subscribed_resident(stack)
    await wechat(stack, "POST", "/__mock__/faults", json={"endpoint": SEND, "errcode": 45011})
    await visitor_event(resident.id, world.community.id)
    dispatcher = fresh(stack)
    await dispatcher.drain()
    note = await Notification.get(recipient_id=resident.id, recipient_type="resident")
    delivery = await delivery_of(note)
    assert delivery.state == DeliveryState.PENDING
    # WeChat asked for a minute: not retried before that.
    assert delivery.next_attempt_at >= utcnow() + timedelta(seconds=59)
    await dispatcher.drain()
    assert (await delivery_of(note)).state == DeliveryState.PENDING
    clock.advance(200)
    await dispatcher.drain()
    delivery = await delivery_of(note)
    assert delivery.state == DeliveryState.SENT and delivery.attempts == 2
    outcomes = await NotificationAttempt.filter(delivery_id=delivery.id).order_by("id")
    assert [(a.outcome, a.error_code) for a in outcomes] == [
        ("rate_limited", 45011),
        ("ok", None),
    ]


async def test_wechat_down_retries_with_backoff_then_gives_up(quiet: Stack) -> None:
    stack = quiet
    world, app, resident = await subscribed_resident(stack)
    await wechat(
        stack, "POST", "/__mock__/faults", json={"endpoint": SEND, "errcode": -1, "count": 50}
    )
    await visitor_event(resident.id, world.community.id)
    dispatcher = fresh(stack)
    waits = []
    for _ in range(dispatcher.policy.wechat_max_attempts):
        await dispatcher.drain()
        note = await Notification.get(recipient_id=resident.id, recipient_type="resident")
        delivery = await delivery_of(note)
        if delivery.state != DeliveryState.PENDING:
            break
        waits.append((delivery.next_attempt_at - utcnow()).total_seconds())
        clock.advance(waits[-1] + 1)
    assert delivery.state == DeliveryState.FAILED
    assert delivery.attempts == dispatcher.policy.wechat_max_attempts
    assert waits[-1] > waits[0] * 4  # exponential, not constant
    await wechat(stack, "POST", "/__mock__/reset")


async def test_unread_counts_and_mark_read(quiet: Stack) -> None:
    stack = quiet
    world, app, resident = await subscribed_resident(stack)
    for name in ("甲", "乙", "丙"):
        await visitor_event(resident.id, world.community.id, name)
    await fresh(stack).drain()
    r = await app.get("/api/v1/notifications/unread-count")
    assert r.json() == {"unread": 3}
    page = (await app.get("/api/v1/notifications", params={"limit": 2})).json()
    assert len(page["items"]) == 2 and page["next"] and page["unread"] == 3
    assert "丙" in page["items"][0]["body"]  # newest first
    rest = await app.get("/api/v1/notifications", params={"cursor": page["next"]})
    assert [i["body"] for i in rest.json()["items"]][0].count("甲") == 1
    assert rest.json()["unread"] == 3 and rest.json()["next"] is None
    # A page past the last notification still says how many are unread (one statement
    # reads the page and the count: an empty page must not lose it).
    oldest = rest.json()["items"][-1]["id"]
    past = await app.get("/api/v1/notifications", params={"cursor": encode_cursor(oldest)})
    assert past.json() == {"items": [], "next": None, "unread": 3}
    newest = page["items"][0]["id"]
    assert (await app.post(f"/api/v1/notifications/{newest}/read")).status_code == 200
    assert (await app.get("/api/v1/notifications/unread-count")).json() == {"unread": 2}
    unread = await app.get("/api/v1/notifications", params={"unread_only": True})
    assert newest not in [i["id"] for i in unread.json()["items"]]
    # Someone else's notification is "not found", not "forbidden".
    staff = await make_staff(world.community, StaffRoleName.APPROVER)
    other = await approved_resident(stack, world.rooms[0], await staff_headers(stack, staff))
    r = await other.post(f"/api/v1/notifications/{newest - 1}/read")
    assert r.status_code == 404 and error_code(r) == "not_found"
    mine = (await other.get("/api/v1/notifications")).json()
    assert mine["unread"] == len([i for i in mine["items"] if i["read_at"] is None])
    assert newest not in [i["id"] for i in mine["items"]]
    assert (await app.post("/api/v1/notifications/read-all")).json() == {"marked": 2}
    assert (await app.get("/api/v1/notifications/unread-count")).json() == {"unread": 0}


async def test_unread_count_refuses_a_deleted_account_at_once(quiet: Stack) -> None:
    """The count is read by the statement that reads the caller's row: a deleted account
    is still refused on its next request, however it was deleted, and staff still count
    their own."""
    stack = quiet
    world, app, resident = await subscribed_resident(stack)
    await visitor_event(resident.id, world.community.id)
    await fresh(stack).drain()
    r = await app.get("/api/v1/notifications/unread-count")
    assert r.status_code == 200 and r.json() == {"unread": 1}
    # A bulk UPDATE (no save, no signal, no other process told) counts at once.
    await Resident.filter(id=resident.id).update(deleted_at=utcnow())
    r = await app.get("/api/v1/notifications/unread-count")
    assert r.status_code == 401 and error_code(r) == "token_invalid"
    await Resident.filter(id=resident.id).update(deleted_at=None)
    assert (await app.get("/api/v1/notifications/unread-count")).json() == {"unread": 1}
    # The account deleted as its owner deletes it.
    assert (await app.delete("/api/v1/me")).status_code == 200
    r = await app.get("/api/v1/notifications/unread-count")
    assert r.status_code == 401 and error_code(r) == "token_invalid"
    # A token naming nobody.
    nobody = issue_access_token(stack.settings, "resident", 2_147_483_000)
    r = await stack.client.get(
        "/api/v1/notifications/unread-count", headers={"Authorization": f"Bearer {nobody}"}
    )
    assert r.status_code == 401 and error_code(r) == "token_invalid"
    # Staff: their own count, and refused once deactivated.
    staff = await make_staff(world.community, StaffRoleName.APPROVER)
    h = await staff_headers(stack, staff)
    r = await stack.client.get("/api/v1/notifications/unread-count", headers=h)
    assert r.status_code == 200 and r.json()["unread"] >= 0
    await StaffAccount.filter(id=staff.id).update(is_active=False)
    r = await stack.client.get("/api/v1/notifications/unread-count", headers=h)
    assert r.status_code == 401 and error_code(r) == "token_invalid"


async def test_times_in_the_community_time_zone(quiet: Stack) -> None:
    stack = quiet
    world, app, resident = await subscribed_resident(stack)
    world.community.timezone = "America/New_York"
    await world.community.save(update_fields=["timezone"])
    await visitor_event(resident.id, world.community.id)
    await fresh(stack).drain()
    [item] = (await app.get("/api/v1/notifications")).json()["items"]
    assert item["timezone"] == "America/New_York"
    assert item["created_at"].endswith(("-05:00", "-04:00"))
    [msg] = await wechat_messages(stack, app.openid)
    note = await Notification.get(id=item["id"])
    assert msg["data"]["time2"]["value"] == note.data["time"]
    assert item["created_at"][:16].replace("T", " ")[:13] == note.data["time"][:13]


async def test_preferences_mute_allowed_mandatory_refused(quiet: Stack) -> None:
    stack = quiet
    world, app, resident = await subscribed_resident(stack)
    prefs = {
        p["event_type"]: p
        for p in (await app.get("/api/v1/notifications/preferences")).json()["items"]
    }
    assert prefs["door_opened"] == {**prefs["door_opened"], "mandatory": False, "muted": False}
    assert prefs["membership_ended"]["mandatory"] and prefs["security_alarm"]["mandatory"]
    assert "device_offline" not in prefs  # staff only
    r = await app.api.put(
        "/api/v1/notifications/preferences/door_opened", json={"muted": True}, headers=app.headers
    )
    assert r.status_code == 200 and r.json()["muted"] is True
    for mandatory in ("security_alarm", "membership_ended"):
        r = await app.api.put(
            f"/api/v1/notifications/preferences/{mandatory}",
            json={"muted": True},
            headers=app.headers,
        )
        assert r.status_code == 422 and error_code(r) == "notification_mandatory", r.text
        assert "不能关闭" in r.json()["error"]["message_zh"]
    r = await app.api.put(
        "/api/v1/notifications/preferences/nope", json={"muted": True}, headers=app.headers
    )
    assert r.status_code == 404
    async with in_transaction():
        await emit(
            EventType.DOOR_OPENED,
            community_id=world.community.id,
            residents=[resident.id],
            payload={"door": "南门", "method": "远程开门"},
        )
        await emit(
            EventType.SECURITY_ALARM,
            community_id=world.community.id,
            residents=[resident.id],
            payload={"alarm": "火警", "place": "2栋"},
        )
    await fresh(stack).drain()
    notes = {n.event_type: n for n in await Notification.filter(recipient_id=resident.id)}
    # The muted type is kept for the record, already read and never pushed.
    assert notes["door_opened"].muted and notes["door_opened"].read_at is not None
    assert not await NotificationDelivery.filter(notification_id=notes["door_opened"].id).exists()
    assert not notes["security_alarm"].muted
    assert (await app.get("/api/v1/notifications/unread-count")).json() == {"unread": 1}
    r = await app.api.put(
        "/api/v1/notifications/preferences/door_opened", json={"muted": False}, headers=app.headers
    )
    assert r.json()["muted"] is False


async def _gate(world: object) -> Device:
    return await Device.create(
        device_uid=f"gate-{secrets.token_hex(4)}",
        community=world.community,  # type: ignore[attr-defined]
        kind=DeviceKind.FACE_GATE,
        name="南门",
        methods=["remote", "intercom"],
    )


async def test_a_door_notice_is_queued_with_its_access_row_or_not_at_all(quiet: Stack) -> None:
    world = await make_world(units=1, rooms_per_unit=1)
    device, room = await _gate(world), world.rooms[0]
    notice = Notice(
        EventType.DOOR_OPENED,
        world.community.id,
        {"door": "南门", "method": "手机开门", "method_en": "remote open"},
        rooms=(room.id,),
    )
    opened = Decision(True, "remote_open", room_id=room.id)
    row = await record_access(
        device, world.community.id, AccessMethod.REMOTE, opened, notice=notice
    )
    assert row is not None
    queued = await OutboxEvent.get(dedupe_key=f"access:{row.id}")
    assert queued.event_type == "door_opened" and queued.recipients["rooms"] == [room.id]
    # The same notice after a redelivered event: no second row, no second message.
    key = f"ev-{secrets.token_hex(6)}"
    first = await record_access(
        device, world.community.id, AccessMethod.REMOTE, opened, event_key=key, notice=notice
    )
    again = await record_access(
        device, world.community.id, AccessMethod.REMOTE, opened, event_key=key, notice=notice
    )
    assert first is not None and again is None
    assert await OutboxEvent.filter(dedupe_key=f"access:{first.id}").count() == 1
    # A door that did not open (refused, or no ack) sends nothing.
    failed = await record_access(
        device,
        world.community.id,
        AccessMethod.REMOTE,
        opened,
        result=AccessResult.FAILED,
        notice=notice,
    )
    assert failed is not None
    assert not await OutboxEvent.filter(dedupe_key=f"access:{failed.id}").exists()
    # Both or neither: a message that cannot be queued takes the row with it.
    broken = Notice(EventType.DOOR_OPENED, world.community.id, {"door": "南门"}, rooms=(room.id,))
    before = await AccessEvent.filter(community_id=world.community.id).count()
    with pytest.raises(ValueError, match="payload lacks"):
        await record_access(device, world.community.id, AccessMethod.REMOTE, opened, notice=broken)
    assert await AccessEvent.filter(community_id=world.community.id).count() == before


def test_a_door_notice_survives_the_claims_json() -> None:
    """A claimed event keeps its notice as JSON, so a row finished after a crash sends it."""
    notice = Notice(
        EventType.VISITOR_ARRIVED, 7, {"visitor": "张三", "door": "南门"}, residents=(3,)
    )
    assert Notice.from_dict(json.loads(json.dumps(notice.as_dict()))) == notice
    assert Notice.from_dict(None) is None


async def test_an_intercom_call_and_its_message_are_one_write(quiet: Stack) -> None:
    stack = quiet
    world = await make_world(units=1, rooms_per_unit=1)
    device, room = await _gate(world), world.rooms[0]
    resident = await Resident.create(openid=f"o-{secrets.token_hex(6)}")
    key = f"ev-{secrets.token_hex(6)}"
    label = await room_label(room.id)
    call = await start_call(stack.runtime, device, room, key, [resident.id], label)
    queued = await OutboxEvent.get(dedupe_key=f"intercom:{call.id}")
    assert queued.recipients["residents"] == [resident.id]
    assert queued.payload["call_id"] == call.id
    # The panel's redelivered event rings nothing new.
    again = await start_call(stack.runtime, device, room, key, [resident.id], label)
    assert again.id == call.id
    assert await IntercomCallRecord.filter(event_key=key).count() == 1
    assert await OutboxEvent.filter(dedupe_key=f"intercom:{call.id}").count() == 1


async def test_membership_ended_is_queued_with_the_move_out(quiet: Stack) -> None:
    stack = quiet
    world = await make_world(units=1, rooms_per_unit=1)
    staff = await make_staff(world.community, StaffRoleName.APPROVER)
    h = await staff_headers(stack, staff)
    app = await approved_resident(stack, world.rooms[0], h)
    [m] = (await app.get("/api/v1/me/memberships")).json()["items"]
    r = await stack.client.post(
        f"/api/v1/staff/memberships/{m['id']}/end", json={"reason": "搬走了"}, headers=h
    )
    assert r.status_code == 200, r.text
    # Written in the move-out's own transaction: there when the response is.
    assert await OutboxEvent.filter(dedupe_key=f"membership_ended:{m['id']}").exists()
    await fresh(stack).drain()
    resident = await Resident.get(openid=app.openid)
    note = await Notification.get(recipient_id=resident.id, event_type="membership_ended")
    assert note.mandatory and "1栋1单元101" in note.body_zh


def test_wechat_values_fit_the_field_limits() -> None:
    assert len(fit("thing3", "一" * 40)) == 20 and fit("thing3", "一" * 40).endswith("…")
    assert fit("phrase1", "Fire 火警 alarm!") == "火警"
    assert fit("phrase1", "强行开门告警啦") == "强行开门告"
    assert fit("phrase1", "abc") == "通知"
    assert fit("character_string2", "AB 12-34 取件码") == "AB12-34"
    assert fit("name1", "x" * 30) == "x" * 20 and len(fit("name1", "张" * 30)) == 10
    assert fit("thing4", "") == "-"
    assert fit("thing4", "two\nlines") == "two lines"


async def test_no_wechat_send_starts_late_in_a_lease(quiet: Stack) -> None:
    """A batch that has held its deliveries too long sends no more of them: another worker
    may take them over when the lease runs out, and the message must not go twice."""
    stack = quiet
    world, app, resident = await subscribed_resident(stack)
    await visitor_event(resident.id, world.community.id)
    late = Dispatcher(stack.runtime, run_loops=False, lease_s=0.0)  # no time left to send
    assert await late.process_outbox() == 1
    assert await late.process_deliveries() == 1
    note = await Notification.get(recipient_id=resident.id, recipient_type="resident")
    delivery = await delivery_of(note)
    assert delivery.state == DeliveryState.PENDING and delivery.lease_token is None
    assert [a.outcome for a in await NotificationAttempt.filter(delivery_id=delivery.id)] == [
        "deferred"
    ]
    assert await wechat_messages(stack, app.openid) == []
    clock.advance(10)  # past its backoff (5 s at most after a first try)
    try:
        await fresh(stack).drain()
    finally:
        clock.reset()
    assert (await delivery_of(note)).state == DeliveryState.SENT
    assert len(await wechat_messages(stack, app.openid)) == 1


async def test_a_crashed_workers_deliveries_are_taken_over_after_its_lease(quiet: Stack) -> None:
    stack = quiet
    world, app, resident = await subscribed_resident(stack)
    await visitor_event(resident.id, world.community.id)
    assert await fresh(stack).process_outbox() == 1
    held = await fanout_sql.claim_deliveries(limit=10, lease_s=30, now=utcnow())  # then dies
    assert len(held) == 1
    assert await fresh(stack).process_deliveries() == 0  # its lease still holds
    clock.advance(31)
    try:
        assert await fresh(stack).process_deliveries() == 1
    finally:
        clock.reset()
    note = await Notification.get(recipient_id=resident.id, recipient_type="resident")
    delivery = await delivery_of(note)
    assert (delivery.state, delivery.attempts) == (DeliveryState.SENT, 2)
    assert len(await wechat_messages(stack, app.openid)) == 1
