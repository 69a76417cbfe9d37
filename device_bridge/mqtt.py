"""The MQTT transport: the connection and the bridge side over MQTT.

- `MqttConnection`: TCP_NODELAY on the socket (Nagle + delayed ACK cost ~40 ms per hop on
  small QoS 1 messages), QoS 1, reconnect with jittered exponential backoff, subscriptions
  re-applied after every reconnect, optional last will.
- `MqttServerTransport`: the bridge's `ServerTransport` over MQTT. The device side is
  `simulator/mqtt_link.py`; the interface both implement is `transport.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import aiomqtt

from device_bridge.protocol import (
    Topics,
    encode,
    now_ms,
)
from device_bridge.signing import sign
from device_bridge.transport import (
    KeyLookup,
    NotConnected,
    ServerTransportBase,
)

log = logging.getLogger(__name__)

NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
# Receipts wait this long to go out together, per device; an open command naming the
# event is its receipt too (sent only once the claim is durable), so a receipt still
# queued when that command goes out is dropped: a granted event costs no receipt message.
RECEIPT_BATCH_S = 0.25
# Commands the bridge has out awaiting the broker's PUBACK (docs/performance.md).
SERVER_MAX_INFLIGHT = 1000
# How long the bridge's PUBACKs (of events once claimed, of acks) wait to go out with
# the next packet: an event's open command follows its PUBACK within milliseconds.
SERVER_ACK_HOLD_S = 0.02
MessageHandler = Callable[[str, bytes, bool], Awaitable[None]]  # topic, payload, retained


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


CONNECT_TIMEOUT_S = 4.0


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
        max_inflight: int | None = None,
        ack_hold_s: float = 0.0,
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
        # QoS 1 publishes awaiting their PUBACK (paho's default: 20, the rest queue here).
        self.max_inflight = max_inflight
        # PUBACKs wait this long for other packets to go out with (one send for all).
        self.ack_hold_s = ack_hold_s
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
                # CONNACK and SUBACK come in milliseconds on a LAN; one lost (a broker's
                # session task dying) is retried well inside start()'s 10 s wait.
                timeout=CONNECT_TIMEOUT_S,
                max_inflight_messages=self.max_inflight,
            )
            if self.manual_ack:
                client._client.manual_ack_set(True)  # noqa: SLF001 - paho's switch
            _write_on_this_loop(client, self.ack_hold_s)
            _read_in_chunks(client)
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


# paho's packet types (the high nibble of the first byte)
_PUBLISH, _PUBACK, _DISCONNECT = 0x30, 0x40, 0xE0


def _write_on_this_loop(client: aiomqtt.Client, ack_hold_s: float = 0.0) -> None:
    """Send what paho queues from this loop's thread (every publish and PUBACK here) on
    the next turn of the loop, in one send, rather than as aiomqtt does: `call_soon_threadsafe`
    (a write to the loop's self-pipe) to add a writer (an epoll change) that waits a turn for
    writability and is removed again (another), then one send per packet - several system
    calls per packet, and on a loaded machine each costs more than the packet's own bytes.
    With `ack_hold_s`, a write of PUBACKs alone waits that long for company (the door
    command an event's PUBACK usually precedes by a few milliseconds, other PUBACKs):
    the broker learns a few milliseconds later that a message is safe here, which only
    matters if this process dies meanwhile (it then sends it again, as it would anyway).
    Only what the socket does not take at once waits for writability, as before; the
    connect, which paho runs on aiomqtt's executor thread, keeps aiomqtt's thread-safe path."""
    loop = asyncio.get_running_loop()
    paho = client._client  # noqa: SLF001
    aiomqtt_register = paho.on_socket_register_write
    assert aiomqtt_register is not None  # aiomqtt sets it in its constructor
    threadsafe: Callable[[Any, Any, Any], None] = aiomqtt_register
    loop_thread = threading.get_ident()
    out = paho._out_packet  # noqa: SLF001 - paho's queue of packets to send
    held: asyncio.TimerHandle | None = None  # a write of PUBACKs alone, waiting

    def only_acks() -> bool:
        return all((p["command"] & 0xF0) == _PUBACK for p in out)

    def register_write(c: Any, userdata: Any, sock: Any) -> None:
        nonlocal held
        if threading.get_ident() != loop_thread:
            threadsafe(c, userdata, sock)
            return
        if ack_hold_s and only_acks():
            held = loop.call_later(ack_hold_s, write, sock)
        else:
            loop.call_soon(write, sock)

    def write(sock: Any) -> None:
        nonlocal held
        if held is not None:
            held.cancel()
            held = None
        _coalesce(out)
        try:
            paho.loop_write()
        except Exception:
            threadsafe(paho, None, sock)  # aiomqtt's writer reports the broken connection
            return
        if paho.want_write() and paho.socket() is sock:
            threadsafe(paho, None, sock)  # the socket is full: wait until it is writable

    paho.on_socket_register_write = register_write
    if not ack_hold_s:
        return
    queue = paho._packet_queue  # noqa: SLF001

    def packet_queue(command: int, packet: Any, mid: int, qos: int, info: Any = None) -> Any:
        nonlocal held
        rc = queue(command, packet, mid, qos, info)
        if (
            held is not None
            and (command & 0xF0) != _PUBACK
            and threading.get_ident() == loop_thread
        ):
            held.cancel()  # something else to send: the held PUBACKs go with it, now
            held = None
            loop.call_soon(write, paho.socket())
        return rc

    paho._packet_queue = packet_queue  # type: ignore[method-assign]  # noqa: SLF001


READ_CHUNK = 65536


def _read_in_chunks(client: aiomqtt.Client) -> None:
    """paho reads a packet in three system calls or more (its first byte, each byte of
    its length, the rest) and one more to learn that the socket is empty: here one recv
    takes what the socket holds and paho is served from it. A recv that returned less
    than it asked for emptied the socket, so paho's next ask, once the chunk is used up,
    is told "would block" without a call (epoll, level-triggered, calls the reader again
    when more arrives); what paho leaves in the chunk when its read returns is read at
    once, as the socket would no longer say it is readable."""
    paho = client._client  # noqa: SLF001
    loop_read = paho.loop_read
    chunk = b""
    pos = 0
    drained = False

    def recv(size: int) -> bytes:
        nonlocal chunk, pos, drained
        if pos >= len(chunk):
            if drained:
                raise BlockingIOError
            sock = paho._sock  # noqa: SLF001
            if sock is None:
                raise ConnectionError("no socket")
            chunk, pos = sock.recv(READ_CHUNK), 0
            drained = len(chunk) < READ_CHUNK
            if not chunk:
                return chunk  # closed by the broker
        data = chunk[pos : pos + size]
        pos += len(data)
        return data

    def read(max_packets: int = 1) -> Any:
        nonlocal drained
        drained = False
        while True:
            rc = loop_read(max_packets)
            if rc or pos >= len(chunk):
                return rc

    paho._sock_recv = recv  # type: ignore[method-assign,assignment]  # noqa: SLF001
    paho.loop_read = read  # type: ignore[method-assign]


def _coalesce(out: Any) -> None:
    """Join paho's queued packets that need nothing done once written (all but a QoS 0
    PUBLISH, whose sender waits for its write, and DISCONNECT) into one: one send."""
    if len(out) < 2:
        return
    packets: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []

    def close_run() -> None:
        if len(run) > 1:
            data = b"".join(bytes(p["packet"][p["pos"] :]) for p in run)
            packets.append({**run[0], "packet": data, "pos": 0, "to_process": len(data)})
        else:
            packets.extend(run)
        run.clear()

    for p in list(out):
        kind = p["command"] & 0xF0
        if kind == _DISCONNECT or (kind == _PUBLISH and p["qos"] == 0):
            close_run()
            packets.append(p)
        else:
            run.append(p)
    close_run()
    if len(packets) < len(out):
        out.clear()
        out.extend(packets)


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
            # One open command per event in flight: paho's 20 would queue a burst's.
            max_inflight=SERVER_MAX_INFLIGHT,
            ack_hold_s=SERVER_ACK_HOLD_S,
        )
        # Receipts waiting to go out, per device (sent together every RECEIPT_BATCH_S).
        self._receipts: dict[str, list[str]] = {}
        self._receipt_tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.conn.start()

    async def stop(self) -> None:
        await self.conn.stop()
        self._cancel_pending()

    def receipt(self, device_id: str, event_id: str) -> None:
        """Queue a receipt; the batch goes out shortly (QoS 0: a lost receipt only makes
        the device send the event again, which is answered with a receipt again)."""
        if not self._receipts:
            asyncio.get_running_loop().call_later(RECEIPT_BATCH_S, self._flush_receipts)
        self._receipts.setdefault(device_id, []).append(event_id)

    def _flush_receipts(self) -> None:
        batch, self._receipts = self._receipts, {}
        if not batch:
            return  # every one was answered by its open command
        task = asyncio.create_task(self._send_receipts(batch))
        self._receipt_tasks.add(task)
        task.add_done_callback(self._receipt_tasks.discard)

    async def _send_receipts(self, batch: dict[str, list[str]]) -> None:
        for device_id, ids in batch.items():
            key = self.key_for(device_id) if self.key_for else None
            if inspect.isawaitable(key):
                key = await key
            if not key:
                continue
            msg = {"v": 1, "type": "receipt", "device_id": device_id, "ts": now_ms(), "events": ids}
            try:
                await self.conn.publish(
                    self.topics.cmd(device_id),
                    encode(sign(msg, key)),
                    qos=0,
                )
                self.stats["receipts"] += len(ids)
            except NotConnected:
                return  # the devices send these events again; they are answered then

    async def _send(self, device_id: str, cmd: dict[str, Any]) -> None:
        event_id = (cmd.get("args") or {}).get("event_id") if cmd.get("op") == "open" else None
        queued = self._receipts.get(device_id)
        if event_id and queued and event_id in queued:
            queued.remove(event_id)  # this command is the event's receipt
            if not queued:
                del self._receipts[device_id]
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
