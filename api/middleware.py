"""Request id and access logging, as pure ASGI middleware (no body buffering)."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anxin.context import request_id_var
from anxin.errors import BadRequest, DomainError
from anxin.i18n import choose
from api.errors import HttpError, http_status

log = logging.getLogger("anxin.http")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# A NUL byte is never valid text here, and PostgreSQL refuses it in any string column.
_NUL = re.compile(rb"%00|\x00", re.IGNORECASE)


def _has_nul(scope: Scope) -> bool:
    raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    return bool(_NUL.search(raw_path) or _NUL.search(scope.get("query_string", b"")))


async def _send_error(scope: Scope, send: Send, err: DomainError, rid: str) -> None:
    headers = dict(scope.get("headers", []))
    lang = choose(headers.get(b"accept-language", b"").decode("latin-1"))
    body = json.dumps(err.body(lang, rid), ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": http_status(err),
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _SAFE_ID.match(incoming) else secrets.token_hex(8)
        token = request_id_var.set(rid)
        # Also on the scope: the 500 handler runs outside this middleware (Starlette's
        # ServerErrorMiddleware), after the context variable has been reset.
        state = scope.setdefault("state", {})
        if isinstance(state, dict):
            state["request_id"] = rid
        start = time.perf_counter()
        status = 0
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            if scope["type"] == "http" and _has_nul(scope):
                status = 400
                await _send_error(
                    scope,
                    send_with_id,
                    BadRequest("bad_request", "请求包含非法字符", "request contains a NUL byte"),
                    rid,
                )
                return
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                # Logged here, where the request id is still the context's, and answered
                # here, so the access log line says 500 and the answer has every header.
                log.exception("unhandled error", extra={"status": 500, "request_id": rid})
                if scope["type"] != "http" or started:
                    raise
                status = 500
                await _send_error(
                    scope,
                    send_with_id,
                    HttpError("internal_error", "服务器内部错误", "internal error", 500),
                    rid,
                )
        finally:
            if scope["type"] == "http":
                log.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "request_id": rid,
                        "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                    },
                )
            request_id_var.reset(token)
