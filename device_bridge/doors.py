"""Sending signed, expiring commands to devices and waiting for their acknowledgement.

Every command is logged (`DeviceCommand`) with its outcome. A command the device did not
acknowledge before its expiry is marked expired: the device refuses it after that time
anyway, so a door never opens minutes after the person left.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from anxin.batching import Batcher
from anxin.crypto import KeyRing
from device_bridge.sealing import (
    CODE,
    LIBRARY,
    SealError,
    code_aad,
    derive_key,
    library_aad,
    open_sealed,
    seal,
)
from device_bridge.signing import device_key, make_command
from device_bridge.transport import CommandOutcome, ServerTransport
from domain.devices.service import secret_ad
from models import CommandStatus, Device, DeviceCommand, DeviceStatus
from models.bulk import connection, in_transaction, insert_many, update_each

log = logging.getLogger(__name__)

KEY_CACHE_S = 60.0
KEY_CACHE_MAX = 50_000  # entries (known devices and recent unknown ids)
DEVICE_UID_MAX = 64  # models.Device.device_uid


@dataclass(frozen=True)
class DeviceKeys:
    """What the server derives from one device's secret."""

    sign: bytes  # HMAC of every message (signing.py)
    library: bytes  # seals face templates to the terminal (sealing.py)
    code: bytes  # opens the household codes it sends (sealing.py)

    @classmethod
    def from_secret(cls, secret: str | bytes) -> DeviceKeys:
        return cls(device_key(secret), derive_key(secret, LIBRARY), derive_key(secret, CODE))


def seal_library_args(args: dict[str, Any], key: bytes, device_uid: str) -> dict[str, Any]:
    """library_sync args with every template sealed to the terminal (none left in clear)."""
    changes = []
    for change in args.get("changes", []):
        change = dict(change)
        embedding = change.pop("embedding", None)
        if embedding:
            aad = library_aad(device_uid, str(change["person_id"]), int(change["version"]))
            change["sealed"] = seal(key, base64.b64decode(embedding), aad)
        changes.append(change)
    return {**args, "changes": changes}


class DoorService:
    def __init__(
        self, transports: dict[str, ServerTransport], keyring: KeyRing, ttl_s: float
    ) -> None:
        self.transports = transports
        self.keyring = keyring
        self.ttl_s = ttl_s
        self._keys: dict[str, tuple[DeviceKeys | None, float]] = {}

    def forget_key(self, device_uid: str) -> None:
        self._keys.pop(device_uid, None)

    async def key_for(self, device_uid: str) -> bytes | None:
        """Signing key of a device that is not revoked (None for unknown or revoked)."""
        keys = await self.keys_for(device_uid)
        return keys.sign if keys else None

    async def keys_for(self, device_uid: str) -> DeviceKeys | None:
        if not device_uid or len(device_uid) > DEVICE_UID_MAX:
            return None  # no such device can exist (an HTTP-push SN is anybody's input)
        cached = self._keys.get(device_uid)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        device = await Device.get_or_none(device_uid=device_uid)
        keys = None
        if device is not None and device.status != DeviceStatus.REVOKED and device.secret_enc:
            keys = DeviceKeys.from_secret(
                self.keyring.decrypt(device.secret_enc, secret_ad(device))
            )
        self._keys.pop(device_uid, None)
        self._keys[device_uid] = (keys, time.monotonic() + KEY_CACHE_S)
        while len(self._keys) > KEY_CACHE_MAX:  # unknown ids must not grow it for ever
            del self._keys[next(iter(self._keys))]
        return keys

    async def open_code(self, device_uid: str, event_id: str, room: str, sealed: str) -> str:
        """The household code a panel sent sealed; SealError when it does not open."""
        keys = await self.keys_for(device_uid)
        if keys is None:
            raise SealError("no key")
        return open_sealed(keys.code, sealed, code_aad(device_uid, event_id, room)).decode()

    async def send(
        self,
        device: Device,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        reason: str = "",
        timeout: float | None = None,  # noqa: ASYNC109
        command_id: str | None = None,
    ) -> CommandOutcome:
        prepared = await self.prepare(device, op, args, reason=reason, command_id=command_id)
        if isinstance(prepared, CommandOutcome):
            return prepared
        await write_command(prepared.row)  # logged before it goes out
        outcome = await self.deliver(device, prepared, timeout)
        await write_outcome(prepared.row)
        return outcome

    async def prepare(
        self,
        device: Device,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        reason: str = "",
        command_id: str | None = None,
    ) -> PreparedCommand | CommandOutcome:
        """The signed command and its row, not yet written nor sent (an outcome instead
        when the device may not be sent anything). `send` writes the row, sends, and
        writes the outcome; a caller that folds the row into its own transaction uses
        `prepare`, `write_command`, `deliver` and `write_outcome` itself."""
        keys = await self.keys_for(device.device_uid)
        if keys is None or device.status != DeviceStatus.ACTIVE:
            return CommandOutcome("", device.device_uid, "refused", "device_not_active")
        if op == "library_sync" and args:
            args = seal_library_args(args, keys.library, device.device_uid)
        key = keys.sign
        cmd = make_command(
            device.device_uid,
            op,  # type: ignore[arg-type]
            args,
            key,
            ttl_s=self.ttl_s,
            command_id=command_id,
        )
        row = DeviceCommand(
            command_id=cmd["id"],
            device_id=device.id,
            op=op,
            reason=reason[:64],
            issued_at=datetime.fromtimestamp(cmd["issued_at"] / 1000, UTC),
            expires_at=datetime.fromtimestamp(cmd["expires_at"] / 1000, UTC),
            status=CommandStatus.SENT,
            ack_reason="",
            latency_ms=None,
        )
        return PreparedCommand(cmd, row)

    async def deliver(
        self,
        device: Device,
        prepared: PreparedCommand,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> CommandOutcome:
        """Send a prepared command (its row already written) and wait for the ack; the
        outcome is set on the row, for the caller to write (`write_outcome`)."""
        cmd, row = prepared.cmd, prepared.row
        try:
            outcome = await self.transports[device.transport].send_command(cmd, timeout)
        except Exception as exc:
            log.warning("command %s to %s not sent: %s", cmd["id"], device.device_uid, exc)
            outcome = CommandOutcome(cmd["id"], device.device_uid, "failed", "not_sent")
        row.status = CommandStatus(outcome.status)
        row.ack_reason = (outcome.reason or "")[:64]
        row.latency_ms = outcome.elapsed_ms
        if outcome.status == "expired":
            log.warning(
                "command %s to %s expired unacknowledged: dropped", cmd["id"], device.device_uid
            )
        return outcome

    @staticmethod
    def open_args(
        reason: str, person_id: str | None = None, event_id: str | None = None
    ) -> dict[str, Any]:
        args: dict[str, Any] = {"reason": reason[:64]}
        if person_id:
            args["person_id"] = person_id
        if event_id:
            args["event_id"] = event_id
        return args

    async def open(
        self,
        device: Device,
        reason: str,
        *,
        person_id: str | None = None,
        event_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
        command_id: str | None = None,
    ) -> CommandOutcome:
        return await self.send(
            device,
            "open",
            self.open_args(reason, person_id, event_id),
            reason=reason,
            timeout=timeout,
            command_id=command_id,
        )


@dataclass
class PreparedCommand:
    cmd: dict[str, Any]  # signed, ready to publish
    row: DeviceCommand  # its log row (status "sent" until the outcome is set)


# ---------------------------------------------------------------- group commit
# The command rows of every event in flight are written together (models/bulk.py): one
# INSERT before the commands go out, one UPDATE once their acks are in.
COMMAND_COLUMNS = (
    "command_id",
    "device_id",
    "op",
    "reason",
    "issued_at",
    "expires_at",
    "status",
    "ack_reason",
    "latency_ms",
)


async def write_command(row: DeviceCommand) -> None:
    """The command's row (inside a caller's transaction: in it; else group-committed)."""
    if in_transaction(DeviceCommand):
        await row.save()
    else:
        row.id = await _NEW_COMMANDS.submit(row)
        row._saved_in_db = True


async def write_outcome(row: DeviceCommand) -> None:
    if in_transaction(DeviceCommand):
        await row.save(update_fields=["status", "ack_reason", "latency_ms"])
    else:
        await _OUTCOMES.submit(row)


# PostgreSQL: the outcome committed without waiting for the WAL flush, in one statement
# (set_config(..., true) is this statement's own transaction's SET LOCAL; was BEGIN, SET
# LOCAL, UPDATE, COMMIT).
_OUTCOME_ASYNC_PG = (
    "UPDATE device_command SET status = $1, ack_reason = $2, latency_ms = $3 "
    "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit "
    "WHERE device_command.id = $4"
)


async def write_outcome_unflushed(row: DeviceCommand) -> None:
    """PostgreSQL: the command's outcome, visible at once, durable with the next commit
    that waits for the flush (the WAL is one sequence)."""
    await connection(DeviceCommand).execute_query(
        _OUTCOME_ASYNC_PG, [row.status.value, row.ack_reason, row.latency_ms, row.id]
    )


async def _insert_commands(rows: list[DeviceCommand]) -> list[int]:
    written = await insert_many(
        DeviceCommand,
        [{name: getattr(r, name) for name in COMMAND_COLUMNS} for r in rows],
        returning=("id", "command_id"),
    )
    ids = {w["command_id"]: w["id"] for w in written}
    return [ids[r.command_id] for r in rows]


async def _update_outcomes(rows: list[DeviceCommand]) -> list[None]:
    await update_each(
        DeviceCommand,
        "id",
        {
            r.id: {"status": r.status, "ack_reason": r.ack_reason, "latency_ms": r.latency_ms}
            for r in rows
        },
    )
    return [None] * len(rows)


_NEW_COMMANDS: Batcher[DeviceCommand, int] = Batcher(_insert_commands)
_OUTCOMES: Batcher[DeviceCommand, None] = Batcher(_update_outcomes)
