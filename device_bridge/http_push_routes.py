"""The HTTP push endpoints (ZKTeco PUSH shape) that terminals without MQTT poll: mounted on
the API app by api/app.py and served by the transport of this process's bridge. Only the
HTTP process imports this module: a bridge-only process loads no FastAPI."""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from device_bridge.http_push import HttpPushTransport, _all_durable, _resolve
from device_bridge.protocol import ProtocolError, decode, encode, now_ms


def http_push_router(push: HttpPushTransport) -> APIRouter:
    r = APIRouter(prefix=push.prefix, tags=["devices (http push)"])
    denied = PlainTextResponse("unauthorized", status_code=401)

    @r.get("/cdata", response_class=PlainTextResponse)
    async def handshake(request: Request, SN: str) -> PlainTextResponse:  # noqa: N803
        if not await push._authorized(request, SN):
            return denied
        return PlainTextResponse(
            f"GET OPTION FROM: {SN}\nProtocol=anxin-v1\nPollWait={push.poll_wait_s}\n"
            f"ServerTime={now_ms()}\n"
        )

    @r.get("/getrequest", response_class=PlainTextResponse)
    async def getrequest(request: Request, SN: str) -> PlainTextResponse:  # noqa: N803
        if not await push._authorized(request, SN):
            return denied
        if not push._queues[SN]:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(push._wakeup[SN].wait(), push.poll_wait_s)
        cmds = await push.take(SN)
        if not cmds:
            return PlainTextResponse("OK")
        return PlainTextResponse("\n".join(f"C:{c['id']}:{encode(c).decode()}" for c in cmds))

    @r.post("/devicecmd", response_class=PlainTextResponse)
    async def devicecmd(request: Request, SN: str) -> PlainTextResponse:  # noqa: N803
        if not await push._authorized(request, SN):
            return denied
        for line in await push._lines(request):
            await push.handle_device_ack(SN, line)
        return PlainTextResponse("OK")

    @r.post("/cdata", response_class=PlainTextResponse)
    async def cdata(request: Request, SN: str, table: str = "ANXIN") -> PlainTextResponse:  # noqa: N803
        if not await push._authorized(request, SN):
            return denied
        results, settled = [], []
        loop = asyncio.get_running_loop()
        for line in await push._lines(request):
            # Anything that is not a state object goes to handle_event, which counts and
            # logs what it cannot read (a bare 5, null, nesting past the parser).
            if _is_state(line):
                results.append(await push.handle_state(SN, line))
                continue
            confirm = None
            if push.confirm_when_settled:
                fut: asyncio.Future[bool] = loop.create_future()
                settled.append(fut)
                confirm = partial(_resolve, fut)
            results.append(await push.handle_event(SN, line, confirm))
        if settled and not await _all_durable(settled):
            # Not claimed yet: the terminal keeps them and sends them again (same ids).
            return PlainTextResponse("retry", status_code=503)
        # "rejected" lines are not retried by the device: they never will be valid.
        return PlainTextResponse(f"OK: {len(results)}")

    return r


def _is_state(line: bytes) -> bool:
    try:
        message = decode(line)
    except ProtocolError:
        return False
    return "status" in message
