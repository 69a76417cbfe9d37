"""A dead face terminal replaced without asking residents to enroll again (edge mode).

In edge mode the server keeps no faces once every terminal has them, so it cannot fill a
new terminal itself. Instead:

1. Staff approve the replacement (`approve_replacement`): the old terminal is revoked in
   the same transaction (credentials, pending commands and deliveries; the broker login
   follows through the adapter), and the new terminal's public key, from its signed
   state, is pinned.
2. A peer face terminal of the community (online, the most up to date) is sent
   `library_export` with that key; it seals its library chunk by chunk to the new
   terminal (X25519 + AES-GCM) and sends the chunks up as `library_export` events.
3. The server keeps the chunks it cannot read (`TransferChunk`) until every one is in,
   then relays them as `library_import` commands; the new terminal opens them with its
   private key and takes the library at the peer's version.
4. The server marks the new terminal's deliveries acknowledged, catches it up from that
   version with the ordinary sync, deletes the chunks: the sync state shows the new
   terminal acknowledged. A replacement not done within `REPLACEMENT_TTL` fails and its
   chunks are deleted (re-enrollment remains, as before).

Retries: a peer that was offline is asked when it comes online, a new terminal that was
offline gets the chunks when it comes online, and the job `terminal_replacements` retries
both and ends expired replacements (a crash in between loses nothing but time).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from anxin.channels import DEVICE_CHANGED
from anxin.clock import utcnow
from anxin.errors import conflict, invalid
from anxin.runtime import Key, Runtime
from anxin.scheduler import JobContext, registry
from auth.permissions import Action, Principal, authorize, scoped_row
from domain import audit
from domain.devices.service import end_device, end_replacement
from domain.faces.library import (
    FACE_LIBRARY,
    LIBRARY_KINDS,
    _net,
    drop_delivered_edge_copies,
    face_terminals,
    is_face_terminal,
)
from domain.faces.records import record
from domain.ports import DEVICES, DevicePort
from models import (
    Device,
    DeviceStatus,
    FaceDelivery,
    FaceDeliveryState,
    FaceLibraryChange,
    LibraryOp,
    ReplacementState,
    TerminalReplacement,
    TransferChunk,
)

log = logging.getLogger(__name__)

REPLACEMENT_TTL = timedelta(days=2)


class Busy:
    """`advance` found another process on the replacement's step."""


BUSY = Busy()
OPEN_STATES = (ReplacementState.EXPORTING, ReplacementState.RELAYING)
OPEN_CACHE_S = 5.0
# Ciphertext kept per replacement (≤ 400 KiB a chunk): 1,000 chunks hold ~100,000 faces.
MAX_STORED_CHUNKS = 1_000
# Longest a step may hold its claim: a relay sends up to MAX_TRANSFER_CHUNKS commands, but
# a library of a few thousand faces is a handful of chunks of one command TTL each.
STEP_CLAIM_S = 300


async def approve_replacement(
    runtime: Runtime, principal: Principal, old_device_id: int, new_device_id: int, reason: str
) -> TerminalReplacement:
    """Staff approve: `new` takes over `old`'s face library from a peer; `old` is revoked."""
    old: Device = await scoped_row(principal, Action.DEVICE_MANAGE, Device, old_device_id, "device")
    new: Device = await scoped_row(principal, Action.DEVICE_MANAGE, Device, new_device_id, "device")
    if old.id == new.id or old.community_id != new.community_id:
        raise invalid(
            "replacement_device_invalid",
            "替换设备须是同一小区的另一台设备",
            "the replacement must be another device of the same community",
        )
    if old.kind not in LIBRARY_KINDS or "face" not in (old.methods or []):
        raise conflict(
            "not_a_face_terminal", "该设备不存人脸库", "the device holds no face library"
        )
    if old.status == DeviceStatus.REVOKED:
        raise conflict("device_revoked", "设备已吊销", "device revoked")
    if not is_face_terminal(new):
        raise conflict(
            "replacement_not_face_terminal",
            "新设备须是启用中的人脸终端",
            "the new device must be an active face terminal",
        )
    if not new.library_key:
        raise conflict(
            "replacement_key_unknown",
            "新设备尚未上线并报告其密钥，请先接通新设备",
            "the new terminal has not connected and reported its key yet",
        )
    busy = await TerminalReplacement.filter(
        community_id=old.community_id, state__in=list(OPEN_STATES)
    ).values_list("old_device_id", "new_device_id")
    if any({old.id, new.id} & {a, b} for a, b in busy):
        raise conflict(
            "replacement_in_progress", "该设备的替换正在进行", "a replacement of it is under way"
        )
    if not [d for d in await face_terminals(old.community_id) if d.id not in (old.id, new.id)]:
        raise conflict(
            "no_peer_terminal",
            "小区没有其他人脸终端可复制人脸库，住户须重新录入",
            "no other face terminal holds the library: residents must enroll again",
        )
    async with in_transaction():
        row = await TerminalReplacement.create(
            transfer_id=secrets.token_urlsafe(16),
            community_id=old.community_id,
            old_device_id=old.id,
            new_device_id=new.id,
            new_library_key=new.library_key,
            reason=reason[:200],
            approved_by_id=principal.id,
            expires_at=utcnow() + REPLACEMENT_TTL,
        )
        await end_device(old)
        await audit.record(
            "device.replaced",
            **principal.audit_actor(),
            community_id=old.community_id,
            target_type="device",
            target_id=old.id,
            details={"replacement": row.id, "new_device_id": new.id, "reason": reason[:200]},
        )
    await runtime.bus.publish(DEVICE_CHANGED, {"device_uid": old.device_uid})
    return row


async def get_replacement(principal: Principal, replacement_id: int) -> TerminalReplacement:
    row: TerminalReplacement = await scoped_row(
        principal, Action.DEVICE_READ, TerminalReplacement, replacement_id, "replacement"
    )
    return row


async def list_replacements(principal: Principal, community_id: int) -> list[TerminalReplacement]:
    authorize(principal, Action.DEVICE_READ, community_id)
    return await TerminalReplacement.filter(community_id=community_id).order_by("-id")


async def _end(row: TerminalReplacement, state: ReplacementState, error: str = "") -> None:
    await end_replacement(row, state, error)


class TerminalReplacements:
    """Moves replacements along (`runtime.get(REPLACEMENTS)`); commands go through the
    device port, so this knows no transport."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # Communities with an open replacement, re-read at most every OPEN_CACHE_S: a city's
        # heartbeats (hundreds a second) must not each cost a query for a rare event.
        self._open: tuple[float, set[int]] = (0.0, set())
        self._me = secrets.token_hex(8)  # this process, as the holder of a step claim

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()

    @property
    def devices(self) -> DevicePort:
        return self.runtime.get(DEVICES)

    def soon(self, replacement_id: int, *, tries: int = 10) -> None:
        """Advance it in the background; while another process holds its step, try again
        each second a few times (the job picks it up after that)."""
        self._open = (0.0, set())  # a new or moving replacement: look again next time

        async def run() -> None:
            for _ in range(tries):
                if await self.advance(replacement_id) is not BUSY:
                    return
                await asyncio.sleep(1.0)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def advance(self, replacement_id: int) -> TerminalReplacement | None | Busy:
        """Take one replacement as far as it can go now. One step at a time for the whole
        deployment: the step is claimed in the shared store (Redis on the server stack) for
        as long as it may take, so the job, a state hook and the API never ask a peer twice
        at once or relay the chunks twice (a late second relay would set a new terminal
        back to the peer's version after its catch-up)."""
        async with self._locks.setdefault(replacement_id, asyncio.Lock()):
            row = await TerminalReplacement.get_or_none(id=replacement_id)
            if row is None or row.state not in OPEN_STATES:
                return row
            claim = f"replacement:{row.id}:step"
            if not await self.runtime.kv.set(claim, self._me, STEP_CLAIM_S, only_new=True):
                return BUSY  # another process is on it
            try:
                if row.expires_at <= utcnow():
                    await _end(row, ReplacementState.FAILED, "expired")
                elif row.state == ReplacementState.EXPORTING and row.chunks == 0:
                    await self._ask_peer(row)
                elif row.state == ReplacementState.RELAYING:
                    await self._relay(row)
            except Exception:
                log.exception("terminal replacement %s: step failed", row.id)
            finally:
                if await self.runtime.kv.get(claim) == self._me:
                    await self.runtime.kv.delete(claim)
            return row

    async def _ask_peer(self, row: TerminalReplacement) -> None:
        new = await Device.get(id=row.new_device_id)
        if not is_face_terminal(new):
            await _end(row, ReplacementState.FAILED, "new_terminal_inactive")
            return
        if new.library_key != row.new_library_key:
            await _end(row, ReplacementState.FAILED, "replacement_key_changed")
            return
        peers = [
            d
            for d in await face_terminals(row.community_id)
            if d.id not in (row.old_device_id, row.new_device_id) and d.online
        ]
        if not peers:
            return  # asked again when a peer comes online, or by the job
        peer = max(peers, key=lambda d: (d.library_version_acked, -d.id))
        row.peer_device_id = peer.id
        await row.save(update_fields=["peer_device_id"])
        outcome = await self.devices.send(
            peer,
            "library_export",
            {
                "transfer_id": row.transfer_id,
                "to_device_id": new.device_uid,
                "to_public_key": row.new_library_key,
            },
            reason="terminal_replacement",
        )
        if not outcome.ok:
            log.info("replacement %s: export refused/unanswered: %s", row.id, outcome.reason)
            return
        chunks = int(outcome.detail.get("chunks", 0))
        updated = await TerminalReplacement.filter(
            id=row.id, state=ReplacementState.EXPORTING, chunks=0
        ).update(chunks=chunks, library_version=int(outcome.detail.get("library_version", 0)))
        if updated:
            await self.chunk_arrived(row.id)  # the events may have come before the ack

    async def chunk_arrived(self, replacement_id: int) -> None:
        """After a chunk is stored (or the export acked): relay once every chunk is here."""
        row = await TerminalReplacement.get_or_none(id=replacement_id)
        if row is None or row.state != ReplacementState.EXPORTING or row.chunks == 0:
            return
        have = await TransferChunk.filter(
            replacement_id=row.id, library_version=row.library_version
        ).count()
        if have < row.chunks:
            return
        moved = await TerminalReplacement.filter(
            id=row.id, state=ReplacementState.EXPORTING
        ).update(state=ReplacementState.RELAYING)
        if moved:
            self.soon(row.id)

    async def _relay(self, row: TerminalReplacement) -> None:
        new = await Device.get(id=row.new_device_id)
        peer = await Device.get_or_none(id=row.peer_device_id)
        if not is_face_terminal(new) or peer is None:
            await _end(row, ReplacementState.FAILED, "terminal_inactive")
            return
        if not new.online:
            return  # relayed when it comes online, or by the job
        chunks = await TransferChunk.filter(
            replacement_id=row.id, library_version=row.library_version
        ).order_by("chunk")
        detail: dict[str, Any] = {}
        for c in chunks:
            outcome = await self.devices.send(
                new,
                "library_import",
                {
                    "transfer_id": row.transfer_id,
                    "from_device_id": peer.device_uid,
                    "library_version": c.library_version,
                    "chunk": c.chunk,
                    "chunks": c.chunks,
                    "count": c.count,
                    "epk": c.epk,
                    "sealed": c.sealed,
                },
                reason="terminal_replacement",
            )
            if outcome.status == "refused":
                await _end(row, ReplacementState.FAILED, outcome.reason or "refused")
                return
            if not outcome.ok:
                return  # retried whole (the terminal keeps what it has, by chunk number)
            detail = outcome.detail
        if int(detail.get("library_version", -1)) != row.library_version:
            await _end(row, ReplacementState.FAILED, "import_incomplete")
            return
        await self._finish(row, new, int(detail.get("size", 0)))

    async def _finish(self, row: TerminalReplacement, new: Device, size: int) -> None:
        version = row.library_version
        changes = await FaceLibraryChange.filter(
            community_id=row.community_id, version__lte=version
        ).order_by("version")
        _, adds = _net(changes)
        now = utcnow()
        async with in_transaction():
            done = await TerminalReplacement.filter(
                id=row.id, state=ReplacementState.RELAYING
            ).update(state=ReplacementState.DONE, size=size, finished_at=now)
            if not done:
                return  # ended meanwhile (expired, or its new terminal revoked)
            await TransferChunk.filter(replacement_id=row.id).delete()
            await Device.filter(id=new.id).update(library_version_acked=version)
            for c in adds:
                await FaceDelivery.update_or_create(
                    enrollment_id=c.enrollment_id,
                    device_id=new.id,
                    op=LibraryOp.ADD,
                    defaults={
                        "community_id": row.community_id,
                        "version": c.version,
                        "state": FaceDeliveryState.ACKED,
                        "acked_at": now,
                    },
                )
            await record(
                "library.transferred",
                actor_type="device",
                actor_id=row.peer_device_id,
                community_id=row.community_id,
                device_id=new.id,
                reason="terminal_replacement",
                details={
                    "replacement": row.id,
                    "from_device_id": row.peer_device_id,
                    "old_device_id": row.old_device_id,
                    "version": version,
                    "size": size,
                    "chunks": row.chunks,
                },
            )
        # Whatever changed after the peer's version follows by the ordinary sync.
        await self.runtime.get(FACE_LIBRARY).sync_device(await Device.get(id=new.id), version)
        await drop_delivered_edge_copies(row.community_id)

    # ------------------------------------------------------------ triggers

    async def _open_communities(self) -> set[int]:
        at, cids = self._open
        if time.monotonic() - at > OPEN_CACHE_S:
            rows = await TerminalReplacement.filter(state__in=list(OPEN_STATES)).values_list(
                "community_id", flat=True
            )
            cids = {int(c) for c in rows}  # type: ignore[call-overload]
            self._open = (time.monotonic(), cids)
        return cids

    async def on_device_state(self, device: Device, online: bool) -> None:
        """A peer or a new terminal came online: move its replacements along."""
        if not online or device.kind not in LIBRARY_KINDS:
            return
        if device.community_id not in await self._open_communities():
            return
        rows = await TerminalReplacement.filter(
            community_id=device.community_id, state__in=list(OPEN_STATES)
        )
        for row in rows:
            if (row.state == ReplacementState.EXPORTING and row.chunks == 0) or (
                row.state == ReplacementState.RELAYING and row.new_device_id == device.id
            ):
                self.soon(row.id)

    async def store_chunk(
        self, peer: Device, transfer_id: str, to_device_uid: str, chunk: dict[str, Any]
    ) -> str:
        """A sealed chunk from a peer: kept if it belongs to an open export from this peer
        to that terminal; returns "stored", "duplicate" or why it was refused."""
        row = await TerminalReplacement.get_or_none(transfer_id=transfer_id)
        if row is None or row.state != ReplacementState.EXPORTING:
            return "transfer_unknown"
        new = await Device.get_or_none(id=row.new_device_id)
        if row.peer_device_id != peer.id or new is None or new.device_uid != to_device_uid:
            return "transfer_mismatch"
        if chunk["chunk"] >= chunk["chunks"] or (
            row.chunks
            and chunk["library_version"] == row.library_version
            and chunk["chunks"] != row.chunks
        ):
            return "transfer_mismatch"
        # Bounded storage even for a peer gone wrong: at most MAX_STORED_CHUNKS rows.
        if await TransferChunk.filter(replacement_id=row.id).count() >= MAX_STORED_CHUNKS:
            return "transfer_too_large"
        try:
            await TransferChunk.create(replacement_id=row.id, **chunk)
        except IntegrityError:
            return "duplicate"
        await self.chunk_arrived(row.id)
        return "stored"

    async def tick(self) -> int:
        rows = await TerminalReplacement.filter(state__in=list(OPEN_STATES))
        for row in rows:
            await self.advance(row.id)
        return len(rows)


REPLACEMENTS: Key[TerminalReplacements] = Key("terminal_replacements")


async def job_terminal_replacements(ctx: JobContext) -> int:
    return await ctx.runtime.get(REPLACEMENTS).tick()


def install(runtime: Runtime) -> None:
    runtime.provide(REPLACEMENTS, TerminalReplacements(runtime))
    registry.add_job("terminal_replacements", job_terminal_replacements, seconds=30, replace=True)
