"""Protocol v1 over HTTP push, for terminals that can only make outgoing HTTP requests.

Shaped like ZKTeco's PUSH protocol (the device polls; the server never connects to it):

    GET  /iclock/cdata?SN=…                 handshake: returns options (poll interval, …)
    GET  /iclock/getrequest?SN=…            long poll: pending commands, "C:<id>:<json>" lines
    POST /iclock/devicecmd?SN=…             acks, one JSON per line
    POST /iclock/cdata?SN=…&table=ANXIN     events and states, one JSON per line

Payloads are the same signed v1 JSON as over MQTT; signatures and expiry are unchanged and
a command is done only when its signed ack comes back. Requests also carry
`X-Anxin-Ts`, `X-Anxin-Nonce` and `X-Anxin-Sig` (HMAC of SN, ts, path and nonce) so nobody
else can drain a device's command queue: a request is accepted within AUTH_WINDOW_MS of
its ts and only once (the nonce is remembered for twice the window, in the runtime's KV
store, so across processes on the server stack), so a captured request cannot be replayed.
With several API workers a terminal polls and acks any of them: commands and acks are
published to all over the bus, and a claim in the KV store hands each command out once.
`HttpPushTransport` is a `ServerTransport`; `HttpDeviceLink` is the simulator's side
(`--mode http`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import re
import secrets
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import httpx

from anxin.channels import HTTP_PUSH_ACK, HTTP_PUSH_COMMAND
from anxin.clock import clock
from device_bridge.transport import DeviceLink, KeyLookup, NotConnected, ServerTransportBase

from .protocol import MAX_MESSAGE_BYTES, encode, now_ms
from .signing import device_key, signature, verify

log = logging.getLogger(__name__)
AUTH_WINDOW_MS = 30_000
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
NonceClaim = Callable[[str, int], Awaitable[bool]]  # (key, ttl_s) -> first time seen
Publish = Callable[[str, dict[str, Any]], Awaitable[None]]  # (channel, message): the bus


class MemoryNonces:
    """Nonces seen in this process, forgotten after their TTL (bounded)."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self.maxlen = maxlen

    async def claim(self, key: str, ttl_s: int) -> bool:
        now = clock.time()
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now + ttl_s
        if len(self._seen) > self.maxlen:
            self._seen.popitem(last=False)
        return True


SETTLE_WAIT_S = 10.0  # how long an event upload waits for its events to be claimed


def _auth_obj(sn: str, ts: int, path: str, nonce: str) -> dict[str, Any]:
    return {"device_id": sn, "ts": ts, "path": path, "nonce": nonce}


class HttpRequest(Protocol):
    """What the transport reads of an HTTP request (Starlette's Request has it); the
    routes live in http_push_routes.py so a process without HTTP imports no FastAPI."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def url(self) -> Any: ...

    @property
    def query_params(self) -> Mapping[str, str]: ...

    async def body(self) -> bytes: ...


class HttpPushTransport(ServerTransportBase):
    def __init__(
        self,
        key_for: KeyLookup,
        *,
        poll_wait_s: float = 20.0,
        prefix: str = "/iclock",
        claim_nonce: NonceClaim | None = None,
        publish: Publish | None = None,
    ) -> None:
        super().__init__(key_for=key_for)
        # Nonces and "handed out" claims: the runtime's KV (Redis) so they hold across workers.
        self.claim_nonce: NonceClaim = claim_nonce or MemoryNonces().claim
        # With several API workers a terminal polls any of them: commands and acks that
        # arrive on one are published to all (the bus), see `share_command` / `share_ack`.
        self.publish = publish
        self._queued: dict[str, int] = {}  # command id -> expires_at (ms), to queue it once
        self.poll_wait_s = poll_wait_s
        self.prefix = prefix
        self.last_seen: dict[str, int] = {}
        self._queues: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        self._wakeup: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        # With a bridge consuming: answer an event upload only once every event in it is
        # claimed in the database; otherwise 503, and the terminal re-sends from its outbox.
        self.confirm_when_settled = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self._cancel_pending()

    async def _send(self, device_id: str, cmd: dict[str, Any]) -> None:
        self._enqueue(device_id, cmd)
        if self.publish is not None:
            await self.publish(HTTP_PUSH_COMMAND, {"device_id": device_id, "cmd": cmd})

    def _enqueue(self, device_id: str, cmd: dict[str, Any]) -> None:
        now = now_ms()
        for cmd_id in [i for i, exp in self._queued.items() if exp < now - 1000]:
            del self._queued[cmd_id]
        if cmd["id"] in self._queued or cmd["expires_at"] < now:
            return
        self._queued[cmd["id"]] = cmd["expires_at"]
        q = self._queues[device_id]
        while q and q[0]["expires_at"] < now:  # what no poll here took before its expiry
            q.popleft()
        q.append(cmd)
        self._wakeup[device_id].set()

    async def share_command(self, _: str, message: dict[str, Any]) -> None:
        """Another worker sent a command: queue it here too, for a poll that lands here
        (whichever worker's poll takes it first hands it out, see `take`)."""
        device_id, cmd = message.get("device_id"), message.get("cmd")
        if not (isinstance(device_id, str) and isinstance(cmd, dict)):
            return
        if not (isinstance(cmd.get("id"), str) and isinstance(cmd.get("expires_at"), int)):
            return
        self._enqueue(device_id, cmd)

    async def share_ack(self, _: str, message: dict[str, Any]) -> None:
        """An ack that reached another worker: resolve it here if this worker sent it
        (checked again here: the signature, device and pending command)."""
        device_id, line = message.get("device_id"), message.get("line")
        if not (isinstance(device_id, str) and isinstance(line, str)):
            return
        try:
            cmd_id = json.loads(line).get("cmd_id")
        except (ValueError, AttributeError):
            return
        if isinstance(cmd_id, str) and cmd_id in self._pending:
            await self.handle_ack(device_id, line.encode())

    async def handle_device_ack(self, device_id: str, line: bytes) -> str:
        """An ack POSTed here: resolved here, or passed to the worker that sent it."""
        result = await self.handle_ack(device_id, line)
        if result == "unmatched" and self.publish is not None:
            await self.publish(HTTP_PUSH_ACK, {"device_id": device_id, "line": line.decode()})
        return result

    def forget_device(self, device_id: str) -> None:
        super().forget_device(device_id)
        self._queues.pop(device_id, None)  # nothing queued for it is ever handed out

    async def take(self, device_id: str) -> list[dict[str, Any]]:
        """The commands to hand out on this poll: each at most once across workers (a
        claim in the shared KV, kept until its expiry), never one past its expiry."""
        q, out = self._queues[device_id], []
        self._wakeup[device_id].clear()
        while q:
            cmd = q.popleft()
            remaining_ms = cmd["expires_at"] - now_ms()
            if remaining_ms < 0:  # an expired command is dropped, never sent late
                continue
            if await self.claim_nonce(f"httpcmd:{cmd['id']}", remaining_ms // 1000 + 2):
                out.append(cmd)
        return out

    async def _authorized(self, request: HttpRequest, sn: str) -> bool:
        why = await self._auth_refusal(request, sn)
        if why is not None:
            self.reject(f"http_auth_{why}", sn)
            return False
        self.last_seen[sn] = now_ms()
        return True

    async def _auth_refusal(self, request: HttpRequest, sn: str) -> str | None:
        try:
            ts = int(request.headers.get("x-anxin-ts", ""))
        except ValueError:
            return "no_ts"
        nonce = request.headers.get("x-anxin-nonce", "")
        if not NONCE_RE.fullmatch(nonce):
            return "no_nonce"
        if abs(now_ms() - ts) > AUTH_WINDOW_MS:
            return "stale"
        obj = {
            **_auth_obj(sn, ts, request.url.path, nonce),
            "sig": request.headers.get("x-anxin-sig"),
        }
        key = self.key_for(sn) if self.key_for else None
        if inspect.isawaitable(key):
            key = await key
        if not (key and verify(obj, key)):
            return "bad_signature"
        # Only after the signature: nobody else can fill the nonce store.
        ttl_s = 2 * AUTH_WINDOW_MS // 1000
        if not await self.claim_nonce(f"httpnonce:{sn}:{nonce}", ttl_s):
            return "replayed"
        return None

    async def _lines(self, request: HttpRequest) -> list[bytes]:
        body = await request.body()
        if len(body) > 16 * MAX_MESSAGE_BYTES:
            self.reject("oversized_upload", request.query_params.get("SN", "?"))
            return []
        return [ln for ln in body.split(b"\n") if ln.strip()]


def _resolve(fut: asyncio.Future[bool], durable: bool) -> None:
    if not fut.done():
        fut.set_result(durable)


async def _all_durable(futures: list[asyncio.Future[bool]]) -> bool:
    try:
        return all(await asyncio.wait_for(asyncio.gather(*futures), SETTLE_WAIT_S))
    except TimeoutError:
        return False


async def _awaited(aw: Awaitable[None]) -> None:
    await aw


class HttpDeviceLink(DeviceLink):
    """Device side: handshake, long-poll for commands, POST acks/events/states."""

    def __init__(
        self,
        base_url: str,
        device_id: str,
        secret: str,
        *,
        client: httpx.AsyncClient | None = None,
        prefix: str = "/iclock",
        poll_wait_s: float = 20.0,
    ) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self.key = device_key(secret)
        self.prefix = prefix
        self.poll_wait_s = poll_wait_s
        self._client = client or httpx.AsyncClient(base_url=self.base_url)
        self._poller: asyncio.Task[None] | None = None
        self._paused = False

    def _headers(self, path: str) -> dict[str, str]:
        ts, nonce = now_ms(), secrets.token_urlsafe(18)
        return {
            "X-Anxin-Ts": str(ts),
            "X-Anxin-Nonce": nonce,
            "X-Anxin-Sig": signature(_auth_obj(self.device_id, ts, path, nonce), self.key),
        }

    async def _req(
        self,
        method: str,
        name: str,
        *,
        body: bytes | None = None,
        params: dict[str, str] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - an HTTP request timeout, passed to httpx
    ) -> str:
        if self._paused:
            raise NotConnected("offline")
        path = f"{self.prefix}/{name}"
        try:
            r = await self._client.request(
                method,
                path,
                params={"SN": self.device_id, **(params or {})},
                content=body,
                headers=self._headers(path),
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            raise NotConnected(str(exc)) from exc
        if r.status_code != 200:
            raise NotConnected(f"HTTP {r.status_code}")
        return r.text

    async def start(self, wait: float | None = 10.0) -> None:
        await self._req("GET", "cdata")
        self._up()

    def _up(self) -> None:
        self.connected.set()
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        if self.on_connect:
            asyncio.create_task(_awaited(self.on_connect()))

    async def _poll(self) -> None:
        while not self._paused:
            try:
                text = await self._req("GET", "getrequest", timeout=self.poll_wait_s + 10)
            except NotConnected:
                await asyncio.sleep(0.5)
                continue
            for line in text.splitlines():
                if line.startswith("C:") and self.on_command:
                    _, _, rest = line.split(":", 2)
                    try:
                        await self.on_command(rest.encode())
                    except Exception:
                        log.exception("command handler failed")

    async def stop(self) -> None:
        self._paused = True
        self.connected.clear()
        if self._poller:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self._client.aclose()

    def drop(self) -> None:
        self._paused = True
        self.connected.clear()
        if self._poller:
            self._poller.cancel()

    def resume(self) -> None:
        self._paused = False
        self._up()

    async def publish_ack(self, ack: dict[str, Any]) -> None:
        await self._req("POST", "devicecmd", body=encode(ack))

    async def publish_event(self, event: dict[str, Any]) -> None:
        await self._req("POST", "cdata", body=encode(event), params={"table": "ANXIN"})

    async def publish_state(self, state: dict[str, Any] | None, *, retain: bool = True) -> None:
        if state:
            await self._req("POST", "cdata", body=encode(state), params={"table": "ANXIN"})
