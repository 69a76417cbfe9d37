"""Append-only logs: every door decision, every staff and security action."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields

from anxin.clock import utcnow
from models.base import AppendOnlyModel


class AccessMethod(StrEnum):
    FACE = "face"
    CARD = "card"
    QR = "qr"  # visitor or delivery pass
    CODE = "code"  # household code keyed at a panel
    PLATE = "plate"
    REMOTE = "remote"  # opened from the mini-program
    INTERCOM = "intercom"
    STAFF = "staff"


class AccessResult(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    FAILED = "failed"  # decided to open, but the device never acknowledged


class AccessEvent(AppendOnlyModel):
    id = fields.BigIntField(primary_key=True)
    community_id = fields.IntField(db_index=True)
    device_id = fields.IntField(null=True, db_index=True)
    method = fields.CharEnumField(AccessMethod, max_length=16)
    result = fields.CharEnumField(AccessResult, max_length=16)
    reason = fields.CharField(max_length=64)
    resident_id = fields.IntField(null=True, db_index=True)
    room_id = fields.IntField(null=True)
    pass_id = fields.IntField(null=True, db_index=True)
    requested_by_id = fields.IntField(null=True)  # resident who opened remotely / answered
    plate = fields.CharField(max_length=16, default="")
    score = fields.FloatField(null=True)
    snapshot_ref = fields.CharField(max_length=200, default="")
    command_id = fields.CharField(max_length=40, default="")
    # Device id + event id: a duplicate delivery of the same event never writes a second row.
    event_key = fields.CharField(max_length=128, null=True, unique=True)
    occurred_at = fields.DatetimeField(default=utcnow)
    created_at = fields.DatetimeField(default=utcnow, db_index=True)

    class Meta:
        table = "access_event"
        indexes = (("community_id", "created_at"),)
        mutable_fields = ("snapshot_ref",)  # retention removes snapshots, nothing else


class AuditLog(AppendOnlyModel):
    id = fields.BigIntField(primary_key=True)
    actor_type = fields.CharField(max_length=16)  # staff | resident | system | device
    actor_id = fields.IntField(null=True)
    community_id = fields.IntField(null=True, db_index=True)
    action = fields.CharField(max_length=64, db_index=True)
    target_type = fields.CharField(max_length=32, default="")
    target_id = fields.CharField(max_length=64, default="")
    details: dict[str, Any] = fields.JSONField(default=dict)
    request_id = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField(default=utcnow, db_index=True)

    class Meta:
        table = "audit_log"
