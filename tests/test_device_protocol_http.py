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


async def test_a_captured_http_push_request_cannot_be_replayed() -> None:
    """The request signature covers a nonce the server accepts once: a captured poll (or
    upload) replayed within the time window is refused, so it cannot drain the queue."""
    secret = "http-secret-2"
    key = device_key(secret)
    server = HttpPushTransport(key_for={"zk-2": key}.get, poll_wait_s=0.1)
    app = FastAPI()
    app.include_router(http_push_router(server))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    link = HttpDeviceLink("http://t", "zk-2", secret, client=client)
    headers = link._headers("/iclock/getrequest")  # noqa: SLF001 - what a tap would capture
    params = {"SN": "zk-2"}
    first = await client.get("/iclock/getrequest", params=params, headers=headers)
    assert first.status_code == 200
    replay = await client.get("/iclock/getrequest", params=params, headers=headers)
    assert replay.status_code == 401
    # Without a nonce, or with the nonce changed under the same signature: refused too.
    bare = {k: v for k, v in link._headers("/iclock/getrequest").items() if k != "X-Anxin-Nonce"}  # noqa: SLF001
    assert (await client.get("/iclock/getrequest", params=params, headers=bare)).status_code == 401
    forged = {**headers, "X-Anxin-Nonce": "n" * 24}
    assert (
        await client.get("/iclock/getrequest", params=params, headers=forged)
    ).status_code == 401
    assert server.reject.counts["http_auth_replayed"] == 1
    assert server.reject.counts["http_auth_no_nonce"] == 1
    assert server.reject.counts["http_auth_bad_signature"] == 1
    # A fresh request still works.
    ok = await client.get(
        "/iclock/getrequest", params=params, headers=link._headers("/iclock/getrequest")
    )  # noqa: SLF001
    assert ok.status_code == 200
    await client.aclose()
