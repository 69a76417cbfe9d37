"""Letting visitors in: passes, their revocations on devices, household codes, vehicles,
intercom calls."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields

from anxin.clock import utcnow
from models.base import TimestampedModel


class PassKind(StrEnum):
    VISITOR = "visitor"
    DELIVERY = "delivery"


class PassState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"  # cancelled by the resident or staff
    EXHAUSTED = "exhausted"  # used more often than allowed (offline gates): stopped everywhere
    EXPIRED = "expired"


class VisitorPass(TimestampedModel):
    """A signed QR pass; the token itself is not stored, it is re-minted from this row."""

    id = fields.IntField(primary_key=True)
    community: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Community", related_name="passes", on_delete=fields.RESTRICT
    )
    community_id: int
    room: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Room", related_name="passes", on_delete=fields.RESTRICT
    )
    room_id: int
    created_by: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Resident", related_name="passes", on_delete=fields.RESTRICT
    )
    created_by_id: int
    kind = fields.CharEnumField(PassKind, max_length=16, default=PassKind.VISITOR)
    visitor_name = fields.CharField(max_length=32, default="")
    visitor_phone = fields.CharField(max_length=20, default="")
    plate = fields.CharField(max_length=16, default="", db_index=True)
    valid_from = fields.DatetimeField()
    valid_until = fields.DatetimeField(db_index=True)
    max_uses = fields.IntField()
    uses = fields.IntField(default=0)  # every use the server knows of (online + reported)
    # device uid -> the device's own count
    device_uses: dict[str, Any] = fields.JSONField(default=dict)
    doors: list[Any] = fields.JSONField(default=list)  # device uids, as in the token
    state = fields.CharEnumField(PassState, max_length=16, default=PassState.ACTIVE)
    revoked_at = fields.DatetimeField(null=True)
    revoked_by = fields.CharField(max_length=32, default="")  # "resident:12", "staff:3", "system"
    # Which of the community's pass keys signed it ("" = the first key, before rotation).
    key_id = fields.CharField(max_length=16, default="")
    # Unguessable id of the share link /p/{share_token}; the page needs no login.
    share_token = fields.CharField(max_length=64, unique=True)

    class Meta:
        table = "visitor_pass"
        indexes = (("community_id", "state"),)


class PassRevocation(TimestampedModel):
    """One revoked pass to tell one device; acked once the device confirmed it."""

    id = fields.IntField(primary_key=True)
    visitor_pass: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.VisitorPass", related_name="revocations", on_delete=fields.CASCADE
    )
    visitor_pass_id: int
    device_id = fields.IntField(db_index=True)
    until = fields.DatetimeField()  # the pass's expiry: the device may forget it then
    acked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "pass_revocation"
        unique_together = (("visitor_pass", "device_id"),)


class PassKeyRetired(TimestampedModel):
    """A community pass key replaced by a rotation: gates keep accepting it, and its
    passes' tokens are still minted with it, until the last of those passes expires."""

    id = fields.IntField(primary_key=True)
    community_id = fields.IntField(db_index=True)
    kid = fields.CharField(max_length=16)
    public_pem = fields.TextField()
    private_enc = fields.BinaryField(null=True)  # same encryption as the community's key
    accept_until = fields.DatetimeField()

    class Meta:
        table = "pass_key_retired"
        unique_together = (("community_id", "kid"),)


class HouseholdCode(TimestampedModel):
    """A household's door code for relatives: only a keyed hash is kept."""

    id = fields.IntField(primary_key=True)
    room: fields.OneToOneRelation = fields.OneToOneField(
        "anxin.Room", related_name="door_code", on_delete=fields.CASCADE
    )
    room_id: int
    code_hash = fields.CharField(max_length=64)
    salt = fields.CharField(max_length=32)
    key_id = fields.CharField(max_length=32)  # which server key computed the hash
    set_by_id = fields.IntField(null=True)

    class Meta:
        table = "household_code"


class Vehicle(TimestampedModel):
    id = fields.IntField(primary_key=True)
    community: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Community", related_name="vehicles", on_delete=fields.RESTRICT
    )
    community_id: int
    room: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Room", related_name="vehicles", on_delete=fields.CASCADE
    )
    room_id: int
    plate = fields.CharField(max_length=16)
    added_by_id = fields.IntField(null=True)

    class Meta:
        table = "vehicle"
        unique_together = (("community", "plate"),)


class CallState(StrEnum):
    RINGING = "ringing"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    MISSED = "missed"


class IntercomCallRecord(TimestampedModel):
    id = fields.IntField(primary_key=True)
    community_id = fields.IntField(db_index=True)
    device_id = fields.IntField()
    room_id = fields.IntField()
    state = fields.CharEnumField(CallState, max_length=16, default=CallState.RINGING)
    expires_at = fields.DatetimeField(default=utcnow, db_index=True)
    answered_by_id = fields.IntField(null=True)
    declined_by: list[Any] = fields.JSONField(default=list)
    event_key = fields.CharField(max_length=128, unique=True)
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "intercom_call"
