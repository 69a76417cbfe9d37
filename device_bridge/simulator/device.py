"""A simulated terminal that speaks protocol v1 over a real transport.

It behaves like the firmware would: verifies every command (signature, addressee, expiry,
replay) and acks with a reason, keeps a versioned face library, checks visitor passes
offline, drives a virtual door with relock, buffers events while disconnected and
re-sends them with the same ids, heartbeats on the retained state topic.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from anxin.settings import get_settings
from device_bridge.simulator.mqtt_link import MqttDeviceLink
from device_bridge.transport import DeviceLink, NotConnected

from ..protocol import (
    MAX_IMAGE_B64,
    MAX_TRANSFER_CHUNK_PLAIN,
    DeviceKind,
    ProtocolError,
    decode,
    embedding_from_b64,
    embedding_to_b64,
    encode,
    new_id,
    now_ms,
    parse_command,
    parse_event,
)
from ..sealing import (
    CODE,
    LIBRARY,
    SealError,
    code_aad,
    derive_key,
    open_with_private_key,
    public_key_b64,
    seal,
    seal_to_public_key,
    transfer_aad,
)
from ..signing import CommandGuard, device_key, sign, verify
from .library import FaceLibrary
from .passes import PassVerdict, PassVerifier

log = logging.getLogger(__name__)

# Which commands each kind of terminal understands.
LIBRARY_OPS = {"library_sync", "library_export", "library_import"}
SUPPORTED_OPS: dict[str, set[str]] = {
    "face_gate": {"open", "revoke_pass", "config", "reboot", *LIBRARY_OPS},
    "unit_door": {"open", "revoke_pass", "config", "reboot", *LIBRARY_OPS},
    "intercom_panel": {"open", "revoke_pass", "config", "reboot", *LIBRARY_OPS},
    "barrier_gate": {"open", "revoke_pass", "config", "reboot"},
    "fence": {"config", "reboot"},
}
HAS_LIBRARY = {"face_gate", "unit_door", "intercom_panel"}


@dataclass
class DeviceConfig:
    device_id: str
    secret: str
    kind: DeviceKind = "face_gate"
    root: str = "anxin"
    match_mode: str = "local"  # "local": match on the device; "server": send the embedding
    match_threshold: float = field(default_factory=lambda: get_settings().face_match_threshold)
    relock_s: float = 5.0
    heartbeat_s: float = 30.0
    stale_grace_s: float = 2.0  # how long a capture waits for the post-reconnect library sync
    firmware: str = "anxin-sim-1.0"
    community_id: str | None = None
    pass_public_key: Any = None  # Ed25519 public key (object or PEM) for offline passes
    # Installed as a gate that serves the whole community: accepts "@gates" passes.
    community_gate: bool = False
    outbox_max: int = 10_000
    # An event delivered to the broker stays held until the server's receipt says it is
    # recorded; without one in this time it is sent again (same id), at most this often.
    receipt_timeout_s: float = 10.0
    receipt_retries: int = 5


@dataclass(frozen=True)
class DoorOpening:
    ts: int
    door: int
    reason: str
    cmd_id: str | None = None
    pass_id: str | None = None
    person_id: str | None = None


class SimulatedDevice:
    def __init__(
        self, cfg: DeviceConfig, link: DeviceLink | None = None, mqtt_url: str | None = None
    ) -> None:
        self.cfg = cfg
        self.key = device_key(cfg.secret)
        self.library_key = derive_key(cfg.secret, LIBRARY)  # opens the templates sent to us
        self.code_key = derive_key(cfg.secret, CODE)  # seals the codes keyed here
        self.guard = CommandGuard(cfg.device_id, self.key)
        self.library = FaceLibrary()
        self.library_synced = asyncio.Event()  # set once the server confirmed "current"
        # Receives a library from a peer terminal (section 5a): made on the device, the
        # private half never leaves it; the public half goes out in every signed state.
        self.transfer_key = X25519PrivateKey.generate()
        self._imports: dict[str, dict[int, list[dict[str, Any]]]] = {}
        self.passes = (
            PassVerifier(
                cfg.pass_public_key,
                cfg.community_id or "",
                cfg.device_id,
                community_gate=cfg.community_gate,
            )
            if cfg.pass_public_key is not None
            else None
        )
        if link is None:
            url = mqtt_url or get_settings().mqtt_url or "mqtt://127.0.0.1:1883"
            link = MqttDeviceLink(
                url, cfg.device_id, cfg.secret, root=cfg.root, will_payload=self._will_payload
            )
        self.link = link
        link.on_command = self._on_command
        link.on_connect = self._on_connect

        self.opened: list[DoorOpening] = []  # history of door openings
        self.door_open = False
        self.acks: list[dict[str, Any]] = []  # every ack sent, in order
        self.sent: list[dict[str, Any]] = []  # every event delivered (PUBACK'd), in order
        self.received: deque[bytes] = deque(maxlen=1000)  # raw commands, as they arrived
        self.outbox: deque[dict[str, Any]] = deque()
        # Delivered to the broker, no receipt yet: event id -> (event, when sent, sends).
        self.unconfirmed: OrderedDict[str, tuple[dict[str, Any], float, int]] = OrderedDict()
        self.dropped_events = 0
        self.stats: dict[str, int] = {
            "malformed_commands": 0,
            "resent": 0,
            "unconfirmed_dropped": 0,
        }
        self._seq = 0
        self._started = time.monotonic()
        self._kick = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._relock: asyncio.Task[None] | None = None
        self._opened_cond = asyncio.Condition()
        self._drained = asyncio.Event()
        self._drained.set()

    @property
    def device_id(self) -> str:
        return self.cfg.device_id

    # ------------------------------------------------------------ lifecycle

    async def start(self, wait: float | None = 10.0) -> SimulatedDevice:
        self._tasks = [
            asyncio.create_task(self._sender()),
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._resender()),
        ]
        await self.link.start(wait)
        return self

    async def stop(self, *, clear_retained: bool = False) -> None:
        """Graceful shutdown: an "offline" state (or nothing, with clear_retained)."""
        if self.link.connected.is_set():
            with contextlib.suppress(Exception):
                await self.link.publish_state(
                    None if clear_retained else self._state("offline", reason="shutdown")
                )
        for t in [*self._tasks, self._relock]:
            if t:
                t.cancel()
        await self.link.stop()

    def go_offline(self) -> None:
        """Pull the cable: the broker publishes our last will (offline)."""
        self.library_synced.clear()
        self.link.drop()

    async def go_online(self, wait: float | None = 10.0) -> None:
        self.link.resume()
        if wait:
            await asyncio.wait_for(self.link.connected.wait(), wait)

    async def flush(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every buffered event has been delivered."""
        await asyncio.wait_for(self._drained.wait(), timeout)

    async def wait_opened(self, count: int = 1, timeout: float = 5.0) -> DoorOpening:  # noqa: ASYNC109
        async with self._opened_cond:
            await asyncio.wait_for(
                self._opened_cond.wait_for(lambda: len(self.opened) >= count), timeout
            )
        return self.opened[count - 1]

    # ------------------------------------------------------------ the physical world

    async def capture_face(
        self,
        embedding: np.ndarray | list[float] | None = None,
        image: bytes | None = None,
        *,
        snapshot: bytes | None = None,
        liveness: float | None = None,
    ) -> dict[str, Any]:
        """A face in front of the camera. `embedding` stands in for the on-device model."""
        fields: dict[str, Any] = {"library_version": self.library.version}
        img = image or snapshot
        if img is not None:
            b64 = base64.b64encode(img).decode()
            if len(b64) > MAX_IMAGE_B64:
                raise ValueError(f"image over {MAX_IMAGE_B64} base64 chars; downscale first")
            fields["image"] = b64
        if liveness is not None:
            fields["liveness"] = round(float(liveness), 4)
        if self.cfg.match_mode == "local" and embedding is not None:
            if (
                self.cfg.kind in HAS_LIBRARY
                and not self.library_synced.is_set()
                and self.link.connected.is_set()
            ):
                # Just (re)connected: the server is sending what we missed (removals
                # included). Matching before that could admit a removed person.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.library_synced.wait(), self.cfg.stale_grace_s)
            stale = not self.library_synced.is_set()
            m = self.library.match(
                np.asarray(embedding, dtype=np.float32), self.cfg.match_threshold, now_ms()
            )
            fields.update(
                mode="local",
                score=round(m.score, 4),
                library_stale=stale,
                library_version=self.library.version,
            )
            if m.person_id:
                fields["person_id"] = m.person_id
            if stale:  # let the server match with its current gallery instead
                fields["embedding"] = embedding_to_b64(embedding)
        else:
            fields["mode"] = "server"
            if embedding is not None:
                fields["embedding"] = embedding_to_b64(embedding)
            if "image" not in fields and embedding is None:
                raise ValueError("a capture needs an embedding or an image")
        return self._emit("face_capture", **fields)

    async def swipe_card(self, card_no: str) -> dict[str, Any]:
        return self._emit("card_swipe", card_no=card_no)

    async def scan_qr(
        self,
        token: str,
        image: bytes | None = None,
    ) -> tuple[dict[str, Any], PassVerdict | None]:
        """Check a pass offline; a valid one opens the door here and now. `image`: the
        camera's photo of the holder (e.g. a delivery rider), sent with the event."""
        img = base64.b64encode(image).decode() if image else None
        if self.passes is None:
            return self._emit("qr_scan", token=token, local_result="unchecked", image=img), None
        v = self.passes.use(token)
        if not v.ok:
            evt = self._emit(
                "qr_scan",
                token=token,
                local_result="rejected",
                reason=v.reason,
                pass_id=v.pass_id,
                image=img,
            )
            return evt, v
        evt = self._emit(
            "qr_scan", token=token, local_result="accepted", pass_id=v.pass_id, image=img
        )
        await self._open(reason=f"pass:{v.claims.get('kind', 'visitor')}", pass_id=v.pass_id)
        self._emit("pass_used", pass_id=v.pass_id, uses=v.uses, plate=v.claims.get("plate"))
        return evt, v

    async def enter_code(self, room: str, code: str) -> dict[str, Any]:
        """A code keyed at the panel: it leaves the panel sealed to the server only."""
        event_id = new_id()
        sealed = seal(self.code_key, code.encode(), code_aad(self.device_id, event_id, room))
        return self._emit("code_entry", event_id=event_id, room=room, code_sealed=sealed)

    async def read_plate(
        self, plate: str, *, direction: str = "in", confidence: float | None = 0.98
    ) -> dict[str, Any]:
        return self._emit("plate_read", plate=plate, direction=direction, confidence=confidence)

    async def call_room(self, room: str) -> dict[str, Any]:
        return self._emit("intercom_call", room=room)

    async def door_forced(self) -> dict[str, Any]:
        return self._emit("door_state", state="forced_open")

    async def door_held_open(self) -> dict[str, Any]:
        return self._emit("door_state", state="held_open")

    async def fence_alarm(self, zone: str, alarm: str = "intrusion") -> dict[str, Any]:
        return self._emit("fence_alarm", zone=zone, alarm=alarm)

    # ------------------------------------------------------------ events out

    def _emit(self, type_: str, event_id: str | None = None, **fields: Any) -> dict[str, Any]:
        self._seq += 1
        evt: dict[str, Any] = {
            "v": 1,
            "id": event_id or new_id(),
            "device_id": self.device_id,
            "ts": now_ms(),
            "seq": self._seq,
            "type": type_,
            "door": 1,
        }
        evt.update({k: v for k, v in fields.items() if v is not None})
        if not self.link.connected.is_set():
            # Kept while offline and sent late: the server logs it and never opens for it.
            evt["buffered"] = True
        parse_event(evt)  # a schema bug here is ours: fail loudly in tests
        evt = sign(evt, self.key)
        if len(self.outbox) >= self.cfg.outbox_max:
            self.outbox.popleft()  # like firmware: oldest first out when storage is full
            self.dropped_events += 1
        self.outbox.append(evt)
        self._drained.clear()
        self._kick.set()
        return evt

    async def _sender(self) -> None:
        """Deliver the outbox in order; an event leaves it only once the broker has it, so a
        lost PUBACK means a re-send with the same id (the server de-duplicates).

        A connection lost mid-publish fails the publish at once (the link does not wait
        for a PUBACK that cannot come), and nothing a publish raises ends this loop: the
        event stays first in the outbox and goes again once the link is back."""
        while True:
            if not self.outbox:
                self._drained.set()
                self._kick.clear()
                await self._kick.wait()
                continue
            await self.link.connected.wait()
            evt = self.outbox[0]
            try:
                await self.link.publish_event(evt)
            except (NotConnected, OSError, TimeoutError) as exc:
                log.debug("%s: event %s not delivered yet (%s)", self.device_id, evt["id"], exc)
                await asyncio.sleep(0.05)
                continue
            except Exception:
                log.exception(
                    "%s: publishing event %s failed; will retry", self.device_id, evt["id"]
                )
                await asyncio.sleep(0.05)
                continue
            if self.outbox and self.outbox[0] is evt:
                self.outbox.popleft()
            _, _, sends = self.unconfirmed.pop(evt["id"], (None, 0.0, 0))
            self.unconfirmed[evt["id"]] = (evt, time.monotonic(), sends + 1)
            if not sends:
                self.sent.append(evt)

    async def _resender(self) -> None:
        """Events the server never confirmed (a broker that lost them in a restart, a
        bridge that never recorded them) go out again, oldest first, with the same id."""
        while True:
            await asyncio.sleep(min(1.0, self.cfg.receipt_timeout_s / 4))
            due = time.monotonic() - self.cfg.receipt_timeout_s
            again = []
            for event_id, (evt, at, sends) in list(self.unconfirmed.items()):
                if at > due:
                    if at == float("inf"):
                        continue  # already queued again
                    break  # in send order: the rest are younger
                if sends > self.cfg.receipt_retries:
                    del self.unconfirmed[event_id]
                    self.stats["unconfirmed_dropped"] += 1
                    log.warning("%s: event %s never confirmed; dropped", self.device_id, event_id)
                    continue
                self.unconfirmed[event_id] = (evt, float("inf"), sends)  # queued again
                again.append(evt)
            if again:
                self.stats["resent"] += len(again)
                self.outbox.extendleft(reversed(again))
                self._drained.clear()
                self._kick.set()

    def _on_receipt(self, obj: dict[str, Any]) -> None:
        if obj.get("device_id") != self.device_id or not verify(obj, self.key):
            self.stats["bad_receipts"] = self.stats.get("bad_receipts", 0) + 1
            return
        events = obj.get("events")
        for event_id in events if isinstance(events, list) else []:
            if isinstance(event_id, str):
                self.unconfirmed.pop(event_id, None)

    # ------------------------------------------------------------ state

    def _state(self, status: str, reason: str | None = None) -> dict[str, Any]:
        st: dict[str, Any] = {
            "v": 1,
            "id": new_id(),
            "device_id": self.device_id,
            "ts": now_ms(),
            "status": status,
            "kind": self.cfg.kind,
            "firmware": self.cfg.firmware,
            "library_version": self.library.version,
            "match_mode": self.cfg.match_mode,
            "buffered_events": len(self.outbox),
            "uptime_s": int(time.monotonic() - self._started),
        }
        if self.cfg.kind in HAS_LIBRARY:
            st["library_key"] = public_key_b64(self.transfer_key)
        if reason:
            st["reason"] = reason
        return sign(st, self.key)

    def _will_payload(self) -> bytes:
        return encode(self._state("offline", reason="lwt"))

    async def _on_connect(self) -> None:
        self.library_synced.clear()
        await self.link.publish_state(self._state("online"))
        self._kick.set()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.heartbeat_s)
            if self.link.connected.is_set():
                with contextlib.suppress(Exception):
                    await self.link.publish_state(self._state("online"))

    # ------------------------------------------------------------ commands in

    async def _on_command(self, payload: bytes) -> None:
        self.received.append(payload)
        try:
            obj = decode(payload)
        except ProtocolError as exc:
            self.stats["malformed_commands"] += 1
            log.info("%s: undecodable command dropped: %s", self.device_id, exc)
            return
        if obj.get("type") == "receipt":
            self._on_receipt(obj)
            return
        verdict = self.guard.check(obj)
        if not verdict.ok:
            if verdict.reason == "malformed" and not isinstance(obj.get("id"), str):
                self.stats["malformed_commands"] += 1
                return
            await self._ack(obj, "refused", verdict.reason)
            return
        try:
            cmd = parse_command(obj)
        except ProtocolError as exc:
            await self._ack(obj, "refused", "malformed", {"error": str(exc)[:200]})
            return
        if cmd.op == "open" and cmd.args.event_id:
            # Verified and sent only once the server recorded the event: its receipt too.
            self.unconfirmed.pop(cmd.args.event_id, None)
        if cmd.op not in SUPPORTED_OPS[self.cfg.kind]:
            await self._ack(obj, "refused", "unsupported")
            return
        try:
            result, reason, detail = await self._execute(cmd)
        except Exception as exc:  # firmware would ack a failure rather than go silent
            log.exception("%s: command %s failed", self.device_id, cmd.id)
            result, reason, detail = "failed", "error", {"error": str(exc)[:200]}
        await self._ack(obj, result, reason, detail)
        if cmd.op == "reboot" and result == "done":
            asyncio.create_task(self._reboot())

    async def _execute(self, cmd: Any) -> tuple[str, str | None, dict[str, Any]]:
        if cmd.op == "open":
            a = cmd.args
            await self._open(
                reason=a.reason or "remote",
                cmd_id=cmd.id,
                person_id=a.person_id,
                hold_s=a.hold_s,
                door=a.door,
            )
            return "done", None, {"door": a.door}
        if cmd.op == "library_sync":
            reason = self.library.apply(cmd.args, self.library_key, self.device_id)
            detail = {"library_version": self.library.version, "size": len(self.library)}
            if reason:
                return "refused", reason, detail
            if cmd.args.current:
                self.library_synced.set()
            return "done", None, detail
        if cmd.op == "library_export":
            return self._export_library(cmd.args)
        if cmd.op == "library_import":
            return self._import_library(cmd.args)
        if cmd.op == "revoke_pass":
            if self.passes is not None:
                self.passes.revoke(cmd.args.pass_ids, cmd.args.until)
            return "done", None, {"revoked": len(cmd.args.pass_ids)}
        if cmd.op == "config":
            settings = cmd.args.model_dump(exclude_none=True)
            keys = settings.pop("pass_keys", None)
            if keys is not None:
                self._set_pass_keys(keys)
            for k, v in settings.items():
                setattr(self.cfg, k, v)
            return "done", None, {"relock_s": self.cfg.relock_s, "match_mode": self.cfg.match_mode}
        if cmd.op == "reboot":
            return "done", None, {}
        return "refused", "unsupported", {}

    # ------------------------------------------------------------ peer library copy

    def _export_library(self, a: Any) -> tuple[str, str | None, dict[str, Any]]:
        """Seal the library to the replacement's public key, chunk by chunk, and send the
        chunks up as events (the outbox delivers them, across reconnects too)."""
        if not self.library_synced.is_set():
            return "refused", "no_library", {"library_version": self.library.version}
        version, chunks = self.library.version, _chunked(self.library.entries())
        total = len(chunks)
        for n, entries in enumerate(chunks):
            aad = transfer_aad(a.transfer_id, self.device_id, a.to_device_id, version, n, total)
            plain = json.dumps(entries, separators=(",", ":")).encode()
            epk, sealed = seal_to_public_key(a.to_public_key, plain, aad)
            self._emit(
                "library_export",
                transfer_id=a.transfer_id,
                to_device_id=a.to_device_id,
                library_version=version,
                chunk=n,
                chunks=total,
                count=len(entries),
                epk=epk,
                sealed=sealed,
            )
        detail = {"library_version": version, "chunks": total, "size": len(self.library)}
        return "done", None, detail

    def _import_library(self, a: Any) -> tuple[str, str | None, dict[str, Any]]:
        """A relayed chunk of a peer's library; once all are in, it becomes ours at once."""
        aad = transfer_aad(
            a.transfer_id, a.from_device_id, self.device_id, a.library_version, a.chunk, a.chunks
        )
        try:
            plain = open_with_private_key(self.transfer_key, a.epk, a.sealed, aad)
            entries = json.loads(plain)
        except (SealError, ValueError):
            return "refused", "transfer_unreadable", {}
        if not isinstance(entries, list) or len(entries) != a.count:
            return "refused", "transfer_unreadable", {}
        staged = self._imports.setdefault(a.transfer_id, {})
        staged[a.chunk] = entries
        if len(staged) < a.chunks:
            return "done", None, {"received": len(staged), "library_version": self.library.version}
        del self._imports[a.transfer_id]
        self.library.replace([e for n in sorted(staged) for e in staged[n]], a.library_version)
        # Matching waits for the server's catch-up sync from this version, as after a reconnect.
        self.library_synced.clear()
        return "done", None, {"library_version": self.library.version, "size": len(self.library)}

    def _set_pass_keys(self, keys: list[dict[str, Any]]) -> None:
        """A key rotation: verify with every key sent, by kid; revocations and use counts
        stay (they are about passes, not keys)."""
        by_kid = {k["kid"]: (k["public_key_pem"], k.get("until")) for k in keys}
        if self.passes is not None:
            self.passes.set_keys(by_kid)
        elif self.cfg.community_id:  # installed to check passes, keys arriving now
            self.passes = PassVerifier(by_kid, self.cfg.community_id, self.cfg.device_id)

    async def _ack(
        self,
        cmd: dict[str, Any],
        result: str,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        ack: dict[str, Any] = {
            "v": 1,
            "id": new_id(),
            "device_id": self.device_id,
            "cmd_id": str(cmd.get("id"))[:64],
            "ts": now_ms(),
            "result": result,
            "detail": detail or {},
        }
        if reason:
            ack["reason"] = reason
        ack = sign(ack, self.key)
        self.acks.append(ack)
        try:
            await self.link.publish_ack(ack)
        except (NotConnected, OSError) as exc:
            # No ack means the server reports "expired"; the door state is still reported.
            log.info("%s: ack for %s lost: %s", self.device_id, ack["cmd_id"], exc)

    async def _reboot(self) -> None:
        await asyncio.sleep(0.05)
        self.go_offline()
        await asyncio.sleep(0.2)
        self.link.resume()

    # ------------------------------------------------------------ the door

    async def _open(
        self,
        *,
        reason: str,
        cmd_id: str | None = None,
        pass_id: str | None = None,
        person_id: str | None = None,
        hold_s: float | None = None,
        door: int = 1,
    ) -> None:
        opening = DoorOpening(now_ms(), door, reason, cmd_id, pass_id, person_id)
        async with self._opened_cond:
            self.opened.append(opening)
            self._opened_cond.notify_all()
        if not self.door_open:
            self.door_open = True
            self._emit("door_state", state="opened", door=door, cmd_id=cmd_id, pass_id=pass_id)
        if self._relock:
            self._relock.cancel()  # a second open while open extends the hold
        self._relock = asyncio.create_task(self._relock_after(hold_s or self.cfg.relock_s, door))

    async def _relock_after(self, seconds: float, door: int) -> None:
        await asyncio.sleep(seconds)
        self.door_open = False
        self._emit("door_state", state="closed", door=door)


def _chunked(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Entries in chunks of at most MAX_TRANSFER_CHUNK_PLAIN bytes of JSON (one, maybe
    empty, for an empty library)."""
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 2
    for e in entries:
        n = len(json.dumps(e, separators=(",", ":"))) + 1
        if chunks[-1] and size + n > MAX_TRANSFER_CHUNK_PLAIN:
            chunks.append([])
            size = 2
        chunks[-1].append(e)
        size += n
    return chunks


def embedding_of(event: dict[str, Any]) -> np.ndarray | None:
    """The embedding a face_capture event carries, if any (server side helper)."""
    data = event.get("embedding")
    return embedding_from_b64(data) if isinstance(data, str) else None
