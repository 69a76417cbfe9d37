"""Act only if recorded: a device event moves a door at most once, whatever happens.

Replays after a server restart, events dated long ago or buffered offline, a bridge that
dies between claiming an event and writing its row, a handler that raises: each is handled
once, with an access row, and no door opens twice or late. Both backends.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from anxin.clock import clock, utcnow
from boot.roles import build_runtime
from device_bridge import event_claims
from device_bridge.doors import PreparedCommand
from device_bridge.mqtt import MqttServerTransport
from device_bridge.protocol import Topics, encode, new_id, now_ms, parse_event
from device_bridge.service import BRIDGE
from device_bridge.signing import device_key, sign
from device_bridge.transport import InboundEvent
from models import (
    AccessCard,
    AccessEvent,
    Alarm,
    CommandStatus,
    DeviceCommand,
    DeviceEventClaim,
    DeviceEventState,
    StaffRoleName,
)
from tests.devices import register_device, simulator
from tests.helpers import approved_resident, make_staff, make_world, staff_headers
from tests.mqtt_support import env_mqtt_url, unique_root
from tests.stack import Stack


async def _card_world(stack: Stack) -> tuple[dict[str, Any], str]:
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    resident = await approved_resident(stack, world.rooms[0], admin_h)
    me = (await resident.get("/api/v1/me")).json()
    card_no = f"C-{secrets.token_hex(4)}"
    await AccessCard.create(community=world.community, resident_id=me["id"], card_no=card_no)
    gate = await register_device(stack, world.community.id, admin_h, kind="face_gate")
    return gate, card_no


def _signed_swipe(gate: dict[str, Any], card_no: str, **extra: Any) -> dict[str, Any]:
    event = {
        "v": 1,
        "id": new_id(),
        "device_id": gate["device_uid"],
        "ts": now_ms(),
        "seq": 1,
        "type": "card_swipe",
        "door": 1,
        "card_no": card_no,
        **extra,
    }
    return sign(event, device_key(gate["secret"]))


def _inbound(event: dict[str, Any]) -> InboundEvent:
    return InboundEvent(event["device_id"], parse_event(event), event, True, now_ms())


async def _rows(device_id: int, count: int, wait_s: float = 10.0) -> list[AccessEvent]:
    for _ in range(int(wait_s / 0.02)):
        rows = await AccessEvent.filter(device_id=device_id).order_by("id")
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} access rows")


async def _opens(device_id: int) -> int:
    return await DeviceCommand.filter(device_id=device_id, op="open").count()


async def test_replay_after_a_server_restart_never_opens_again(stack: Stack) -> None:
    gate, card_no = await _card_world(stack)
    async with simulator(stack, gate) as sim:
        captured = await sim.swipe_card(card_no)
        await sim.wait_opened(timeout=10)
        await _rows(gate["id"], 1)
        # A restarted server: a new process with empty memory (and, on the server stack,
        # whatever short-lived keys it kept in Redis long gone) gets the captured event.
        settings = stack.settings.model_copy(
            update={
                "mqtt_shared_group": f"replay-{secrets.token_hex(4)}",
                "redis_prefix": f"{stack.settings.redis_prefix}restart-{secrets.token_hex(3)}:",
            }
        )
        restarted = build_runtime(settings, owns_database=False)
        await restarted.start()
        try:
            bridge = restarted.get(BRIDGE)
            assert await bridge.handle_event(_inbound(captured)) == "duplicate"
            # Through the transport too, as the broker would deliver it.
            assert await bridge.transport.handle_event(gate["device_uid"], captured) == "accepted"
            await asyncio.sleep(0.5)
        finally:
            await restarted.stop()
        assert len(sim.opened) == 1
    assert len(await AccessEvent.filter(device_id=gate["id"])) == 1
    assert await _opens(gate["id"]) == 1


async def test_an_event_dated_2020_never_opens(stack: Stack) -> None:
    gate, card_no = await _card_world(stack)
    bridge = stack.runtime.get(BRIDGE)
    old = int(datetime(2020, 5, 1, 8, 0, tzinfo=UTC).timestamp() * 1000)
    async with simulator(stack, gate) as sim:
        results = [
            await bridge.handle_event(_inbound(_signed_swipe(gate, card_no, ts=old))),
            await bridge.handle_event(_inbound(_signed_swipe(gate, card_no, buffered=True))),
            await bridge.handle_event(
                _inbound(_signed_swipe(gate, card_no, ts=now_ms() + 3_600_000))
            ),
        ]
        await asyncio.sleep(0.3)
        assert sim.opened == []
    assert results == ["denied", "denied", "denied"]
    rows = await AccessEvent.filter(device_id=gate["id"]).order_by("id")
    assert [r.reason for r in rows] == ["event_too_old", "event_buffered", "event_from_future"]
    assert {r.result.value for r in rows} == {"denied"}
    assert rows[0].occurred_at.year == 2020  # logged at the device's time
    assert await _opens(gate["id"]) == 0


async def test_an_event_just_inside_the_window_still_opens(stack: Stack) -> None:
    gate, card_no = await _card_world(stack)
    bridge = stack.runtime.get(BRIDGE)
    recent = now_ms() - (stack.settings.event_max_age_s - 10) * 1000
    async with simulator(stack, gate) as sim:
        assert await bridge.handle_event(_inbound(_signed_swipe(gate, card_no, ts=recent))) == (
            "granted"
        )
        assert len(sim.opened) == 1


async def test_buffered_offline_events_are_logged_not_acted_on(stack: Stack) -> None:
    gate, card_no = await _card_world(stack)
    async with simulator(stack, gate) as sim:
        sim.go_offline()
        await sim.swipe_card(card_no)  # kept in the outbox while the cable is out
        await sim.go_online()
        await sim.flush()
        rows = await _rows(gate["id"], 1)
        await asyncio.sleep(0.3)
        assert sim.opened == []
    assert rows[0].reason == "event_buffered" and rows[0].result.value == "denied"


async def _crashed_claim(
    gate: dict[str, Any], event: dict[str, Any], lease_s: float = 30, **fields: Any
) -> DeviceEventClaim:
    """What a bridge that died right after claiming the event leaves behind."""
    return await DeviceEventClaim.create(
        event_key=f"{gate['device_uid']}:{event['id']}",
        device_id=gate["id"],
        event_type=event["type"],
        lease_until=utcnow() + timedelta(seconds=lease_s),
        payload=event,
        **fields,
    )


async def test_redelivery_after_a_crash_between_claim_and_row_is_handled_once(
    stack: Stack,
) -> None:
    gate, card_no = await _card_world(stack)
    bridge = stack.runtime.get(BRIDGE)
    event = _signed_swipe(gate, card_no)
    await _crashed_claim(gate, event)
    async with simulator(stack, gate) as sim:
        # Within the dead holder's lease a redelivery is not acted on (it may be alive).
        assert await bridge.handle_event(_inbound(event)) == "in_progress"
        assert sim.opened == []
        clock.advance(bridge.lease_s + 1)  # the lease runs out
        # The redelivery takes it over (or the bridge's resume loop did, a moment before).
        assert await bridge.handle_event(_inbound(event)) in ("granted", "in_progress")
        await sim.wait_opened(timeout=15)
        key = f"{gate['device_uid']}:{event['id']}"
        for _ in range(500):
            if (await DeviceEventClaim.get(event_key=key)).state == DeviceEventState.DONE:
                break
            await asyncio.sleep(0.02)
        assert await bridge.handle_event(_inbound(event)) == "duplicate"
        assert await bridge.resume_expired() == 0
        await asyncio.sleep(0.3)
        assert len(sim.opened) == 1
    rows = await AccessEvent.filter(device_id=gate["id"])
    assert len(rows) == 1 and rows[0].result.value == "granted"
    claim = await DeviceEventClaim.get(event_key=f"{gate['device_uid']}:{event['id']}")
    assert claim.state == DeviceEventState.DONE and claim.attempts == 2 and claim.payload is None


async def test_an_unfinished_claim_is_resumed_without_a_redelivery(stack: Stack) -> None:
    gate, card_no = await _card_world(stack)
    bridge = stack.runtime.get(BRIDGE)
    event = _signed_swipe(gate, card_no)
    async with simulator(stack, gate) as sim:
        await _crashed_claim(gate, event, lease_s=-1)
        # This call or the bridge's own resume loop (every few seconds) takes it: once.
        await bridge.resume_expired()
        await sim.wait_opened(timeout=15)
        await _rows(gate["id"], 1)
        assert await bridge.resume_expired() == 0
        await asyncio.sleep(0.3)
        assert len(sim.opened) == 1
    assert len(await AccessEvent.filter(device_id=gate["id"])) == 1


async def test_a_crash_after_the_open_command_writes_the_row_and_never_reopens(
    stack: Stack,
) -> None:
    gate, card_no = await _card_world(stack)
    bridge = stack.runtime.get(BRIDGE)
    event = _signed_swipe(gate, card_no)
    command_id = new_id()
    await DeviceCommand.create(
        command_id=command_id,
        device_id=gate["id"],
        op="open",
        reason="resident",
        expires_at=utcnow() + timedelta(seconds=10),
        status=CommandStatus.DONE,
    )
    pending = {"method": "card", "reason": "resident", "resident_id": None, "plate": ""}
    await _crashed_claim(gate, event, lease_s=-1, command_id=command_id, pending=pending)
    async with simulator(stack, gate) as sim:
        # The redelivery takes the claim over, or the resume loop got there first.
        assert await bridge.handle_event(_inbound(event)) in ("granted", "in_progress")
        await _rows(gate["id"], 1)
        await asyncio.sleep(0.3)
        assert sim.opened == []  # the door opened under the dead holder; not again
    rows = await AccessEvent.filter(device_id=gate["id"])
    assert len(rows) == 1 and rows[0].command_id == command_id
    assert rows[0].result.value == "granted"  # the command it sent was acknowledged
    assert await _opens(gate["id"]) == 1


async def test_a_handler_that_raises_writes_a_row_with_the_reason(stack: Stack) -> None:
    gate, card_no = await _card_world(stack)
    bridge = stack.runtime.get(BRIDGE)
    original = bridge.handlers["card_swipe"]

    async def broken(ctx: Any) -> None:
        raise RuntimeError("database went away")

    bridge.handlers["card_swipe"] = broken
    try:
        event = _signed_swipe(gate, card_no)
        assert await bridge.handle_event(_inbound(event)) == "failed"
    finally:
        bridge.handlers["card_swipe"] = original
    assert await bridge.handle_event(_inbound(event)) == "duplicate"
    rows = await AccessEvent.filter(device_id=gate["id"])
    assert len(rows) == 1 and rows[0].reason == "handler_error"
    assert rows[0].result.value == "failed"
    assert await _opens(gate["id"]) == 0


async def _fence_event(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    fence = await register_device(stack, world.community.id, admin_h, kind="fence", methods=[])
    event = {
        "v": 1,
        "id": new_id(),
        "device_id": fence["device_uid"],
        "ts": now_ms(),
        "seq": 1,
        "type": "fence_alarm",
        "zone": "north-3",
        "alarm": "intrusion",
    }
    return fence, sign(event, device_key(fence["secret"]))


async def test_an_alarm_whose_handler_fails_through_a_database_outage_is_recorded_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An alarm has no row but itself: a handler error (the database dropping its
    connections) must not close its claim unrecorded, as it did."""
    import device_bridge.service as service

    monkeypatch.setattr(service, "HANDLER_RETRY_S", (0.01, 0.01, 0.01))
    fence, event = await _fence_event(stack)
    bridge = stack.runtime.get(BRIDGE)
    original = bridge.handlers["fence_alarm"]
    failures = 0

    async def outage(ctx: Any) -> None:
        nonlocal failures
        if failures < 2:
            failures += 1
            raise ConnectionError("connection was closed in the middle of operation")
        await original(ctx)

    monkeypatch.setitem(bridge.handlers, "fence_alarm", outage)
    assert await bridge.handle_event(_inbound(event)) == "handled"
    assert failures == 2
    assert await bridge.handle_event(_inbound(event)) == "duplicate"
    alarms = await Alarm.filter(device_id=fence["id"])
    assert len(alarms) == 1 and alarms[0].event_key == f"{fence['device_uid']}:{event['id']}"


async def test_an_alarm_whose_handler_keeps_failing_is_left_to_the_resume_loop(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import device_bridge.service as service

    monkeypatch.setattr(service, "HANDLER_RETRY_S", (0.01,))
    fence, event = await _fence_event(stack)
    bridge = stack.runtime.get(BRIDGE)
    original = bridge.handlers["fence_alarm"]

    async def down(ctx: Any) -> None:
        raise ConnectionError("the database is down")

    monkeypatch.setitem(bridge.handlers, "fence_alarm", down)
    assert await bridge.handle_event(_inbound(event)) == "handler_error"
    claim = await DeviceEventClaim.get(event_key=f"{fence['device_uid']}:{event['id']}")
    assert claim.state == DeviceEventState.HANDLING  # not closed: nothing recorded it yet
    assert await Alarm.filter(device_id=fence["id"]).count() == 0
    # The database is back; after the lease the resume loop records it, once.
    monkeypatch.setitem(bridge.handlers, "fence_alarm", original)
    clock.advance(bridge.lease_s + 1)
    assert await bridge.resume_expired() == 1
    assert await bridge.resume_expired() == 0
    assert await Alarm.filter(device_id=fence["id"]).count() == 1
    claim = await DeviceEventClaim.get(event_key=f"{fence['device_uid']}:{event['id']}")
    assert claim.state != DeviceEventState.HANDLING


async def test_the_broker_redelivers_an_event_the_bridge_never_made_durable() -> None:
    """Mosquitto: the bridge PUBACKs an event only once it is claimed, so one in flight
    when the process died comes again on its persistent session."""
    import aiomqtt

    from device_bridge.mqtt import parse_mqtt_url

    url, root = env_mqtt_url(), unique_root()
    client_id = f"anxin-test-bridge-{secrets.token_hex(4)}"

    def transport() -> MqttServerTransport:
        return MqttServerTransport(
            url, root=root, client_id=client_id, persistent=True, confirm_when_settled=True
        )

    first = transport()
    try:
        await first.start()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no Mosquitto at {url}: {exc}")
    event = {"v": 1, "id": new_id(), "device_id": "gate-x", "ts": now_ms(), "type": "card_swipe"}
    event["card_no"] = "1"
    p = parse_mqtt_url(url)
    async with aiomqtt.Client(p.host, p.port) as device:
        await device.publish(Topics(root).evt("gate-x"), encode(event), qos=1)
    got = await first.next_event(timeout=5)
    assert got.event.id == event["id"]
    first.conn.drop()  # dies before the claim: no PUBACK
    await first.stop()
    second = transport()
    await second.start()
    try:
        again = await second.next_event(timeout=5)
        assert again.event.id == event["id"]
        again.settled(True)  # claimed now: PUBACK
        await asyncio.sleep(0.2)
    finally:
        await second.stop()
    third = transport()
    await third.start()
    try:
        with pytest.raises(TimeoutError):
            await third.next_event(timeout=1)
    finally:
        await third.stop()
        # Leave no session behind on the shared broker.
        async with aiomqtt.Client(p.host, p.port, identifier=client_id, clean_session=True):
            pass


async def test_a_captured_event_published_again_through_the_broker_never_opens(
    stack: Stack,
) -> None:
    """The attack as it was found: a validly signed card swipe captured and re-published on
    the device's topic (with the device's login) after the process forgot it."""
    import aiomqtt

    from device_bridge.broker import device_client_id
    from device_bridge.mqtt import parse_mqtt_url

    gate, card_no = await _card_world(stack)
    bridge = stack.runtime.get(BRIDGE)
    async with simulator(stack, gate) as sim:
        captured = await sim.swipe_card(card_no)
        await sim.wait_opened(timeout=10)
        await _rows(gate["id"], 1)
    bridge.transport._seen = type(bridge.transport._seen)()  # noqa: SLF001 - a restart
    before = bridge.reject.counts["duplicate"]
    p = parse_mqtt_url(bridge.mqtt_url)
    uid = gate["device_uid"]
    login = {"username": uid, "password": gate["secret"], "identifier": device_client_id(uid)}
    async with aiomqtt.Client(p.host, p.port, **login) as attacker:
        await attacker.publish(Topics(stack.settings.topic_root).evt(uid), encode(captured), qos=1)
    for _ in range(250):
        if bridge.reject.counts["duplicate"] > before:
            break
        await asyncio.sleep(0.02)
    assert bridge.reject.counts["duplicate"] == before + 1
    assert len(await AccessEvent.filter(device_id=gate["id"])) == 1
    assert await _opens(gate["id"]) == 1


async def test_two_bridges_racing_on_one_event_decide_it_once(stack: Stack) -> None:
    gate, card_no = await _card_world(stack)
    settings = stack.settings.model_copy(
        update={"mqtt_shared_group": f"race-{secrets.token_hex(4)}"}
    )
    other = build_runtime(settings, owns_database=False)
    await other.start()
    try:
        event = _signed_swipe(gate, card_no)
        async with simulator(stack, gate) as sim:
            results = await asyncio.gather(
                stack.runtime.get(BRIDGE).handle_event(_inbound(event)),
                other.get(BRIDGE).handle_event(_inbound(event)),
            )
            await asyncio.sleep(0.3)
            assert len(sim.opened) <= 1
    finally:
        await other.stop()
    assert sum(r not in ("duplicate", "in_progress") for r in results) == 1
    assert len(await AccessEvent.filter(device_id=gate["id"])) == 1
    assert await _opens(gate["id"]) == 1


async def test_an_event_not_yet_claimed_is_not_confirmed_and_comes_again(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP push: the upload is answered 200 only once the event is claimed; when the
    database is unreachable it is answered 503, the terminal keeps the event in its outbox
    and sends it again, and it is handled once."""
    import httpx

    from device_bridge import event_claims
    from device_bridge.http_push import HttpDeviceLink
    from device_bridge.simulator.device import DeviceConfig, SimulatedDevice

    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    resident = await approved_resident(stack, world.rooms[0], admin_h)
    me = (await resident.get("/api/v1/me")).json()
    card_no = f"H-{secrets.token_hex(3)}"
    await AccessCard.create(community=world.community, resident_id=me["id"], card_no=card_no)
    gate = await register_device(
        stack, world.community.id, admin_h, kind="face_gate", transport="http_push"
    )
    real_claim, failures = event_claims.claim, []

    async def flaky_claim(*args: Any, **kw: Any) -> Any:
        if not failures:
            failures.append(1)
            raise ConnectionError("database unreachable")
        return await real_claim(*args, **kw)

    monkeypatch.setattr(event_claims, "claim", flaky_claim)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stack.app), base_url="http://anxin.test"
    )
    link = HttpDeviceLink(
        "http://anxin.test", gate["device_uid"], gate["secret"], client=client, poll_wait_s=1.0
    )
    sim = SimulatedDevice(
        DeviceConfig(device_id=gate["device_uid"], secret=gate["secret"], kind="face_gate"),
        link=link,
    )
    await sim.start()
    try:
        evt = await sim.swipe_card(card_no)
        await sim.wait_opened(timeout=10)
        await sim.flush()
        rows = await _rows(gate["id"], 1)
        await asyncio.sleep(0.3)
    finally:
        await sim.stop()
        await client.aclose()
    assert failures == [1]  # the first delivery was not claimed, and not confirmed
    assert len(sim.opened) == 1 and [e["id"] for e in sim.sent].count(evt["id"]) == 1
    assert len(await AccessEvent.filter(device_id=gate["id"])) == 1
    assert rows[0].result.value == "granted"


async def test_a_holder_past_its_lease_never_sends_a_command(stack: Stack) -> None:
    """A handler slower than its lease (the event was taken over meanwhile) must not open:
    only the claim's current holder may send the door command."""
    gate, card_no = await _card_world(stack)
    bridge = stack.runtime.get(BRIDGE)
    original = bridge.handlers["card_swipe"]
    event = _signed_swipe(gate, card_no)
    key = f"{gate['device_uid']}:{event['id']}"

    async def slow(ctx: Any) -> Any:
        attempt = await original(ctx)
        # Meanwhile the lease ran out and another process took the event over.
        await DeviceEventClaim.filter(event_key=key).update(attempts=ctx.claim.attempts + 1)
        return attempt

    bridge.handlers["card_swipe"] = slow
    try:
        async with simulator(stack, gate) as sim:
            assert await bridge.handle_event(_inbound(event)) == "claim_lost"
            await asyncio.sleep(0.3)
            assert sim.opened == []
    finally:
        bridge.handlers["card_swipe"] = original
    assert await _opens(gate["id"]) == 0
    assert await AccessEvent.filter(device_id=gate["id"]).count() == 0  # the new holder writes


async def test_a_server_open_interrupted_after_its_command_is_logged_once_by_the_resume_loop(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote open whose process dies after the command went out and before its row:
    the claim the open took before the command is resumed into the row, from the command's
    outcome, and the door is never opened a second time."""
    import device_bridge.service as service
    from domain.access.policy import Decision
    from models import AccessMethod, Device

    gate, _ = await _card_world(stack)
    bridge = stack.runtime.get(BRIDGE)
    device = await Device.get(id=gate["id"])

    async def dies(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("the worker died here")

    async with simulator(stack, gate) as sim:
        monkeypatch.setattr(service, "record_access", dies)
        with pytest.raises(SystemExit):
            await bridge.open_and_log(
                device, AccessMethod.REMOTE, Decision(True, "remote_open"), timeout=5
            )
        monkeypatch.undo()
        assert len(sim.opened) == 1  # the door moved...
        assert await AccessEvent.filter(device_id=gate["id"]).count() == 0  # ...no row yet
        (held,) = await DeviceEventClaim.filter(
            device_id=gate["id"], event_type=event_claims.SERVER_OPEN
        )
        assert held.state == DeviceEventState.HANDLING
        assert held.command_id  # noted before the command went out
        assert await bridge.resume_expired() == 0  # within its lease the holder may live
        clock.advance(bridge.lease_s + 1)
        assert await bridge.resume_expired() == 1
        assert await bridge.resume_expired() == 0
        await asyncio.sleep(0.3)
        assert len(sim.opened) == 1  # never a second command
    (row,) = await AccessEvent.filter(device_id=gate["id"])
    assert row.command_id == held.command_id and row.method == AccessMethod.REMOTE
    assert row.result.value == "granted"
    assert await _opens(gate["id"]) == 1
    await held.refresh_from_db()
    assert held.state == DeviceEventState.DONE


async def test_a_completed_server_open_leaves_no_claim_to_resume(stack: Stack) -> None:
    from domain.access.policy import Decision
    from models import AccessMethod, Device

    gate, _ = await _card_world(stack)
    bridge = stack.runtime.get(BRIDGE)
    device = await Device.get(id=gate["id"])
    async with simulator(stack, gate) as sim:
        outcome, row = await bridge.open_and_log(
            device, AccessMethod.REMOTE, Decision(True, "remote_open"), timeout=5
        )
        assert outcome is not None and outcome.ok and row is not None
        assert len(sim.opened) == 1
    claims = await DeviceEventClaim.filter(
        device_id=gate["id"], event_type=event_claims.SERVER_OPEN
    )
    assert [c.state for c in claims] == [DeviceEventState.DONE]
    clock.advance(bridge.lease_s + 1)
    assert await bridge.resume_expired() == 0


async def test_a_granted_event_writes_its_command_with_the_note_and_its_outcome_with_the_row(
    stack: Stack,
) -> None:
    """The door command's row goes in with the claim's note, before the door moves; its
    acked outcome with the access row and the claim's finish (one statement each on
    PostgreSQL)."""
    gate, card_no = await _card_world(stack)
    bridge = stack.runtime.get(BRIDGE)
    event = _signed_swipe(gate, card_no)
    async with simulator(stack, gate) as sim:
        assert await bridge.handle_event(_inbound(event)) == "granted"
        assert len(sim.opened) == 1
    (row,) = await AccessEvent.filter(device_id=gate["id"])
    command = await DeviceCommand.get(command_id=row.command_id)
    assert (command.op, command.status, command.ack_reason) == ("open", CommandStatus.DONE, "")
    assert command.latency_ms is not None
    claim = await DeviceEventClaim.get(event_key=f"{gate['device_uid']}:{event['id']}")
    assert (claim.state, claim.command_id, claim.outcome) == (
        DeviceEventState.DONE,
        row.command_id,
        "granted",
    )


async def test_notes_batched_together_write_a_command_only_where_the_claim_is_still_held(
    stack: Stack,
) -> None:
    """Two notes in one statement: the one whose claim was taken over meanwhile raises
    ClaimLost and leaves no command row (nothing may go out under it); the other's row
    is written and its id set."""
    gate, _ = await _card_world(stack)
    bridge = stack.runtime.get(BRIDGE)
    device = await bridge._device(gate["device_uid"])
    assert device is not None and bridge.doors is not None
    held, lost = [
        (
            await event_claims.claim(
                f"{gate['device_uid']}:{new_id()}", gate["id"], "card_swipe", {}, 30
            )
        )[0]
        for _ in range(2)
    ]
    assert held is not None and lost is not None
    await DeviceEventClaim.filter(id=lost.id).update(attempts=lost.attempts + 1)  # taken over
    prepared = []
    for _ in range(2):
        p = await bridge.doors.prepare(device, "open", {"reason": "test"}, reason="test")
        assert isinstance(p, PreparedCommand)
        prepared.append(p)
    results = await asyncio.gather(
        *(
            event_claims.note_command(c, p.cmd["id"], {"reason": "test"}, p.row)
            for c, p in zip((held, lost), prepared, strict=True)
        ),
        return_exceptions=True,
    )
    assert results[0] is None and isinstance(results[1], event_claims.ClaimLost)
    assert prepared[0].row.id is not None
    written = await DeviceCommand.filter(device_id=gate["id"]).values_list("command_id", flat=True)
    assert written == [prepared[0].cmd["id"]]
    assert (await DeviceEventClaim.get(id=held.id)).command_id == prepared[0].cmd["id"]
    assert (await DeviceEventClaim.get(id=lost.id)).command_id == ""
