"""The gate path under a burst, where its writes and reads are batched (group commit):
still exactly one access row and at most one open per event, through two bridges and
redeliveries, and a block refuses at once mid-burst. Both backends (the batched SQL is
written per dialect: models/bulk.py)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from anxin.batching import Batcher
from boot.roles import build_runtime
from device_bridge.protocol import new_id, now_ms
from device_bridge.service import BRIDGE
from device_bridge.signing import device_key, sign
from models import AccessEvent, BlockKind, BlocklistEntry, DeviceCommand, DeviceEventClaim
from tests.devices import simulator
from tests.stack import Stack
from tests.test_event_claims import _card_world, _inbound, _signed_swipe

BURST = 30


async def _rows(device_id: int, count: int) -> list[AccessEvent]:
    for _ in range(500):
        rows = await AccessEvent.filter(device_id=device_id).order_by("id")
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} rows")


async def test_a_burst_through_two_bridges_with_redeliveries_decides_each_event_once(
    stack: Stack,
) -> None:
    gate, card_no = await _card_world(stack)
    settings = stack.settings.model_copy(
        update={"mqtt_shared_group": f"burst-{secrets.token_hex(4)}"}
    )
    other = build_runtime(settings, owns_database=False)
    await other.start()
    events = [_signed_swipe(gate, card_no) for _ in range(BURST)]
    try:
        async with simulator(stack, gate, relock_s=60.0) as sim:
            mine, theirs = stack.runtime.get(BRIDGE), other.get(BRIDGE)
            # Every event reaches both bridges, and this one twice (a QoS 1 re-send in the
            # same batch), all at once.
            results = await asyncio.gather(
                *(mine.handle_event(_inbound(e)) for e in events),
                *(theirs.handle_event(_inbound(e)) for e in events),
                *(mine.handle_event(_inbound(e)) for e in events),
            )
            rows = await _rows(gate["id"], BURST)
            await asyncio.sleep(0.3)
            opened = len(sim.opened)
    finally:
        await other.stop()
    assert sum(r == "granted" for r in results) == BURST
    assert all(r in ("granted", "duplicate", "in_progress") for r in results), results
    assert len(rows) == BURST and {r.result.value for r in rows} == {"granted"}
    assert sorted(r.event_key for r in rows) == sorted(
        f"{gate['device_uid']}:{e['id']}" for e in events
    )
    assert opened == BURST
    assert await DeviceCommand.filter(device_id=gate["id"], op="open").count() == BURST
    # Every open went out signed, was acked and is logged with its row.
    commands = await DeviceCommand.filter(device_id=gate["id"], op="open")
    assert {c.status.value for c in commands} == {"done"}
    assert {c.command_id for c in commands} == {r.command_id for r in rows}
    claims = await DeviceEventClaim.filter(device_id=gate["id"], event_type="card_swipe")
    assert len(claims) == BURST and {c.state.value for c in claims} == {"done"}


async def test_a_block_refuses_at_once_in_the_middle_of_a_burst(stack: Stack) -> None:
    gate, card_no = await _card_world(stack)
    bridge = stack.runtime.get(BRIDGE)
    card = await _card(card_no)
    async with simulator(stack, gate, relock_s=60.0) as sim:
        before = await asyncio.gather(
            *(bridge.handle_event(_inbound(_signed_swipe(gate, card_no))) for _ in range(BURST))
        )
        # Blocklisted while swipes keep coming: those decided after the entry is written
        # are refused, none fails, each still gets its row.
        during_events = [_signed_swipe(gate, card_no) for _ in range(BURST)]
        tasks = [asyncio.create_task(bridge.handle_event(_inbound(e))) for e in during_events]
        await asyncio.sleep(0)
        await BlocklistEntry.create(
            community_id=card.community_id,
            kind=BlockKind.PERSON,
            resident_id=card.resident_id,
            reason="测试",
        )
        during = await asyncio.gather(*tasks)
        after = await asyncio.gather(
            *(bridge.handle_event(_inbound(_signed_swipe(gate, card_no))) for _ in range(BURST))
        )
        rows = await _rows(gate["id"], 3 * BURST)
        await asyncio.sleep(0.2)
        opened = len(sim.opened)
    assert before == ["granted"] * BURST
    assert set(during) <= {"granted", "denied"}
    assert after == ["denied"] * BURST
    by_key = {r.event_key: r for r in rows}
    assert len(rows) == 3 * BURST
    assert all(
        by_key[f"{gate['device_uid']}:{e['id']}"].reason in ("resident", "blocklisted")
        for e in during_events
    )
    assert [r.reason for r in rows[-BURST:]] == ["blocklisted"] * BURST
    assert opened == BURST + during.count("granted")


async def _card(card_no: str) -> Any:
    from models import AccessCard

    return await AccessCard.get(card_no=card_no)


async def test_a_batch_gives_each_caller_its_own_result_and_a_bad_item_fails_alone() -> None:
    seen: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        seen.append(list(items))
        if 13 in items:
            raise ValueError("unlucky")
        return [i * 2 for i in items]

    batcher: Batcher[int, int] = Batcher(flush)
    assert await batcher.submit(1) == 2  # a lone caller is not kept waiting for company
    results = await asyncio.gather(*(batcher.submit(i) for i in (5, 13, 7)), return_exceptions=True)
    assert results[0] == 10 and results[2] == 14
    assert isinstance(results[1], ValueError)
    assert seen[0] == [1] and seen[1] == [5, 13, 7]  # one batch, then one by one
    assert seen[2:] == [[5], [13], [7]]


async def test_a_revoked_pass_is_refused_at_once_while_gates_keep_asking(stack: Stack) -> None:
    """Gates checking passes at once read them together (one query per batch): a pass
    revoked between two bursts is refused by every check after the revocation."""
    from domain.passes import service as passes
    from models import Device
    from tests.passes_helpers import create_pass, make_site

    site = await make_site(stack)
    made = [await create_pass(site, visitor_name=f"客{i}", max_uses=20) for i in range(4)]
    gate = await Device.get(id=site.gate["id"])
    rt = stack.runtime

    async def burst() -> list[str]:
        checks = await asyncio.gather(
            *(passes.check_at_gate(rt, gate, p["token"]) for p in made for _ in range(8))
        )
        return [d.reason for d, _ in checks]

    assert set(await burst()) == {"visitor_pass"}
    r = await site.resident.post(f"/api/v1/passes/{made[1]['id']}/revoke")
    assert r.status_code == 200
    after = await burst()
    assert after[8:16] == ["pass_revoked"] * 8
    assert set(after[:8] + after[16:]) == {"visitor_pass"}


async def test_a_burst_of_pass_scans_takes_each_use_once_with_one_notice_per_entry(
    stack: Stack,
) -> None:
    """Scans asking the server at once take their uses together (one conditional UPDATE
    per batch) and their rows' notices go out in one INSERT with the rows: a pass of two
    uses scanned three times at once, each scan delivered twice, opens exactly twice, the
    third is refused as used up, and each entry has exactly one notice (visitor arrived,
    then pass used)."""
    from models import Device, OutboxEvent
    from tests.passes_helpers import create_pass, make_site

    site = await make_site(stack)
    made = [await create_pass(site, visitor_name=f"客{i}", max_uses=2) for i in range(3)]
    gate = site.gate
    key = device_key(gate["secret"])

    def scan(token: str) -> dict[str, Any]:
        event = {
            "v": 1,
            "id": new_id(),
            "device_id": gate["device_uid"],
            "ts": now_ms(),
            "seq": 1,
            "type": "qr_scan",
            "door": 1,
            "token": token,
            "local_result": "unchecked",
        }
        return sign(event, key)

    events = [scan(p["token"]) for p in made for _ in range(3)]
    async with simulator(stack, gate, relock_s=60.0):
        bridge = stack.runtime.get(BRIDGE)
        results = await asyncio.gather(
            *(bridge.handle_event(_inbound(e)) for e in events),
            *(bridge.handle_event(_inbound(e)) for e in events),
        )
        rows = await _rows(gate["id"], len(events))
    # Each scan handled once (the handler writes its own row), its re-send refused.
    assert sum(r == "handled" for r in results) == len(events), results
    assert all(r in ("handled", "duplicate", "in_progress") for r in results), results
    assert len(rows) == len(events)
    for p in made:
        mine = [r for r in rows if r.pass_id == p["id"]]
        assert sorted(r.reason for r in mine if r.result.value == "granted") == ["visitor_pass"] * 2
        assert [r.reason for r in mine if r.result.value != "granted"] == ["pass_used_up"]
        notices = await OutboxEvent.filter(
            dedupe_key__in=[f"access:{r.id}" for r in mine]
        ).values_list("dedupe_key", "event_type")
        granted = {f"access:{r.id}" for r in mine if r.result.value == "granted"}
        assert {k for k, _ in notices} == granted and len(notices) == 2
        assert sorted(t for _, t in notices) == ["pass_used", "visitor_arrived"]
    assert await DeviceCommand.filter(device_id=gate["id"], op="open").count() == 6
    assert (await Device.get(id=gate["id"])).status.value == "active"
