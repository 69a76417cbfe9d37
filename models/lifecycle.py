"""The end of a person's life in a community: one row per departure (move-out, leaving a
household, a block, account deletion), written in the transaction that ends everything
the person held there, and finished once the steps outside the database are done."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields

from models.base import TimestampedModel


class DepartureKind(StrEnum):
    MOVED_OUT = "moved_out"  # staff ended the membership
    LEFT = "left"  # the resident left the household
    BLOCKED = "blocked"  # staff blocked the resident in the community
    ACCOUNT_DELETED = "account_deleted"  # the resident deleted their account


class Departure(TimestampedModel):
    id = fields.IntField(primary_key=True)
    kind = fields.CharEnumField(DepartureKind, max_length=16)
    resident_id = fields.IntField(db_index=True)
    community_id = fields.IntField(db_index=True)
    room_ids: list[Any] = fields.JSONField(default=list)  # the households left (none for a block)
    reason = fields.CharField(max_length=200, default="")
    actor_type = fields.CharField(max_length=16)  # staff | resident | system
    actor_id = fields.IntField(null=True)
    # Whether the person still lives in the community (another flat): then cards and
    # faces stay; otherwise they end too.
    left_community = fields.BooleanField(default=True)
    # What was ended: pass ids, plates, cards ...
    summary: dict[str, Any] = fields.JSONField(default=dict)
    # Set once gates, galleries and caches were told (domain/households/leaving.finish);
    # the job `finish_departures` completes any left unfinished by a crash.
    finished_at = fields.DatetimeField(null=True, db_index=True)
    attempts = fields.IntField(default=0)
    last_error = fields.CharField(max_length=200, default="")

    class Meta:
        table = "departure"
