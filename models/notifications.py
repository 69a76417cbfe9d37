"""Notifications: the outbox, the in-app copies, channel deliveries and their attempts,
preferences, and the WeChat one-time subscription quota we track on our side."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from anxin.clock import utcnow
from models.base import AppendOnlyModel, TimestampedModel


class OutboxState(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"  # claimed by a worker until lease_expires_at
    DONE = "done"
    FAILED = "failed"  # gave up after max attempts (dead letter, kept for inspection)


class DeliveryState(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SENT = "sent"
    UNDELIVERABLE = "undeliverable"  # user refused / no quota: in-app copy only
    FAILED = "failed"  # permanent error or retries exhausted
    EXPIRED = "expired"  # too late to be useful (a visitor who arrived hours ago)


class Channel(StrEnum):
    INAPP = "inapp"
    REALTIME = "realtime"
    WECHAT = "wechat"


class OutboxEvent(Model):
    """A domain event waiting to become notifications, written in the event's transaction."""

    id = fields.BigIntField(primary_key=True)
    event_type = fields.CharField(max_length=48)
    community_id = fields.IntField(null=True)
    # {"residents": [...], "rooms": [...], "staff": [...], "staff_roles": [...]}
    recipients: dict[str, Any] = fields.JSONField(default=dict)
    payload: dict[str, Any] = fields.JSONField(default=dict)
    dedupe_key = fields.CharField(max_length=160, null=True, unique=True)
    occurred_at = fields.DatetimeField(default=utcnow)
    state = fields.CharEnumField(OutboxState, max_length=16, default=OutboxState.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(default=utcnow)
    lease_token = fields.CharField(max_length=32, null=True)
    lease_expires_at = fields.DatetimeField(null=True)
    last_error = fields.CharField(max_length=300, default="")
    created_at = fields.DatetimeField(default=utcnow)
    processed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "notification_outbox"
        indexes = (("state", "next_attempt_at"),)


class Notification(Model):
    """The in-app copy one recipient sees in the notification centre."""

    id = fields.BigIntField(primary_key=True)
    outbox_id = fields.BigIntField()
    recipient_type = fields.CharField(max_length=16)  # resident | staff
    recipient_id = fields.IntField()
    community_id = fields.IntField(null=True)
    event_type = fields.CharField(max_length=48)
    mandatory = fields.BooleanField(default=False)
    muted = fields.BooleanField(default=False)  # kept for the record, never pushed
    title_zh = fields.CharField(max_length=100)
    title_en = fields.CharField(max_length=100)
    body_zh = fields.CharField(max_length=500)
    body_en = fields.CharField(max_length=500)
    data: dict[str, Any] = fields.JSONField(default=dict)
    occurred_at = fields.DatetimeField(default=utcnow)
    read_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(default=utcnow)

    class Meta:
        table = "notification"
        unique_together = (("outbox_id", "recipient_type", "recipient_id"),)
        indexes = (("recipient_type", "recipient_id", "read_at"),)


class NotificationDelivery(Model):
    """One external channel (WeChat) for one notification, retried on its own schedule."""

    id = fields.BigIntField(primary_key=True)
    notification_id = fields.BigIntField()
    channel = fields.CharEnumField(Channel, max_length=16)
    state = fields.CharEnumField(DeliveryState, max_length=16, default=DeliveryState.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(default=utcnow)
    lease_token = fields.CharField(max_length=32, null=True)
    lease_expires_at = fields.DatetimeField(null=True)
    last_error = fields.CharField(max_length=300, default="")
    created_at = fields.DatetimeField(default=utcnow)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "notification_delivery"
        unique_together = (("notification_id", "channel"),)
        indexes = (("state", "next_attempt_at"),)


class NotificationAttempt(AppendOnlyModel):
    """Every try on every channel: what happened and WeChat's error code."""

    id = fields.BigIntField(primary_key=True)
    notification_id = fields.BigIntField(db_index=True)
    delivery_id = fields.BigIntField(null=True)
    channel = fields.CharEnumField(Channel, max_length=16)
    outcome = fields.CharField(max_length=32)
    error_code = fields.IntField(null=True)
    error = fields.CharField(max_length=300, default="")
    at = fields.DatetimeField(default=utcnow)

    class Meta:
        table = "notification_attempt"


class NotificationPreference(TimestampedModel):
    id = fields.IntField(primary_key=True)
    subject_type = fields.CharField(max_length=16)  # resident | staff
    subject_id = fields.IntField()
    event_type = fields.CharField(max_length=48)
    muted = fields.BooleanField(default=True)

    class Meta:
        table = "notification_preference"
        unique_together = (("subject_type", "subject_id", "event_type"),)


class WeChatSubscription(TimestampedModel):
    """Our count of a resident's one-time subscribe-message quota per template."""

    id = fields.IntField(primary_key=True)
    resident_id = fields.IntField()
    template_id = fields.CharField(max_length=64)
    quota = fields.IntField(default=0)
    refused = fields.BooleanField(default=False)

    class Meta:
        table = "wechat_subscription"
        unique_together = (("resident_id", "template_id"),)
