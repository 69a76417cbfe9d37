"""Intercom answered over the realtime WebSocket.

A resident's socket sends `{"type": "intercom.accept" | "intercom.decline", "call_id": N}`
(optionally an `id` of its own); the realtime channel forwards it on the bus channel
`realtime.in`. Every worker hears it; the one that claims it in the shared KV calls the
same domain functions as the HTTP routes (`intercom.accept_call` / `decline_call`, same
authorization: an approved member of the called household) and answers that resident's
sockets through the realtime push:

    {"type": "intercom.accept.result", "call_id": N, "reply_to": <id>, "ok": true,
     "data": {...the HTTP answer...}}
    {"type": "intercom.accept.result", "call_id": N, "reply_to": <id>, "ok": false,
     "error": {"code", "message", "message_zh", "message_en", "details", "status"}}

The accept itself is first-wins in the database; the claim makes sure a second worker
does not try it again (which would answer the client with a 409 and could race the open).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections import Counter
from typing import Any

from anxin.bus import run_subscriber
from anxin.channels import REALTIME_IN
from anxin.errors import DomainError, forbidden, invalid
from anxin.runtime import Key, Runtime
from api.errors import http_status
from api.schemas import INT32_MAX
from auth.permissions import load_principal, require_resident
from domain.visitors import intercom
from notifications.realtime import push_to_residents, push_to_staff_ids

log = logging.getLogger(__name__)

ACTIONS = ("intercom.accept", "intercom.decline")
CLAIM_TTL_S = 600


def _claim_key(data: dict[str, Any]) -> str:
    """The same key in every worker for one inbound message (they all get the same JSON;
    two messages differ at least in their `at`)."""
    ident = data.get("id")
    if not isinstance(ident, str) or not ident:
        ident = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[
            :32
        ]
    return f"realtime.in:claim:{ident}"


def _call_id(message: dict[str, Any]) -> int:
    value = message.get("call_id")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= INT32_MAX:
        raise invalid("call_id_invalid", "呼叫编号无效", "call_id must be a positive integer")
    return value


class IntercomRealtime:
    """One `realtime.in` subscription per API worker (`runtime.get(INTERCOM_REALTIME)`)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.stats: Counter[str] = Counter()  # heard, acted
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(run_subscriber(self.runtime.bus, REALTIME_IN, self.handle))

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None

    async def handle(self, _channel: str, data: dict[str, Any]) -> None:
        message, sender = data.get("message"), data.get("from")
        if not isinstance(message, dict) or message.get("type") not in ACTIONS:
            return  # someone else's message
        if not isinstance(sender, dict) or not isinstance(sender.get("id"), int):
            return
        self.stats["heard"] += 1
        # Opening a door waits for its ack: never hold up the next inbound message for it.
        task = asyncio.create_task(self._answer(data, message, sender))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _answer(
        self, data: dict[str, Any], message: dict[str, Any], sender: dict[str, Any]
    ) -> None:
        if not await self.runtime.kv.set(_claim_key(data), "1", CLAIM_TTL_S, only_new=True):
            return  # another worker has it
        self.stats["acted"] += 1
        reply: dict[str, Any] = {"type": f"{message['type']}.result"}
        reply["call_id"] = message.get("call_id")
        if isinstance(message.get("id"), str | int) and not isinstance(message["id"], bool):
            reply["reply_to"] = message["id"]
        try:
            reply["data"] = await self._act(str(sender.get("kind")), sender["id"], message)
            reply["ok"] = True
        except DomainError as err:
            reply.update(ok=False, error={**err.body()["error"], "status": http_status(err)})
            del reply["error"]["request_id"]
        except Exception:
            log.exception("realtime %s failed", message["type"])
            reply.update(
                ok=False,
                error={
                    "code": "internal_error",
                    "message": "服务器内部错误",
                    "message_zh": "服务器内部错误",
                    "message_en": "internal error",
                    "details": None,
                    "status": 500,
                },
            )
        try:
            if sender.get("kind") == "resident":
                await push_to_residents(self.runtime.bus, [sender["id"]], reply)
            elif sender.get("kind") == "staff":
                await push_to_staff_ids(self.runtime.bus, [sender["id"]], reply)
        except Exception:
            log.exception("realtime answer to %s failed", message["type"])

    async def _act(self, kind: str, subject_id: int, message: dict[str, Any]) -> dict[str, Any]:
        if kind != "resident":
            raise forbidden("residents only", "仅限住户使用")
        # As the HTTP routes: the resident as they are now (a blocked one is refused).
        resident = require_resident(await load_principal("resident", subject_id))
        call_id = _call_id(message)
        if message["type"] == "intercom.accept":
            return intercom.answered_out(
                await intercom.accept_call(self.runtime, resident, call_id)
            )
        return intercom.call_out(await intercom.decline_call(self.runtime, resident, call_id))


INTERCOM_REALTIME: Key[IntercomRealtime] = Key("intercom_realtime")


def install(runtime: Runtime) -> None:
    """Intercom accept/decline over the realtime socket, in processes that hold sockets."""
    runtime.provide(INTERCOM_REALTIME, IntercomRealtime(runtime))
