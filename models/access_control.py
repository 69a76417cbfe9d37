"""What the access policy reads besides memberships: cards, blocklists; what it raises:
alarms; and the log of every command sent to a device."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from anxin.clock import utcnow
from models.base import TimestampedModel


class AccessCard(TimestampedModel):
    """An IC card issued to a resident (the usual non-face way in)."""

    id = fields.IntField(primary_key=True)
    community: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Community", related_name="cards", on_delete=fields.RESTRICT
    )
    community_id: int
    resident: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Resident", related_name="cards", on_delete=fields.CASCADE
    )
    resident_id: int
    card_no = fields.CharField(max_length=32)
    active = fields.BooleanField(default=True)

    class Meta:
        table = "access_card"
        unique_together = (("community", "card_no"),)


class BlockKind(StrEnum):
    PERSON = "person"
    PLATE = "plate"


class BlocklistEntry(TimestampedModel):
    id = fields.IntField(primary_key=True)
    community: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Community", related_name="blocklist", on_delete=fields.RESTRICT
    )
    community_id: int
    kind = fields.CharEnumField(BlockKind, max_length=8)
    resident_id = fields.IntField(null=True, db_index=True)
    plate = fields.CharField(max_length=16, default="", db_index=True)
    reason = fields.CharField(max_length=200)
    created_by_id = fields.IntField(null=True)
    active = fields.BooleanField(default=True)

    class Meta:
        table = "blocklist_entry"


class AlarmKind(StrEnum):
    HELD_OPEN = "held_open"
    FORCED_OPEN = "forced_open"
    FENCE = "fence"
    BLOCKLIST = "blocklist"
    DEVICE_OFFLINE = "device_offline"
    CODE_GUESSING = "code_guessing"
    PASS_OVERUSED = "pass_overused"  # a pass used more often than allowed (offline gates)


class AlarmState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


class Alarm(TimestampedModel):
    id = fields.IntField(primary_key=True)
    community_id = fields.IntField(db_index=True)
    device_id = fields.IntField(null=True)
    kind = fields.CharEnumField(AlarmKind, max_length=16)
    state = fields.CharEnumField(AlarmState, max_length=16, default=AlarmState.OPEN)
    details: dict[str, Any] = fields.JSONField(default=dict)
    # Device id + event id: a redelivered alarm event raises nothing new.
    event_key = fields.CharField(max_length=128, null=True, unique=True)
    handled_by_id = fields.IntField(null=True)
    handled_at = fields.DatetimeField(null=True)
    note = fields.CharField(max_length=200, default="")

    class Meta:
        table = "alarm"
        indexes = (("community_id", "state"),)


class CommandStatus(StrEnum):
    SENT = "sent"
    DONE = "done"
    REFUSED = "refused"
    FAILED = "failed"
    EXPIRED = "expired"  # never acknowledged before its expiry: dropped, never run late
    TIMEOUT = "timeout"


class DeviceCommand(Model):
    id = fields.BigIntField(primary_key=True)
    command_id = fields.CharField(max_length=40, unique=True)
    device_id = fields.IntField(db_index=True)
    op = fields.CharField(max_length=16)
    reason = fields.CharField(max_length=64, default="")
    issued_at = fields.DatetimeField(default=utcnow)
    expires_at = fields.DatetimeField()
    status = fields.CharEnumField(CommandStatus, max_length=16, default=CommandStatus.SENT)
    ack_reason = fields.CharField(max_length=64, default="")
    latency_ms = fields.FloatField(null=True)

    class Meta:
        table = "device_command"
