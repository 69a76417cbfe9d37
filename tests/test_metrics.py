"""Prometheus metrics: what they count, who may read them, and the rejection log."""

from __future__ import annotations

import json
import logging
from collections import Counter

import httpx
import pytest

from device_bridge.protocol import new_id, now_ms
from device_bridge.rejections import Rejections
from device_bridge.service import BRIDGE
from device_bridge.signing import device_key, sign
from models import StaffRoleName
from tests.devices import register_device
from tests.helpers import make_staff, make_world, staff_headers
from tests.stack import Stack


def _metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in the exposition text (None when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return None


async def test_metrics_count_requests_rejections_and_devices(stack: Stack) -> None:
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    gate = await register_device(stack, world.community.id, admin_h, kind="face_gate")
    uid = gate["device_uid"]
    transport = stack.runtime.get(BRIDGE).transport
    event = {"v": 1, "id": new_id(), "device_id": uid, "ts": now_ms(), "type": "card_swipe"}
    event["card_no"] = "1"
    assert await transport.handle_event(uid, b"{not json") == "rejected"
    assert await transport.handle_event(uid, sign(event, b"k" * 32)) == "rejected"
    assert await transport.handle_event("ax-other", sign(event, device_key("x"))) == "rejected"
    before = (await stack.client.get("/metrics")).text

    r = await stack.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert (_metric(text, "anxin_device_messages_rejected_total", kind="malformed") or 0) >= 1
    assert (_metric(text, "anxin_device_messages_rejected_total", kind="bad_signature") or 0) >= 1
    assert (_metric(text, "anxin_device_messages_rejected_total", kind="wrong_device") or 0) >= 1
    assert (_metric(text, "anxin_devices", status="active") or 0) >= 1
    assert _metric(text, "anxin_devices_online") is not None
    assert _metric(text, "anxin_outbox_events") is not None or "anxin_outbox_events" in text
    assert _metric(text, "anxin_device_event_claims_unfinished") is not None
    assert _metric(text, "anxin_device_commands_pending") is not None
    # Requests by route template, never by raw path (no series per id).
    scraped = _metric(text, "anxin_http_requests_total", route="/metrics", status="200")
    assert scraped is not None and scraped > (
        _metric(before, "anxin_http_requests_total", route="/metrics", status="200") or 0
    )
    await stack.client.get(f"/api/v1/staff/devices/{gate['id']}", headers=admin_h)
    text = (await stack.client.get("/metrics")).text
    assert _metric(text, "anxin_http_requests_total", route="/api/v1/staff/devices/{device_id}")
    assert f"/api/v1/staff/devices/{gate['id']}" not in text


async def test_only_a_local_scraper_or_the_token_reads_metrics(stack: Stack) -> None:
    remote = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stack.app, client=("203.0.113.9", 40000)),
        base_url="http://anxin.test",
    )
    settings = stack.runtime.settings
    try:
        assert (await remote.get("/metrics")).status_code == 404
        # Through a reverse proxy on this host the peer is loopback: still not local.
        proxied = await stack.client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 404
        settings.metrics_token = "scrape-token-123"
        ok = await remote.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
        assert ok.status_code == 200 and "anxin_http_requests_total" in ok.text
        bad = await remote.get("/metrics", headers={"Authorization": "Bearer guess"})
        assert bad.status_code == 404
    finally:
        settings.metrics_token = ""
        await remote.aclose()


def test_each_kind_of_rejection_is_logged_once_a_minute_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.rejections")
    stats: Counter[str] = Counter()
    reject = Rejections(stats, logger)
    with caplog.at_level(logging.WARNING, logger="test.rejections"):
        for _ in range(500):
            reject("malformed", "gate-1", "bad json")
            reject("bad_signature", "gate-2")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # one per kind, not 1,000
    assert any("malformed" in m and "gate-1" in m for m in lines)
    assert reject.counts == Counter({"malformed": 500, "bad_signature": 500})
    assert stats["malformed"] == 500
    # After the minute, the next one is logged with how many were held back.
    for kind in list(reject._logged_at):  # noqa: SLF001
        reject._logged_at[kind] -= 61  # noqa: SLF001
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="test.rejections"):
        reject("malformed", "gate-1")
    assert len(caplog.records) == 1 and "499 more" in caplog.records[0].getMessage()


async def test_the_embedded_broker_counts_refused_logins(stack: Stack) -> None:
    if stack.backend != "sqlite":
        pytest.skip("the embedded broker runs without MQTT_URL")
    import aiomqtt

    from device_bridge.mqtt import parse_mqtt_url

    p = parse_mqtt_url(stack.runtime.get(BRIDGE).mqtt_url)
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(p.host, p.port, timeout=5):
            pass
    text = (await stack.client.get("/metrics")).text
    refused = _metric(
        text, "anxin_device_messages_rejected_total", source="broker", kind="login_anonymous"
    )
    assert refused is not None and refused >= 1
    json.dumps(text)  # the exposition is plain text
