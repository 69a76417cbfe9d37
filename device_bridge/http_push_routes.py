"""The HTTP push endpoints (ZKTeco PUSH shape) terminals without MQTT poll: mounted on the
API app by api/app.py, served by the transport of this process's bridge. Only the HTTP
process imports this module (a bridge-only process loads no FastAPI)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from device_bridge.http_push import HttpPushTransport
from device_bridge.protocol import encode, now_ms


def http_push_router(push: HttpPushTransport) -> APIRouter:
    r = APIRouter(prefix=push.prefix, tags=["devices (http push)"])
    denied = PlainTextResponse("unauthorized", status_code=401)

    async def authorized(request: Request, sn: str) -> bool:
        h = request.headers
        return await push.authorized(
            sn, request.url.path, h.get("x-anxin-ts", ""), h.get("x-anxin-sig")
        )

    @r.get("/cdata", response_class=PlainTextResponse)
    async def handshake(request: Request, SN: str) -> PlainTextResponse:  # noqa: N803
        if not await authorized(request, SN):
            return denied
        return PlainTextResponse(
            f"GET OPTION FROM: {SN}\nProtocol=anxin-v1\nPollWait={push.poll_wait_s}\n"
            f"ServerTime={now_ms()}\n"
        )

    @r.get("/getrequest", response_class=PlainTextResponse)
    async def getrequest(request: Request, SN: str) -> PlainTextResponse:  # noqa: N803
        if not await authorized(request, SN):
            return denied
        cmds = await push.poll(SN)
        if not cmds:
            return PlainTextResponse("OK")
        return PlainTextResponse("\n".join(f"C:{c['id']}:{encode(c).decode()}" for c in cmds))

    @r.post("/devicecmd", response_class=PlainTextResponse)
    async def devicecmd(request: Request, SN: str) -> PlainTextResponse:  # noqa: N803
        if not await authorized(request, SN):
            return denied
        for line in push.lines(await request.body()):
            await push.handle_ack(SN, line)
        return PlainTextResponse("OK")

    @r.post("/cdata", response_class=PlainTextResponse)
    async def cdata(request: Request, SN: str, table: str = "ANXIN") -> PlainTextResponse:  # noqa: N803
        if not await authorized(request, SN):
            return denied
        handled, durable = await push.upload(SN, await request.body())
        if not durable:
            # Not claimed yet: the terminal keeps them and sends them again (same ids).
            return PlainTextResponse("retry", status_code=503)
        # "rejected" lines are not retried by the device: they never will be valid.
        return PlainTextResponse(f"OK: {handled}")

    return r
