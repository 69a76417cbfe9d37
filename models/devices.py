"""Gate controllers and other devices of a community."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from anxin.clock import utcnow
from models.base import TimestampedModel


class DeviceKind(StrEnum):
    FACE_GATE = "face_gate"
    UNIT_DOOR = "unit_door"
    BARRIER_GATE = "barrier_gate"
    INTERCOM_PANEL = "intercom_panel"
    FENCE = "fence"


class DeviceStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    REVOKED = "revoked"


class Device(TimestampedModel):
    id = fields.IntField(primary_key=True)
    # The id the device uses on the wire (MQTT username, topic segment).
    device_uid = fields.CharField(max_length=64, unique=True)
    community: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Community", related_name="devices", on_delete=fields.RESTRICT
    )
    community_id: int
    kind = fields.CharEnumField(DeviceKind, max_length=16)
    name = fields.CharField(max_length=64)
    # A unit door serves one unit; a main gate serves the whole community (both null).
    building: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "anxin.Building", related_name="devices", null=True, on_delete=fields.RESTRICT
    )
    building_id: int | None
    unit: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "anxin.Unit", related_name="devices", null=True, on_delete=fields.RESTRICT
    )
    unit_id: int | None
    place = fields.CharField(max_length=100, default="")
    # Ways in this door accepts, as AccessMethod values (models/logs.py): face, card, code,
    # remote (opened from the app), qr (visitor/delivery pass), plate, intercom. Which ones a
    # kind of device may offer: domain/devices/service.py KIND_METHODS.
    methods: list[Any] = fields.JSONField(default=list)
    status = fields.CharEnumField(DeviceStatus, max_length=16, default=DeviceStatus.ACTIVE)
    # Per-device secret (signs commands, authenticates events); encrypted at rest.
    secret_enc = fields.BinaryField(null=True)
    credential_version = fields.IntField(default=1)
    online = fields.BooleanField(default=False)
    last_seen_at = fields.DatetimeField(null=True)
    offline_alarm_at = fields.DatetimeField(null=True)
    library_version_acked = fields.BigIntField(default=0)
    firmware = fields.CharField(max_length=64, default="")
    # How the device reaches us: "mqtt" (reference protocol) or "http_push" (polls over HTTP).
    transport = fields.CharField(max_length=16, default="mqtt")
    # The terminal's X25519 public key (base64url), from its signed state: a peer seals a
    # library copy to it when this terminal replaces a dead one (domain/faces/replacement.py).
    library_key = fields.CharField(max_length=64, default="")

    class Meta:
        table = "device"


class DeviceEventState(StrEnum):
    HANDLING = "handling"
    DONE = "done"


class DeviceEventClaim(Model):
    """The durable claim of one device event: what makes acting on it unique.

    Inserted (unique `event_key` = device uid + event id) before any door moves; a second
    insert means another delivery of the same event, which is logged and never acted on.
    A claim is held for `lease_until` only: finished (`done`) once its access row or other
    effect is written, or taken over after the lease by a redelivery or the bridge's resume
    loop, so an event whose handler died is still handled, once. `payload` keeps the signed
    event until then; `command_id` / `pending` say that a door command already went out, so
    a takeover writes the row instead of opening the door a second time.
    """

    id = fields.BigIntField(primary_key=True)
    event_key = fields.CharField(max_length=128, unique=True)
    device_id = fields.IntField(db_index=True)
    event_type = fields.CharField(max_length=24)
    state = fields.CharEnumField(DeviceEventState, max_length=16, default=DeviceEventState.HANDLING)
    lease_until = fields.DatetimeField()
    attempts = fields.IntField(default=1)
    command_id = fields.CharField(max_length=40, default="")
    pending: dict | None = fields.JSONField(null=True)
    payload: dict | None = fields.JSONField(null=True)
    outcome = fields.CharField(max_length=64, default="")
    received_at = fields.DatetimeField(default=utcnow, db_index=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "device_event"
        indexes = (("state", "lease_until"),)

    @staticmethod
    def done_fields(now: datetime) -> dict[str, Any]:
        """What finishing a claim sets besides its `outcome` (event_claims.finish, and the
        access row's statement, which finishes the claim with the row)."""
        return {
            "state": DeviceEventState.DONE,
            "payload": None,
            "pending": None,
            "finished_at": now,
        }


class ReplacementState(StrEnum):
    EXPORTING = "exporting"  # the peer is asked for its library (or will be, once online)
    RELAYING = "relaying"  # every sealed chunk is here: relaying them to the new terminal
    DONE = "done"  # the new terminal took the library and caught up
    FAILED = "failed"  # expired or refused; the chunks are gone, re-enrollment remains


class TerminalReplacement(TimestampedModel):
    """Staff replaced a dead face terminal: the old one is revoked at approval, a peer of the
    community seals its library to the new one's public key, the server relays chunks it
    cannot read (`TransferChunk`, deleted when the replacement ends)."""

    id = fields.IntField(primary_key=True)
    transfer_id = fields.CharField(max_length=64, unique=True)
    community_id = fields.IntField(db_index=True)
    old_device_id = fields.IntField()
    new_device_id = fields.IntField(db_index=True)
    peer_device_id = fields.IntField(null=True)
    # The new terminal's public key when staff approved: a key reported later (a reset
    # terminal) does not receive this transfer.
    new_library_key = fields.CharField(max_length=64)
    state = fields.CharEnumField(
        ReplacementState, max_length=16, default=ReplacementState.EXPORTING
    )
    library_version = fields.BigIntField(default=0)
    chunks = fields.IntField(default=0)
    size = fields.IntField(default=0)
    reason = fields.CharField(max_length=200, default="")
    error = fields.CharField(max_length=64, default="")
    approved_by_id = fields.IntField(null=True)
    expires_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "terminal_replacement"
        indexes = (("state", "expires_at"),)


class TransferChunk(Model):
    """One sealed chunk of a peer's library on its way to the replacement: ciphertext the
    server cannot open, kept only until relayed (or the replacement ends)."""

    id = fields.BigIntField(primary_key=True)
    replacement_id = fields.IntField(db_index=True)
    chunk = fields.IntField()
    chunks = fields.IntField()
    count = fields.IntField()
    library_version = fields.BigIntField()
    epk = fields.CharField(max_length=64)
    sealed = fields.TextField()
    received_at = fields.DatetimeField(default=utcnow)

    class Meta:
        table = "transfer_chunk"
        # Two exports of the same library version give interchangeable chunks.
        unique_together = (("replacement_id", "library_version", "chunk"),)
