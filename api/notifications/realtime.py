"""WebSocket /api/v1/realtime: pushes to the mini-program and the staff console.

Authenticate with the access token, either as `?token=...` or (preferred: URLs end up in
logs) as the first message `{"type": "auth", "token": "..."}` within 10 seconds. A bad or
expired token gets an error frame, then close code 4401. The
socket is closed with 4401 when the token expires; the client refreshes and reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import jwt
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from anxin.channels import REALTIME_IN
from anxin.clock import clock
from anxin.errors import DomainError, Forbidden, unauthorized
from auth.permissions import Principal, load_principal
from auth.tokens import decode_access_token
from notifications.realtime import PROTOCOL_VERSION, REALTIME, Connection, RealtimeHub

router = APIRouter(tags=["notifications"])

AUTH_TIMEOUT_S = 10.0
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_TOO_SLOW = 4401, 4403, 1013


async def _authenticate(ws: WebSocket, token: str | None) -> tuple[Principal, int]:
    if not token:
        try:
            first = await asyncio.wait_for(ws.receive_json(), AUTH_TIMEOUT_S)
        except (TimeoutError, ValueError, json.JSONDecodeError):
            raise unauthorized() from None
        if not isinstance(first, dict) or first.get("type") != "auth":
            raise unauthorized()
        token = str(first.get("token") or "")
    settings = ws.app.state.runtime.settings
    claims = decode_access_token(settings, token)
    principal = await load_principal(claims.subject_type, claims.subject_id)
    return principal, _token_exp(token)


def _token_exp(token: str) -> int:
    # Verified by decode_access_token just before; only the expiry is read here.
    return int(jwt.decode(token, options={"verify_signature": False}).get("exp", 0))


def _connection(principal: Principal) -> Connection:
    roles = {cid: {r.value for r in held} for cid, held in principal.roles.items()}
    return Connection(principal.kind, principal.id, roles)


async def _send_loop(ws: WebSocket, conn: Connection) -> None:
    while True:
        message = await conn.queue.get()
        if message is None:
            return
        await ws.send_json(message)


async def _receive_loop(ws: WebSocket, conn: Connection, hub: RealtimeHub) -> None:
    while True:
        try:
            message = await ws.receive_json()
        except (ValueError, json.JSONDecodeError):
            continue  # not JSON: ignore it, keep the socket
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            continue
        if message["type"] == "ping":
            conn.offer({"v": PROTOCOL_VERSION, "type": "pong", "at": clock.time()})
            continue
        # Anything else (e.g. "intercom.accept") is for whichever capability listens.
        await hub.bus.publish(
            REALTIME_IN,
            {
                "v": PROTOCOL_VERSION,
                "from": {"kind": conn.kind, "id": conn.subject_id},
                "message": message,
                "at": clock.time(),
            },
        )


async def _expiry(exp: int) -> None:
    await asyncio.sleep(max(0.0, exp - clock.time()))


async def _refuse(ws: WebSocket, err: DomainError) -> None:
    body: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": "error", **err.body()["error"]}
    with contextlib.suppress(Exception):
        await ws.send_json(body)
        await ws.close(
            CLOSE_FORBIDDEN if isinstance(err, Forbidden) else CLOSE_UNAUTHORIZED, err.code
        )


@router.websocket("/api/v1/realtime")
async def realtime_socket(ws: WebSocket, token: str | None = None) -> None:
    hub = ws.app.state.runtime.get(REALTIME)
    await ws.accept()
    try:
        principal, exp = await _authenticate(ws, token)
    except DomainError as err:
        await _refuse(ws, err)
        return
    except WebSocketDisconnect:
        return
    conn = _connection(principal)
    hub.register(conn)
    conn.offer({"v": PROTOCOL_VERSION, "type": "hello", "kind": conn.kind, "id": conn.subject_id})
    tasks = [
        asyncio.create_task(_send_loop(ws, conn)),
        asyncio.create_task(_receive_loop(ws, conn, hub)),
        asyncio.create_task(_expiry(exp)),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unregister(conn)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if tasks[2] in done:
        await _refuse(ws, unauthorized("token_expired", "token expired", "登录已过期，请重新登录"))
    elif conn.overflowed:
        with contextlib.suppress(Exception):
            await ws.close(CLOSE_TOO_SLOW, "too slow")
    elif tasks[0] in done:  # hub stopping (shutdown)
        with contextlib.suppress(Exception):
            await ws.close(1001)
