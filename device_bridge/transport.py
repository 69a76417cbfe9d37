"""The device transport interface, both sides, whatever carries the messages.

- `ServerTransport` (bridge side): `publish_command` / `wait_ack(cmd_id, timeout)` with
  futures keyed by command id, `events()` (authenticated, de-duplicated), `states()`.
  `ServerTransportBase` holds what every implementation shares (verification,
  de-duplication, pending acks). Implemented over MQTT in `mqtt.py` and over ZKTeco-style
  HTTP push in `http_push.py`.
- `DeviceLink` (device side): what a device (the simulator) talks through
  (`simulator/mqtt_link.py`, `http_push.HttpDeviceLink`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from abc import ABC, abstractmethod
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from anxin.clock import clock
from device_bridge.protocol import (
    Ack,
    DeviceState,
    ProtocolError,
    decode,
    now_ms,
    parse_ack,
    parse_event,
    parse_state,
)
from device_bridge.rejections import Rejections
from device_bridge.signing import verify

log = logging.getLogger(__name__)


class NotConnected(ConnectionError):
    pass


# ---------------------------------------------------------------- the interface

KeyLookup = Callable[[str], "bytes | None | Awaitable[bytes | None]"]
Outcome = Literal["done", "refused", "failed", "expired", "timeout"]


Settle = Callable[[bool], None]


@dataclass(frozen=True)
class InboundEvent:
    device_id: str
    event: Any  # a protocol event model: FaceCapture, CardSwipe, ...
    raw: dict[str, Any]
    authenticated: bool  # signature checked with the device key (False only without key_for)
    received_at: int
    # Called once by the consumer: True when the event is durably claimed (or finally
    # refused), so the transport may confirm it (MQTT PUBACK, HTTP 200); False when it is
    # not, so the transport forgets it and lets the sender deliver it again.
    settle: Settle | None = None

    def settled(self, durable: bool) -> None:
        if self.settle is not None:
            self.settle(durable)


@dataclass(frozen=True)
class InboundState:
    device_id: str
    state: DeviceState
    retained: bool
    authenticated: bool


@dataclass(frozen=True)
class CommandOutcome:
    cmd_id: str
    device_id: str
    status: Outcome  # "timeout": caller stopped waiting before expiry; "expired": never acked
    reason: str | None = None
    ack: Ack | None = None
    elapsed_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "done"

    @property
    def detail(self) -> dict[str, Any]:
        return dict(self.ack.detail) if self.ack and self.ack.detail else {}


@dataclass
class _Pending:
    device_id: str
    expires_at: int
    future: asyncio.Future[Ack]
    sent: float = field(default_factory=time.perf_counter)
    waiter_gave_up: bool = False


class _Seen:
    """Bounded memory of (device, event id) pairs: a first line against duplicate delivery.
    The durable rule is the database's unique (device_id, event_id) constraint."""

    def __init__(self, maxlen: int = 200_000) -> None:
        self._d: OrderedDict[tuple[str, str], bool] = OrderedDict()  # -> durably settled
        self.maxlen = maxlen

    def discard(self, key: tuple[str, str]) -> None:
        self._d.pop(key, None)

    def settle(self, key: tuple[str, str]) -> None:
        if key in self._d:
            self._d[key] = True

    def settled(self, key: tuple[str, str]) -> bool:
        return self._d.get(key, False)

    def add(self, key: tuple[str, str]) -> bool:
        """False if already seen."""
        if key in self._d:
            self._d.move_to_end(key)
            return False
        self._d[key] = False
        if len(self._d) > self.maxlen:
            self._d.popitem(last=False)
        return True


class ServerTransport(ABC):
    """What the bridge uses, whatever carries the bytes (MQTT, HTTP push, ...)."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def publish_command(self, cmd: dict[str, Any]) -> None:
        """Send a signed command (see `signing.make_command`); its ack future exists from now."""

    @abstractmethod
    async def wait_ack(
        self,
        cmd_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - capped by expiry
    ) -> CommandOutcome:
        """Wait for the ack, at most until the command expires (then "expired")."""

    @abstractmethod
    def events(self) -> AsyncIterator[InboundEvent]: ...

    @abstractmethod
    def states(self) -> AsyncIterator[InboundState]: ...

    async def send_command(
        self,
        cmd: dict[str, Any],
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> CommandOutcome:
        await self.publish_command(cmd)
        return await self.wait_ack(cmd["id"], timeout)


class ServerTransportBase(ServerTransport):
    """Ack futures, authentication, de-duplication and queues; subclasses move bytes."""

    def __init__(
        self,
        key_for: KeyLookup | None = None,
        on_late_ack: Callable[[Ack], Any] | None = None,
        queue_size: int = 10_000,
    ) -> None:
        self.key_for = key_for
        self.on_late_ack = on_late_ack
        self.stats: Counter[str] = Counter()
        self.reject = Rejections(self.stats, log)  # count + rate-limited log per kind
        self.device_states: dict[str, DeviceState] = {}
        self._pending: dict[str, _Pending] = {}
        self._seen = _Seen()
        self._events: asyncio.Queue[InboundEvent] = asyncio.Queue(queue_size)
        self._states: asyncio.Queue[InboundState] = asyncio.Queue(queue_size)

    @abstractmethod
    async def _send(self, device_id: str, cmd: dict[str, Any]) -> None: ...

    async def publish_command(self, cmd: dict[str, Any]) -> None:
        cmd_id, device_id, expires = cmd.get("id"), cmd.get("device_id"), cmd.get("expires_at")
        if not (
            isinstance(cmd_id, str) and isinstance(device_id, str) and isinstance(expires, int)
        ):
            raise ProtocolError("command needs id, device_id and expires_at")
        if "sig" not in cmd:
            raise ProtocolError("command is not signed")
        if cmd_id in self._pending:
            raise ProtocolError(f"command {cmd_id} already pending")
        loop = asyncio.get_running_loop()
        self._pending[cmd_id] = _Pending(device_id, expires, loop.create_future())
        # Forget it at expiry even if nobody waits (real time; a moved test clock only
        # makes wait_ack report "expired" sooner).
        loop.call_later(max(0.0, expires / 1000 - clock.time()) + 1.0, self._forget, cmd_id)
        try:
            await self._send(device_id, cmd)
        except BaseException:
            self._pending.pop(cmd_id, None)
            raise
        self.stats["commands"] += 1

    async def wait_ack(
        self,
        cmd_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - capped by expiry
    ) -> CommandOutcome:
        p = self._pending.get(cmd_id)
        if p is None:
            raise KeyError(f"no pending command {cmd_id}")
        remaining = p.expires_at / 1000 - clock.time()
        wait = remaining if timeout is None else min(timeout, remaining)
        if not p.future.done() and wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(p.future), wait)
        elapsed = (time.perf_counter() - p.sent) * 1000
        if p.future.done() and not p.future.cancelled():
            self._pending.pop(cmd_id, None)
            ack = p.future.result()
            return CommandOutcome(cmd_id, p.device_id, ack.result, ack.reason, ack, elapsed)
        if clock.time() * 1000 >= p.expires_at:
            self._pending.pop(cmd_id, None)
            self.stats["expired"] += 1
            return CommandOutcome(
                cmd_id, p.device_id, "expired", "no ack before expiry", None, elapsed
            )
        # The device may still execute it until expires_at: keep the future for a late ack.
        p.waiter_gave_up = True
        return CommandOutcome(cmd_id, p.device_id, "timeout", "no ack yet", None, elapsed)

    def pending_count(self) -> int:
        return len(self._pending)

    async def _events_iter(self) -> AsyncIterator[InboundEvent]:
        while True:
            yield await self._events.get()

    def events(self) -> AsyncIterator[InboundEvent]:
        return self._events_iter()

    async def next_event(self, timeout: float | None = None) -> InboundEvent:  # noqa: ASYNC109
        return await asyncio.wait_for(self._events.get(), timeout)

    async def _states_iter(self) -> AsyncIterator[InboundState]:
        while True:
            yield await self._states.get()

    def states(self) -> AsyncIterator[InboundState]:
        return self._states_iter()

    async def next_state(self, timeout: float | None = None) -> InboundState:  # noqa: ASYNC109
        return await asyncio.wait_for(self._states.get(), timeout)

    def _forget(self, cmd_id: str) -> None:
        p = self._pending.pop(cmd_id, None)
        if p is not None and not p.future.done():
            p.future.cancel()

    def forget_device(self, device_id: str) -> None:
        """A revoked device: every command waiting for its ack is answered "refused,
        device_revoked" now (it can no longer sign an ack)."""
        for cmd_id, p in list(self._pending.items()):
            if p.device_id == device_id and not p.future.done():
                p.future.set_result(
                    Ack(
                        id=f"revoked-{cmd_id}"[:64],
                        device_id=device_id,
                        cmd_id=cmd_id,
                        ts=now_ms(),
                        result="refused",
                        reason="device_revoked",
                    )
                )

    def _cancel_pending(self) -> None:
        for p in self._pending.values():
            if not p.future.done():
                p.future.cancel()
        self._pending.clear()

    def receipt(self, device_id: str, event_id: str) -> None:
        """The event is durably claimed (or was already): tell the device, which keeps it
        until then (docs/device-protocol.md section 6). Over HTTP push the 200 answer is
        the receipt; the MQTT transport sends a signed `receipt` on the device's cmd topic."""

    async def _authenticate(self, device_id: str, obj: dict[str, Any]) -> bool | None:
        """True: signed by the device; False: reject; None: no key lookup configured."""
        if self.key_for is None:
            return None
        key = self.key_for(device_id)
        if inspect.isawaitable(key):
            key = await key
        return bool(key) and verify(obj, key)  # type: ignore[arg-type]

    async def _decode_for(
        self, device_id: str, payload: bytes | dict[str, Any]
    ) -> tuple[dict[str, Any], bool] | None:
        try:
            obj = decode(payload) if isinstance(payload, bytes | bytearray | str) else payload
        except ProtocolError as exc:
            self.reject("malformed", device_id, exc)
            return None
        if obj.get("device_id") != device_id:
            self.reject("wrong_device", device_id)  # a device may only speak for itself
            return None
        auth = await self._authenticate(device_id, obj)
        if auth is False:
            self.reject("bad_signature", device_id)
            return None
        return obj, bool(auth)

    async def handle_event(
        self,
        device_id: str,
        payload: bytes | dict[str, Any],
        confirm: Callable[[bool], None] | None = None,
    ) -> str:
        """ "accepted", "duplicate" or "rejected"; never raises on bad input.

        `confirm(durable)` tells the sender's side whether to confirm delivery: at once for
        a rejected or duplicate message, after the consumer settled an accepted one."""
        result = await self._accept_event(device_id, payload, confirm)
        if result != "accepted" and confirm is not None:
            confirm(True)  # final: a re-send would be refused the same way
        return result

    async def _accept_event(
        self,
        device_id: str,
        payload: bytes | dict[str, Any],
        confirm: Callable[[bool], None] | None,
    ) -> str:
        got = await self._decode_for(device_id, payload)
        if got is None:
            return "rejected"
        obj, auth = got
        try:
            evt = parse_event(obj)
        except ProtocolError as exc:
            self.reject("malformed", device_id, exc)
            return "rejected"
        key = (device_id, evt.id)
        if not self._seen.add(key):
            self.reject("duplicate", device_id, evt.id)
            if self._seen.settled(key):
                self.receipt(device_id, evt.id)  # the first receipt may have been lost
            return "duplicate"
        self.stats["events"] += 1

        def settle(durable: bool) -> None:
            if durable:
                self._seen.settle(key)
                self.receipt(device_id, evt.id)
            else:
                self._seen.discard(key)  # let a redelivery through to the consumer again
            if confirm is not None:
                confirm(durable)

        await self._events.put(InboundEvent(device_id, evt, obj, auth, now_ms(), settle))
        return "accepted"

    async def handle_ack(self, device_id: str, payload: bytes | dict[str, Any]) -> str:
        got = await self._decode_for(device_id, payload)
        if got is None:
            return "rejected"
        try:
            ack = parse_ack(got[0])
        except ProtocolError as exc:
            self.reject("malformed", device_id, exc)
            return "rejected"
        p = self._pending.get(ack.cmd_id)
        if p is None:
            # Every process sees every ack (the sender must): a signed ack for a command
            # this process did not send is another process's, or late; not a rejection.
            self.stats["acks_elsewhere"] += 1
            return "unmatched"
        if p.device_id != device_id or p.future.done():
            self.reject("unmatched_ack", device_id, ack.cmd_id)
            return "unmatched"
        p.future.set_result(ack)
        self.stats["acks"] += 1
        if p.waiter_gave_up:
            self._pending.pop(ack.cmd_id, None)
            self.stats["late_ack"] += 1
            if self.on_late_ack:
                res = self.on_late_ack(ack)
                if inspect.isawaitable(res):
                    await res
        return "accepted"

    async def handle_state(
        self, device_id: str, payload: bytes | dict[str, Any], retained: bool = False
    ) -> str:
        got = await self._decode_for(device_id, payload)
        if got is None:
            return "rejected"
        try:
            st = parse_state(got[0])
        except ProtocolError as exc:
            self.reject("malformed", device_id, exc)
            return "rejected"
        self.device_states[device_id] = st
        await self._states.put(InboundState(device_id, st, retained, got[1]))
        return "accepted"


class DeviceLink(ABC):
    """Device side of a transport. The device verifies commands itself (raw bytes in)."""

    def __init__(self) -> None:
        self.on_command: Callable[[bytes], Awaitable[None]] | None = None
        self.on_connect: Callable[[], Awaitable[None]] | None = None
        self.connected = asyncio.Event()

    @abstractmethod
    async def start(self, wait: float | None = 10.0) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    def drop(self) -> None:
        """Lose the connection abruptly and stay offline until `resume()`."""

    @abstractmethod
    def resume(self) -> None: ...

    @abstractmethod
    async def publish_ack(self, ack: dict[str, Any]) -> None: ...

    @abstractmethod
    async def publish_event(self, event: dict[str, Any]) -> None:
        """Returns once the server side has it (broker PUBACK / HTTP 200); raises otherwise."""

    @abstractmethod
    async def publish_state(self, state: dict[str, Any] | None, *, retain: bool = True) -> None: ...
