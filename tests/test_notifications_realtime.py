"""The realtime WebSocket: authentication, pushes, and fan-out across API workers.

The stack's app is served on a loopback port by uvicorn in the test's event loop (its
lifespan already ran), and clients use the `websockets` library, as a browser would.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from tortoise.transactions import in_transaction
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from anxin.bus import RedisBus, run_subscriber
from anxin.channels import REALTIME_IN
from anxin.clock import clock
from anxin.runtime import Runtime
from api.notifications.realtime import router as realtime_router
from auth.tokens import issue_access_token
from miniprogram_mock.fake_wechat import run_fake_wechat
from models import Resident, StaffRoleName
from notifications.catalog import EventType
from notifications.outbox import emit
from notifications.realtime import (
    REALTIME,
    RealtimeHub,
    push_each,
    push_to_residents,
    push_to_staff,
)
from tests.helpers import approved_resident, make_staff, make_world, new_resident, staff_headers
from tests.stack import REDIS_URL, Stack

TIMEOUT = 5.0


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """Serve an already started app on loopback (lifespan off); yields its ws:// URL."""
    async with run_fake_wechat(app=app) as base:
        yield base.replace("http://", "ws://") + "/api/v1/realtime"


async def recv(ws: ClientConnection, wanted: str | None = None) -> dict[str, Any]:
    """The next message (of type `wanted`), or fail after TIMEOUT."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            message = json.loads(await ws.recv())
            if wanted is None or message.get("type") == wanted:
                return message


async def resident_token(stack: Stack) -> tuple[int, str]:
    app = await new_resident(stack)
    resident = await Resident.get(openid=app.openid)
    return resident.id, str(app.access_token)


async def test_bad_tokens_are_refused(stack: Stack) -> None:
    async with served(stack.app) as url:
        for token, code in (
            ("not-a-jwt", "token_invalid"),
            (issue_access_token(stack.settings, "resident", 1) + "x", "token_invalid"),
        ):
            async with connect(f"{url}?token={token}") as ws:
                err = await recv(ws)
                assert (err["type"], err["code"]) == ("error", code)
                with pytest.raises(ConnectionClosed) as closed:
                    await recv(ws)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        # Expired: signed correctly, but its time is up.
        _, token = await resident_token(stack)
        clock.advance(stack.settings.access_token_ttl_s + 1)
        async with connect(f"{url}?token={token}") as ws:
            err = await recv(ws)
            assert err["code"] == "token_expired" and err["message_zh"]
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        clock.reset()
        # A first message that is not an auth message.
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "hello"}))
            assert (await recv(ws))["code"] == "unauthorized"


async def test_push_reaches_the_resident_and_only_them(stack: Stack) -> None:
    rid, token = await resident_token(stack)
    other_id, other_token = await resident_token(stack)
    async with (
        served(stack.app) as url,
        connect(f"{url}?token={token}") as ws,
        connect(url) as other,
    ):
        hello = await recv(ws, "hello")
        assert (hello["kind"], hello["id"], hello["v"]) == ("resident", rid, 1)
        await other.send(json.dumps({"type": "auth", "token": other_token}))
        assert (await recv(other, "hello"))["id"] == other_id
        await push_to_residents(
            stack.runtime.bus, [rid], {"type": "intercom.call", "data": {"call_id": "c1"}}
        )
        got = await recv(ws, "intercom.call")
        assert got["data"] == {"call_id": "c1"} and got["v"] == 1 and got["id"]
        await other.send(json.dumps({"type": "ping"}))
        assert (await recv(other))["type"] == "pong"  # nothing for rid arrived first


async def test_notification_from_outbox_arrives_live(stack: Stack) -> None:
    world = await make_world(units=1, rooms_per_unit=1)
    staff = await make_staff(world.community, StaffRoleName.APPROVER)
    app = await approved_resident(stack, world.rooms[0], await staff_headers(stack, staff))
    resident = await Resident.get(openid=app.openid)
    async with served(stack.app) as url, connect(f"{url}?token={app.access_token}") as ws:
        await recv(ws, "hello")
        async with in_transaction():
            row = await emit(
                EventType.DOOR_OPENED,
                community_id=world.community.id,
                residents=[resident.id],
                payload={"door": "南门", "method": "远程开门"},
            )
        message = await recv(ws, "notification")
        assert message["data"]["event_type"] == "door_opened"
        assert message["data"]["title_zh"] == "开门提醒" and message["data"]["title_en"]
        assert message["data"]["created_at"].endswith("+08:00")
        listed = (await app.get("/api/v1/notifications")).json()["items"]
        assert listed[0]["id"] == message["data"]["id"]
        assert row.id


async def test_staff_console_gets_role_pushes_and_client_messages_go_inbound(
    stack: Stack,
) -> None:
    world = await make_world(units=1, rooms_per_unit=1)
    guard = await make_staff(world.community, StaffRoleName.GUARD)
    approver = await make_staff(world.community, StaffRoleName.APPROVER)
    g_token = (await staff_headers(stack, guard))["Authorization"].split()[1]
    a_token = (await staff_headers(stack, approver))["Authorization"].split()[1]
    inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def collect(_channel: str, message: dict[str, Any]) -> None:
        await inbound.put(message)

    listener = asyncio.create_task(run_subscriber(stack.runtime.bus, REALTIME_IN, collect))
    try:
        async with (
            served(stack.app) as url,
            connect(f"{url}?token={g_token}") as g,
            connect(f"{url}?token={a_token}") as a,
        ):
            await recv(g, "hello")
            await recv(a, "hello")
            await push_to_staff(
                stack.runtime.bus, world.community.id, ["guard"], {"type": "alarm", "data": {}}
            )
            assert (await recv(g, "alarm"))["type"] == "alarm"
            await push_to_staff(stack.runtime.bus, world.community.id, None, {"type": "all"})
            assert (await recv(a))["type"] == "all"  # the approver never saw "alarm"
            await asyncio.sleep(0.1)  # the subscriber above needs its Redis subscription
            await g.send(json.dumps({"type": "intercom.accept", "call_id": "c9"}))
            async with asyncio.timeout(TIMEOUT):
                got = await inbound.get()
            assert got["from"] == {"kind": "staff", "id": guard.id}
            assert got["message"] == {"type": "intercom.accept", "call_id": "c9"}
    finally:
        listener.cancel()


@asynccontextmanager
async def second_worker(stack: Stack) -> AsyncIterator[str]:
    """Another API worker: its own Redis connection, bus and realtime hub, same DB."""
    import redis.asyncio as aioredis

    runtime = Runtime(stack.settings)
    runtime.redis = aioredis.from_url(REDIS_URL)
    runtime.bus = RedisBus(runtime.redis, stack.settings.redis_prefix + "bus:")
    hub = runtime.provide(REALTIME, RealtimeHub(runtime))
    app = FastAPI()
    app.state.runtime = runtime
    app.include_router(realtime_router)
    await hub.start()
    try:
        async with served(app) as url:
            yield url
    finally:
        await hub.stop()
        await runtime.redis.aclose()


async def test_push_from_one_worker_reaches_a_client_on_another(stack: Stack) -> None:
    if stack.backend != "postgres":
        pytest.skip("the embedded default is one process; across workers means Redis")
    rid, token = await resident_token(stack)
    async with second_worker(stack) as url, connect(f"{url}?token={token}") as ws:
        await recv(ws, "hello")
        tag = secrets.token_hex(4)
        await push_to_residents(stack.runtime.bus, [rid], {"type": "intercom.call", "tag": tag})
        assert (await recv(ws, "intercom.call"))["tag"] == tag
        # And the whole path: outbox on worker A's dispatcher, socket on worker B.
        resident = await Resident.get(id=rid)
        await emit(
            EventType.INTERCOM_CALL,
            community_id=None,
            residents=[resident.id],
            payload={"door": "3栋大堂"},
        )
        message = await recv(ws, "notification")
        assert message["data"]["event_type"] == "intercom_call"


async def test_a_block_in_one_community_leaves_the_socket_open(stack: Stack) -> None:
    """A block is per community: the account, and its realtime channel, stay."""
    world = await make_world(units=1, rooms_per_unit=1)
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    app = await approved_resident(stack, world.rooms[0], admin_h)
    resident = await Resident.get(openid=app.openid)
    async with served(stack.app) as url, connect(f"{url}?token={app.access_token}") as ws:
        await recv(ws, "hello")
        r = await stack.client.post(
            f"/api/v1/staff/communities/{world.community.id}/residents/{resident.id}/block",
            json={"blocked": True, "reason": "测试"},
            headers=admin_h,
        )
        assert r.status_code == 200, r.text
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv(ws))["type"] == "pong"


async def test_one_bus_message_gives_each_resident_their_own_copy(stack: Stack) -> None:
    """push_each: a notice's copies travel as one bus message; each socket gets only its
    own resident's copy, with that copy's id."""
    a_id, a_token = await resident_token(stack)
    b_id, b_token = await resident_token(stack)
    async with (
        served(stack.app) as url,
        connect(f"{url}?token={a_token}") as a,
        connect(f"{url}?token={b_token}") as b,
    ):
        await recv(a, "hello")
        await recv(b, "hello")
        await push_each(
            stack.runtime.bus,
            [("resident", a_id, 101), ("resident", 999_999_999, 102), ("resident", b_id, 103)],
            {"type": "notification", "data": {"id": 0, "title_zh": "停水通知"}},
        )
        got_a, got_b = await recv(a, "notification"), await recv(b, "notification")
        assert got_a["data"] == {"id": 101, "title_zh": "停水通知"}
        assert got_b["data"] == {"id": 103, "title_zh": "停水通知"}
        assert got_a["id"] != got_b["id"]
        for ws in (a, b):  # nothing else came first
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv(ws))["type"] == "pong"
