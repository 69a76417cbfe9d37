"""Server side of the terminal face library: a versioned change log per community, pushed
to the community's face terminals and caught up on reconnect.

* `append_change` gives the community's next version (1, 2, ...) to one add or remove
  and writes a pending delivery row for every face terminal.
* `LibrarySync.sync_device` brings one terminal from the version it reports to the
  current one: the *net* change per person, removals first (a move-out never waits
  behind a long list of adds), one atomic command when it fits, else removal chunks
  that do not advance the version followed by add chunks that do.
* On every acknowledgement the device's acked version and its delivery rows are updated;
  in "edge" communities an enrollment's encrypted embedding is deleted from the server
  as soon as every face terminal of the community acknowledged it (a delivery row stays:
  the record that it existed and where it went).
* A new or reset terminal (reports a version below what it acked, or 0) gets the changes
  again, but in "edge" mode a face the server no longer holds cannot be sent: its
  delivery row is marked `missing` and the staff view lists it; the resident re-enrolls
  (never a server copy). See docs/faces.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from tortoise.exceptions import IntegrityError

from anxin.clock import utcnow
from anxin.runtime import Key, Runtime
from domain.faces.records import record
from domain.faces.store import decrypt_embeddings, delete_embedding
from domain.ports import DEVICES, DevicePort
from models import (
    Device,
    DeviceKind,
    DeviceStatus,
    EnrollmentState,
    FaceDelivery,
    FaceDeliveryState,
    FaceEnrollment,
    FaceLibraryChange,
    FaceStoragePolicy,
    LibraryOp,
)

log = logging.getLogger(__name__)

LIBRARY_KINDS = (DeviceKind.FACE_GATE, DeviceKind.UNIT_DOOR, DeviceKind.INTERCOM_PANEL)


def is_face_terminal(device: Device) -> bool:
    return (
        device.kind in LIBRARY_KINDS
        and device.status == DeviceStatus.ACTIVE
        and "face" in (device.methods or [])
    )


async def face_terminals(community_id: int) -> list[Device]:
    devices = await Device.filter(
        community_id=community_id, status=DeviceStatus.ACTIVE, kind__in=list(LIBRARY_KINDS)
    ).order_by("id")
    return [d for d in devices if is_face_terminal(d)]


async def current_version(community_id: int) -> int:
    last = await FaceLibraryChange.filter(community_id=community_id).order_by("-version").first()
    return last.version if last else 0


async def append_change(
    enrollment: FaceEnrollment, op: LibraryOp, reason: str
) -> FaceLibraryChange:
    """The next version of the community's library; retried if two writers collide."""
    for _ in range(20):
        version = await current_version(enrollment.community_id) + 1
        try:
            change = await FaceLibraryChange.create(
                community_id=enrollment.community_id,
                version=version,
                op=op,
                person_id=enrollment.person_id,
                enrollment_id=enrollment.id,
                reason=reason,
            )
            break
        except IntegrityError:
            await asyncio.sleep(0.005)
    else:  # pragma: no cover - 20 collisions in a row
        raise RuntimeError("could not allocate a library version")
    for device in await face_terminals(enrollment.community_id):
        await FaceDelivery.update_or_create(
            enrollment_id=enrollment.id,
            device_id=device.id,
            op=op,
            defaults={
                "community_id": enrollment.community_id,
                "version": change.version,
                "state": FaceDeliveryState.PENDING,
                "acked_at": None,
            },
        )
    return change


def _net(
    changes: list[FaceLibraryChange],
) -> tuple[list[FaceLibraryChange], list[FaceLibraryChange]]:
    """Last change per person: (removals, adds), each in version order."""
    last: dict[str, FaceLibraryChange] = {}
    for c in changes:
        last[c.person_id] = c
    ordered = sorted(last.values(), key=lambda c: c.version)
    return [c for c in ordered if c.op == LibraryOp.REMOVE], [
        c for c in ordered if c.op == LibraryOp.ADD
    ]


def plan_commands(
    base: int,
    target: int,
    full: bool,
    removes: list[FaceLibraryChange],
    adds: list[dict[str, Any]],
    limit: int,
) -> list[dict[str, Any]]:
    """The library_sync commands taking a terminal from `base` to `target`, at most `limit`
    changes each: one atomic command when it fits, else removals that do not advance the
    version followed by adds that do."""
    rm = [{"version": c.version, "op": "remove", "person_id": c.person_id} for c in removes]
    if len(rm) + len(adds) <= limit:
        return [
            {
                "base_version": base,
                "version": target,
                "full": full,
                "current": True,
                "changes": rm + adds,
            }
        ]
    cmds: list[dict[str, Any]] = []
    # Removals first, without advancing the version (so later adds still apply).
    for i in range(0, len(rm), limit):
        cmds.append(
            {
                "base_version": base,
                "version": base,
                "full": False,
                "current": False,
                "changes": rm[i : i + limit],
            }
        )
    at = base
    chunks = [adds[i : i + limit] for i in range(0, len(adds), limit)]
    for n, chunk in enumerate(chunks):
        last = n == len(chunks) - 1
        version = target if last else chunk[-1]["version"]
        cmds.append(
            {
                "base_version": at,
                "version": version,
                "full": full and n == 0,
                "current": last,
                "changes": chunk,
            }
        )
        at = version
    if not chunks:
        cmds[-1].update(version=target, current=True)
    return cmds


class LibrarySync:
    """Pushes and catch-up syncs, one device at a time (`runtime.get(FACE_LIBRARY)`).
    Commands go out through the device port; this module knows no transport."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._locks: dict[int, asyncio.Lock] = {}
        self._synced: set[int] = set()  # devices brought up to date since they connected
        self._tasks: set[asyncio.Task[Any]] = set()
        self._community_of: dict[asyncio.Task[Any], int] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    @property
    def devices(self) -> DevicePort:
        return self.runtime.get(DEVICES)

    def _spawn(self, coro: Any, community_id: int) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        self._community_of[task] = community_id
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._community_of.pop(task, None)

    async def idle(self, community_id: int | None = None, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        """Wait for background syncs (tests, shutdown), of one community or of all: a
        terminal of another community waiting out an unacknowledged command (until its
        expiry) is no reason to wait here."""

        def pending() -> list[asyncio.Task[Any]]:
            return [
                t
                for t in self._tasks
                if community_id is None or self._community_of.get(t) == community_id
            ]

        async with asyncio.timeout(timeout):
            while tasks := pending():
                await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------ triggers

    def push_soon(self, community_id: int) -> None:
        """After a change: sync every online face terminal, in the background."""
        self._spawn(self.push(community_id), community_id)

    async def push(self, community_id: int) -> None:
        devices = [d for d in await face_terminals(community_id) if d.online]
        await asyncio.gather(*(self.sync_device(d) for d in devices), return_exceptions=True)

    async def on_device_state(self, device: Device, online: bool, reported: int | None) -> None:
        """A terminal went offline or (re)connected reporting its library version: catch
        it up before it matches."""
        if not online:
            self._synced.discard(device.id)
            return
        if device.kind not in LIBRARY_KINDS:
            return
        if device.id in self._synced and reported == await current_version(device.community_id):
            return  # a heartbeat of an up-to-date terminal
        self._spawn(self.sync_device(device, reported), device.community_id)

    # ------------------------------------------------------------ one device

    async def sync_device(self, device: Device, reported: int | None = None) -> bool:
        lock = self._locks.setdefault(device.id, asyncio.Lock())
        async with lock:
            try:
                return await self._sync(device, reported, retry=True)
            except Exception:
                log.exception("library sync to %s failed", device.device_uid)
                return False

    async def _sync(self, device: Device, reported: int | None, retry: bool) -> bool:
        await device.refresh_from_db()
        if device.status != DeviceStatus.ACTIVE:
            return False
        cid = device.community_id
        target = await current_version(cid)
        base = device.library_version_acked if reported is None else reported
        full = base > target  # the device is ahead of a restored server: rebuild it
        since = 0 if full else base
        changes = await FaceLibraryChange.filter(
            community_id=cid, version__gt=since, version__lte=target
        ).order_by("version")
        removes, adds = _net(changes) if is_face_terminal(device) else ([], [])
        if full:
            removes = []
        add_items, missing = await self._add_items(adds)
        commands = plan_commands(
            base if not full else 0,
            target,
            full,
            removes,
            add_items,
            self.devices.max_library_changes,
        )
        last_ack: dict[str, Any] = {}
        for args in commands:
            outcome = await self.devices.send(device, "library_sync", args, reason="face_library")
            if outcome.status == "refused" and outcome.reason == "version_mismatch" and retry:
                at = int(outcome.detail.get("library_version", 0))
                return await self._sync(device, at, retry=False)
            if not outcome.ok:
                log.info(
                    "library sync to %s: %s %s", device.device_uid, outcome.status, outcome.reason
                )
                return False
            last_ack = outcome.detail
        await self._acked(device, target, removes, adds, missing, last_ack)
        return True

    async def _add_items(
        self, adds: list[FaceLibraryChange]
    ) -> tuple[list[dict[str, Any]], list[FaceLibraryChange]]:
        keyring = self.runtime.keyring
        backend = self.runtime.settings.face_backend
        rows = {
            e.id: e for e in await FaceEnrollment.filter(id__in=[c.enrollment_id for c in adds])
        }
        items, missing = [], []
        for c in adds:
            e = rows.get(c.enrollment_id)
            vecs = (
                decrypt_embeddings(keyring, e) if e and e.state == EnrollmentState.APPROVED else {}
            )
            if not vecs:
                missing.append(c)  # edge: the server kept no copy; re-enrollment fills it
                continue
            vec = vecs.get(backend, next(iter(vecs.values())))
            items.append(
                {
                    "version": c.version,
                    "op": "add",
                    "person_id": c.person_id,
                    "embedding": self.devices.encode_embedding(vec),
                }
            )
        return items, missing

    async def _acked(
        self,
        device: Device,
        target: int,
        removes: list[FaceLibraryChange],
        adds: list[FaceLibraryChange],
        missing: list[FaceLibraryChange],
        detail: dict[str, Any],
    ) -> None:
        now = utcnow()
        await Device.filter(id=device.id).update(library_version_acked=target)
        self._synced.add(device.id)
        missing_ids = {c.enrollment_id for c in missing}
        for c in [*removes, *adds]:
            state = (
                FaceDeliveryState.MISSING
                if c.enrollment_id in missing_ids
                else FaceDeliveryState.ACKED
            )
            await FaceDelivery.update_or_create(
                enrollment_id=c.enrollment_id,
                device_id=device.id,
                op=c.op,
                defaults={
                    "community_id": device.community_id,
                    "version": c.version,
                    "state": state,
                    "acked_at": now if state == "acked" else None,
                },
            )
        # Deliveries of changes this device skipped (net effect) are done too.
        await FaceDelivery.filter(
            device_id=device.id, state=FaceDeliveryState.PENDING, version__lte=target
        ).update(state=FaceDeliveryState.ACKED, acked_at=now)
        if removes or adds:
            await record(
                "library.acked",
                actor_type="device",
                actor_id=device.id,
                community_id=device.community_id,
                device_id=device.id,
                reason="library_sync",
                details={
                    "version": target,
                    "added": [c.enrollment_id for c in adds if c.enrollment_id not in missing_ids],
                    "removed": [c.enrollment_id for c in removes],
                    "missing": sorted(missing_ids),
                    "size": detail.get("size"),
                },
            )
        await drop_delivered_edge_copies(device.community_id)

    # ------------------------------------------------------------ staff view

    async def status(self, community_id: int) -> dict[str, Any]:
        target = await current_version(community_id)
        devices = []
        for d in await face_terminals(community_id):
            pending = await FaceDelivery.filter(
                device_id=d.id, state=FaceDeliveryState.PENDING
            ).count()
            missing = await FaceDelivery.filter(
                device_id=d.id, state=FaceDeliveryState.MISSING
            ).values_list("enrollment_id", flat=True)
            devices.append(
                {
                    "device_id": d.id,
                    "device_uid": d.device_uid,
                    "name": d.name,
                    "online": d.online,
                    "intended_version": target,
                    "acked_version": d.library_version_acked,
                    "up_to_date": d.library_version_acked >= target,
                    "pending_changes": pending,
                    "missing_enrollments": sorted(missing),
                }
            )
        return {"community_id": community_id, "version": target, "devices": devices}


async def drop_delivered_edge_copies(community_id: int) -> list[int]:
    """Edge mode: delete the server's copy of every face all terminals acknowledged."""
    terminals = {d.id for d in await face_terminals(community_id)}
    if not terminals:
        return []  # nowhere delivered yet: keep it until a terminal exists
    dropped = []
    held = await FaceEnrollment.filter(
        community_id=community_id,
        state=EnrollmentState.APPROVED,
        storage_policy=FaceStoragePolicy.EDGE.value,
        embedding_enc__not_isnull=True,
    )
    for e in held:
        acked = set(
            await FaceDelivery.filter(
                enrollment_id=e.id, op=LibraryOp.ADD, state=FaceDeliveryState.ACKED
            ).values_list("device_id", flat=True)
        )
        if terminals <= acked:
            await delete_embedding(
                e, "delivered_to_all_terminals", {"terminals": sorted(terminals)}
            )
            dropped.append(e.id)
    return dropped


FACE_LIBRARY: Key[LibrarySync] = Key("face_library")
