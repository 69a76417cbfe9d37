"""Results of retried requests, so that a phone's retry never acts twice."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from anxin.clock import utcnow


class IdempotencyRecord(Model):
    """One `Idempotency-Key` of one caller for one operation: pending while the first
    request runs, then its status and body, kept until `expires_at`."""

    id = fields.BigIntField(primary_key=True)
    scope = fields.CharField(max_length=40)  # "resident:12", "staff:3"
    operation = fields.CharField(max_length=64)  # the operation id, e.g. "openDoor"
    key = fields.CharField(max_length=64)
    fingerprint = fields.CharField(max_length=64)  # sha-256 of what the request asked
    state = fields.CharField(max_length=8, default="pending")  # pending | done
    status_code = fields.IntField(null=True)
    body: dict | None = fields.JSONField(null=True)
    created_at = fields.DatetimeField(default=utcnow)
    locked_until = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "idempotency_record"
        unique_together = (("scope", "operation", "key"),)
