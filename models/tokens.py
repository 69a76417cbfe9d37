"""Refresh tokens: stored hashed, rotated on use, revoked by family on reuse."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from anxin.clock import utcnow


class RefreshToken(Model):
    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    family = fields.CharField(max_length=32, db_index=True)
    subject_type = fields.CharField(max_length=16)  # "resident" | "staff"
    subject_id = fields.IntField()
    issued_at = fields.DatetimeField(default=utcnow)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    revoked_reason = fields.CharField(max_length=32, default="")

    class Meta:
        table = "refresh_token"
        indexes = (("subject_type", "subject_id"),)
