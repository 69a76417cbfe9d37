"""The same protocol over ZKTeco-style HTTP push: the transport interface holds."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from anxin.clock import clock
from device_bridge.http_push import HttpDeviceLink, HttpPushTransport
from device_bridge.http_push_routes import http_push_router
from device_bridge.protocol import now_ms
from device_bridge.signing import device_key, make_command
from device_bridge.simulator import DeviceConfig, SimulatedDevice


async def test_http_push_round_trip_refusals_and_events() -> None:
    clock.reset()
    secret = "http-secret"
    key = device_key(secret)
    server = HttpPushTransport(key_for={"zk-1": key}.get, poll_wait_s=0.5)
    app = FastAPI()
    app.include_router(http_push_router(server))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    link = HttpDeviceLink("http://t", "zk-1", secret, client=client, poll_wait_s=0.5)
    dev = SimulatedDevice(DeviceConfig("zk-1", secret, relock_s=0.05), link=link)
    await dev.start()
    try:
        st = await server.next_state(5)
        assert st.state.status == "online" and st.authenticated
        out = await server.send_command(make_command("zk-1", "open", {"reason": "remote"}, key))
        assert out.ok and dev.opened
        evt = await server.next_event(5)
        assert evt.event.type == "door_state" and evt.authenticated
        tampered = {**make_command("zk-1", "open", {}, key), "args": {"door": 3}}
        assert (await server.send_command(tampered)).reason == "bad_signature"
        # expired while queued: dropped at the poll, reported expired, never executed
        stale = make_command("zk-1", "open", {}, key, issued_at=now_ms() - 20_000, ttl_s=10)
        assert (await server.send_command(stale)).status == "expired"
        await dev.swipe_card("88")
        while (e := await server.next_event(5)).event.type != "card_swipe":
            pass
        assert e.event.card_no == "88"
        # a stranger cannot poll the device's queue
        r = await client.get("/iclock/getrequest", params={"SN": "zk-1"})
        assert r.status_code == 401
        # malformed uploads are counted, not fatal
        link2 = HttpDeviceLink("http://t", "zk-1", secret, client=client)
        await link2._req("POST", "cdata", body=b"garbage\n{}", params={"table": "ANXIN"})  # noqa: SLF001
        assert server.stats["malformed"] >= 2
    finally:
        await dev.stop()
        await server.stop()
