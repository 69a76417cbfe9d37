"""Device transport: the interface both sides use, and its MQTT implementation.

- `ServerTransport` (bridge side): `publish_command` / `wait_ack(cmd_id, timeout)` with
  futures keyed by command id, `events()` (authenticated, de-duplicated), `states()`.
  Implemented over MQTT here and over ZKTeco-style HTTP push in `http_push.py`.
- `DeviceLink` (device side): what the simulator talks through.
- `MqttConnection`: TCP_NODELAY on the socket (Nagle + delayed ACK cost ~40 ms per hop on
  small QoS 1 messages), QoS 1, reconnect with jittered exponential backoff, subscriptions
  re-applied after every reconnect, optional last will.
- `MqttServerTransport`, `MqttDeviceLink`: the two sides over MQTT.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import aiomqtt

from anxin.clock import clock

from .protocol import (
    Ack,
    DeviceState,
    ProtocolError,
    Topics,
    decode,
    encode,
    now_ms,
    parse_ack,
    parse_event,
    parse_state,
)
from .rejections import Rejections
from .signing import verify

log = logging.getLogger(__name__)

NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
MessageHandler = Callable[[str, bytes, bool], Awaitable[None]]  # topic, payload, retained


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
        self._d: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.maxlen = maxlen

    def discard(self, key: tuple[str, str]) -> None:
        self._d.pop(key, None)

    def add(self, key: tuple[str, str]) -> bool:
        """False if already seen."""
        if key in self._d:
            self._d.move_to_end(key)
            return False
        self._d[key] = None
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

    def _cancel_pending(self) -> None:
        for p in self._pending.values():
            if not p.future.done():
                p.future.cancel()
        self._pending.clear()

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
            return "duplicate"
        self.stats["events"] += 1

        def settle(durable: bool) -> None:
            if not durable:
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
        if p is None or p.device_id != device_id or p.future.done():
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


# ---------------------------------------------------------------- MQTT


@dataclass(frozen=True)
class MqttParams:
    host: str
    port: int
    username: str | None = None
    password: str | None = None


def parse_mqtt_url(url: str) -> MqttParams:
    """mqtt://[user:pass@]host[:port]; TLS (mqtts) is left to a fronting proxy for now."""
    u = urlparse(url if "://" in url else f"mqtt://{url}")
    if u.scheme not in ("mqtt", "tcp"):
        raise ValueError(f"unsupported MQTT URL scheme {u.scheme!r}")
    return MqttParams(
        host=u.hostname or "127.0.0.1",
        port=u.port or 1883,
        username=unquote(u.username) if u.username else None,
        password=unquote(u.password) if u.password else None,
    )


class MqttConnection:
    """A connection that stays up until `stop()`; `drop()` cuts it like a pulled cable."""

    def __init__(
        self,
        url: str,
        on_message: MessageHandler,
        *,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        subscriptions: list[str] | None = None,
        will: aiomqtt.Will | None = None,
        will_factory: Callable[[], aiomqtt.Will | None] | None = None,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        clean_session: bool = True,
        keepalive: int = 30,
        backoff: tuple[float, float] = (0.05, 5.0),
        manual_ack: bool = False,
    ) -> None:
        p = parse_mqtt_url(url)
        self.params = MqttParams(p.host, p.port, username or p.username, password or p.password)
        self.client_id = client_id or f"anxin-{uuid.uuid4().hex[:12]}"
        self.on_message = on_message
        self.on_connect = on_connect
        self.subscriptions: list[str] = list(subscriptions or [])
        self._will_factory = will_factory or (lambda: will)
        self.clean_session = clean_session
        # manual_ack: a QoS 1 message is PUBACKed when the handler says so (`defer_ack`),
        # not on receipt, so the broker re-sends what this process never made durable.
        self.manual_ack = manual_ack
        self._ack_current: Callable[[], None] | None = None
        self.keepalive = keepalive
        self.backoff = backoff
        self.connected = asyncio.Event()
        self.connects = 0  # how many times a session was established
        self._client: aiomqtt.Client | None = None
        self._lost = asyncio.Event()  # set when the current session ends (one per session)
        self._task: asyncio.Task[None] | None = None
        self._paused = asyncio.Event()
        self._paused.set()  # set = allowed to connect
        self._stopping = False

    async def start(self, wait: float | None = 10.0) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"mqtt-{self.client_id}")
        if wait:
            await self.wait_connected(wait)

    async def wait_connected(self, timeout: float) -> None:  # noqa: ASYNC109
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError:
            raise NotConnected(
                f"no MQTT connection to {self.params.host}:{self.params.port} in {timeout}s"
            ) from None

    async def stop(self) -> None:
        """Graceful: DISCONNECT is sent, so the broker does not publish the last will."""
        self._stopping = True
        self._paused.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self.connected.clear()

    def drop(self) -> None:
        """Cut the TCP connection without DISCONNECT (the broker then publishes the will)
        and stay offline until `resume()`."""
        self._paused.clear()
        self.connected.clear()
        self._lost.set()  # publishes in flight on this session fail now, not at their timeout
        client = self._client
        if client is not None:
            sock = client._client.socket()  # noqa: SLF001 - paho exposes the socket only here
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def resume(self) -> None:
        self._paused.set()

    async def subscribe(self, topic: str) -> None:
        if topic not in self.subscriptions:
            self.subscriptions.append(topic)
        if self._client is not None and self.connected.is_set():
            await self._client.subscribe(topic, qos=1)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        qos: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> None:
        """Returns once the broker has the message (PUBACK for QoS 1). Raises NotConnected
        as soon as the session it went out on is lost: a PUBACK can no longer arrive then
        (a new session does not resume the old one's in-flight messages), so the caller
        re-sends after reconnect rather than waiting out `timeout`."""
        client, lost = self._client, self._lost
        if client is None or not self.connected.is_set() or lost.is_set():
            raise NotConnected("MQTT not connected")
        pub = asyncio.ensure_future(
            client.publish(topic, payload, qos=qos, retain=retain, timeout=timeout)
        )
        gone = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait({pub, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not pub.done():
                pub.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await pub
        if pub.cancelled():
            raise NotConnected("MQTT connection lost before the broker confirmed")
        try:
            pub.result()
        except aiomqtt.MqttError as exc:
            raise NotConnected(str(exc)) from exc

    async def _run(self) -> None:
        delay = self.backoff[0]
        while not self._stopping:
            await self._paused.wait()
            client = aiomqtt.Client(
                self.params.host,
                self.params.port,
                username=self.params.username,
                password=self.params.password,
                identifier=self.client_id,
                will=self._will_factory(),
                clean_session=self.clean_session,
                keepalive=self.keepalive,
                socket_options=[NODELAY],
                timeout=10,
            )
            if self.manual_ack:
                client._client.manual_ack_set(True)  # noqa: SLF001 - paho's switch
            lost = self._lost = asyncio.Event()
            try:
                async with client:
                    self._client = client
                    _ensure_nodelay(client)
                    for topic in self.subscriptions:
                        await client.subscribe(topic, qos=1)
                    self.connects += 1
                    self.connected.set()
                    delay = self.backoff[0]
                    if self.on_connect:
                        asyncio.create_task(self._safe_on_connect())
                    async for msg in client.messages:
                        await self._dispatch(msg)
            except aiomqtt.MqttError as exc:
                if not self._stopping:
                    log.info(
                        "MQTT %s: connection lost (%s); retrying in %.2fs",
                        self.client_id,
                        exc,
                        delay,
                    )
            finally:
                self.connected.clear()
                lost.set()
                self._client = None
            if self._stopping:
                break
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.backoff[1])

    async def _safe_on_connect(self) -> None:
        try:
            await self.on_connect()  # type: ignore[misc]
        except Exception:
            log.exception("on_connect handler failed")

    def defer_ack(self) -> Callable[[], None] | None:
        """While a handler runs (manual_ack): take over the PUBACK of the message it handles;
        it is then sent when the returned function is called, never if it is not (the
        broker re-sends on the next session). None without manual_ack."""
        ack, self._ack_current = self._ack_current, None
        return ack

    def _acker(self, msg: aiomqtt.Message) -> Callable[[], None]:
        client, mid, qos = self._client, msg.mid, msg.qos

        def ack() -> None:
            # Only on the session it came in on: a new session gets the message again.
            if qos > 0 and client is not None and self._client is client:
                with contextlib.suppress(Exception):
                    client._client.ack(mid, qos)  # noqa: SLF001

        return ack

    async def _dispatch(self, msg: aiomqtt.Message) -> None:
        raw = msg.payload
        payload = raw if isinstance(raw, bytes | bytearray) else str(raw).encode()
        self._ack_current = self._acker(msg) if self.manual_ack else None
        try:
            await self.on_message(msg.topic.value, bytes(payload), bool(msg.retain))
        except Exception:
            # A bad message or a handler bug must never take the connection down.
            log.exception("handler failed for message on %s", msg.topic.value)
        finally:
            ack, self._ack_current = self._ack_current, None
            if ack is not None:
                ack()  # not deferred by the handler: confirm it now


def _ensure_nodelay(client: aiomqtt.Client) -> None:
    sock = client._client.socket()  # noqa: SLF001
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(*NODELAY)


def socket_nodelay(conn: MqttConnection) -> bool | None:
    """Whether TCP_NODELAY is on for the live socket (for tests); None when not connected."""
    client = conn._client  # noqa: SLF001
    if client is None:
        return None
    sock = client._client.socket()  # noqa: SLF001
    if not isinstance(sock, socket.socket):
        return None
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


class MqttServerTransport(ServerTransportBase):
    """Bridge side over MQTT.

    Events and states go through a shared subscription when `shared_group` is set, so that
    several bridge processes split the load (Mosquitto; amqtt has no shared subscriptions,
    use `shared_group=None` there). Acks are always a plain subscription: the process that
    published a command holds its future and must see its ack.
    """

    def __init__(
        self,
        url: str,
        *,
        root: str = "anxin",
        key_for: KeyLookup | None = None,
        shared_group: str | None = None,
        client_id: str | None = None,
        persistent: bool = False,
        events: bool = True,
        confirm_when_settled: bool = False,
    ) -> None:
        super().__init__(key_for=key_for)
        self.topics = Topics(root)
        evt = self.topics.all("evt")
        # events=False: a process that only sends commands (an API worker beside a separate
        # `anxin bridge`) must not take a share of the device events.
        subs = [Topics.shared(shared_group, evt) if shared_group else evt] if events else []
        subs += [
            self.topics.all("ack"),
            # States stay plain: brokers do not send retained messages to shared subscriptions.
            self.topics.all("state"),
        ]
        self.conn = MqttConnection(
            url,
            self._on_message,
            client_id=client_id,
            subscriptions=subs,
            # A persistent session with a fixed client id keeps events queued in the broker
            # while the bridge restarts.
            clean_session=not persistent,
            # An event is PUBACKed once its consumer settled it (claimed in the database),
            # so one this process never made durable comes again on the next session.
            manual_ack=confirm_when_settled,
        )

    async def start(self) -> None:
        await self.conn.start()

    async def stop(self) -> None:
        await self.conn.stop()
        self._cancel_pending()

    async def _send(self, device_id: str, cmd: dict[str, Any]) -> None:
        await self.conn.publish(self.topics.cmd(device_id), encode(cmd))

    async def clear_retained(self, device_id: str) -> None:
        await self.conn.publish(self.topics.state(device_id), b"", retain=True)

    async def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        parsed = self.topics.parse(topic)
        if parsed is None:
            self.reject("bad_topic", None, topic)
            return
        device_id, channel = parsed
        if channel == "evt":
            ack = self.conn.defer_ack()
            confirm = None if ack is None else (lambda durable: durable and ack())
            await self.handle_event(device_id, payload, confirm)
        elif channel == "ack":
            await self.handle_ack(device_id, payload)
        elif channel == "state" and payload:  # empty = retained message cleared
            await self.handle_state(device_id, payload, retained)


class MqttDeviceLink(DeviceLink):
    """Device side over MQTT: connects out with its own credentials (username = device id,
    password = device secret), subscribes to its cmd topic, last will = offline state."""

    def __init__(
        self,
        url: str,
        device_id: str,
        secret: str,
        *,
        root: str = "anxin",
        will_payload: Callable[[], bytes] | None = None,
        keepalive: int = 30,
    ) -> None:
        super().__init__()
        self.topics = Topics(root)
        self.device_id = device_id

        def will() -> aiomqtt.Will | None:
            if will_payload is None:
                return None
            return aiomqtt.Will(self.topics.state(device_id), will_payload(), qos=1, retain=True)

        self.conn = MqttConnection(
            url,
            self._on_message,
            client_id=f"dev-{device_id}",
            username=device_id,
            password=secret,
            subscriptions=[self.topics.cmd(device_id)],
            will_factory=will,
            on_connect=self._connected_cb,
            keepalive=keepalive,
        )
        self.connected = self.conn.connected

    async def start(self, wait: float | None = 10.0) -> None:
        await self.conn.start(wait)

    async def stop(self) -> None:
        await self.conn.stop()

    def drop(self) -> None:
        self.conn.drop()

    def resume(self) -> None:
        self.conn.resume()

    async def publish_ack(self, ack: dict[str, Any]) -> None:
        await self.conn.publish(self.topics.ack(self.device_id), encode(ack))

    async def publish_event(self, event: dict[str, Any]) -> None:
        await self.conn.publish(self.topics.evt(self.device_id), encode(event))

    async def publish_state(self, state: dict[str, Any] | None, *, retain: bool = True) -> None:
        await self.conn.publish(
            self.topics.state(self.device_id), encode(state) if state else b"", retain=retain
        )

    async def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self.topics.cmd(self.device_id) and self.on_command:
            await self.on_command(payload)

    async def _connected_cb(self) -> None:
        if self.on_connect:
            await self.on_connect()
