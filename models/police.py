"""The police link (GA/T 1400 视图库): data-sharing agreements, the upload outbox and its
record, the link's registration state, police alerts, and the outsider-tracing log.

Rules live in domain/police/; the VIID client in police_link/.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields

from anxin.clock import utcnow
from models.base import AppendOnlyModel, TimestampedModel


class ShareCategory(StrEnum):
    """What an agreement may allow; each maps to one VIID collection (docs/police-link.md)."""

    APES = "apes"  # capture devices (face gates, plate cameras): /VIID/APEs
    DOORS = "doors"  # door devices and doors: /VIID/Community/DoorDevices + DoorInfos
    FACE_CAPTURES = "face_captures"  # door passages with the snapshot: /VIID/Faces
    VEHICLE_PASSAGES = "vehicle_passages"  # plate and image: /VIID/MotorVehicles
    VISITOR_REGISTRATIONS = "visitor_registrations"  # /VIID/Community/VisitorInfos
    RESIDENT_REGISTRY = "resident_registry"  # /VIID/Community/PersonInfos
    VEHICLE_REGISTRY = "vehicle_registry"  # /VIID/Community/CarInfos


class LegalBasis(StrEnum):
    PIPL_13_3 = "pipl_13_3"  # necessary to fulfil a statutory duty or obligation
    PIPL_13_5 = "pipl_13_5"  # public interest (news, supervision) -- rarely the right one
    PIPL_26 = "pipl_26"  # images captured in public places, for public security only


class AgreementState(StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class PoliceAgreement(TimestampedModel):
    """A community's data-sharing agreement with one police platform, set by an operator.

    Immutable once made except for its withdrawal: a change of categories is a new
    agreement (and the old one withdrawn), so every upload names the terms it went under.
    """

    id = fields.IntField(primary_key=True)
    community: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Community", related_name="police_agreements", on_delete=fields.RESTRICT
    )
    community_id: int
    platform_name = fields.CharField(max_length=100)
    base_url = fields.CharField(max_length=300)  # http(s)://host:port of the 视图库
    # Our system's 20-digit id at the platform (User-Identify, RegisterObject.DeviceID).
    system_id = fields.CharField(max_length=20)
    username = fields.CharField(max_length=64)
    password_enc = fields.BinaryField()  # Digest password, encrypted with the key ring
    center_code = fields.CharField(max_length=8)  # 8-digit centre code our ids start with
    community_code = fields.CharField(max_length=20)  # the community's 20-digit id
    legal_basis = fields.CharEnumField(LegalBasis, max_length=16)
    document_no = fields.CharField(max_length=100)  # the agreement / filing reference
    categories: list[Any] = fields.JSONField(default=list)  # ShareCategory values
    retention_days = fields.IntField()  # how long the platform may keep what it receives
    approved_by = fields.CharField(max_length=100)  # who signed for the community side
    approved_at = fields.DatetimeField(default=utcnow)
    created_by_id = fields.IntField()  # the operator who entered it
    rate_limit_per_s = fields.IntField(default=500)  # objects per second, all categories
    # Where the platform sends disposition notifications (our /VIID/SubscribeNotifications).
    notify_url = fields.CharField(max_length=300, default="")
    state = fields.CharEnumField(AgreementState, max_length=16, default=AgreementState.ACTIVE)
    withdrawn_at = fields.DatetimeField(null=True)
    withdrawn_by_id = fields.IntField(null=True)
    withdrawal_reason = fields.CharField(max_length=200, default="")

    class Meta:
        table = "police_agreement"
        indexes = (("community_id", "state"),)


class UploadState(StrEnum):
    QUEUED = "queued"
    SENT = "sent"  # the platform answered StatusCode 0 for this object
    FAILED = "failed"  # refused for good (e.g. invalid object) after its attempts
    CANCELLED = "cancelled"  # the agreement was withdrawn before it went


class PoliceUpload(TimestampedModel):
    """One object to send under one agreement: the durable outbox row and, once sent, the
    record of what went where and when. The VIID object id is stable (derived from the
    source row), so a resend after a lost answer is the same object to the platform."""

    id = fields.BigIntField(primary_key=True)
    agreement_id = fields.IntField(db_index=True)
    community_id = fields.IntField(db_index=True)
    category = fields.CharEnumField(ShareCategory, max_length=24)
    # Which row it describes ("access_event:12", "device:3:1701234567" ...): one per agreement.
    source_key = fields.CharField(max_length=80)
    object_id = fields.CharField(max_length=64, db_index=True)
    resident_id = fields.IntField(null=True, db_index=True)  # whose data, for their export
    state = fields.CharEnumField(UploadState, max_length=16, default=UploadState.QUEUED)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(default=utcnow)
    last_error = fields.CharField(max_length=200, default="")
    status_code = fields.IntField(null=True)  # the platform's ResponseStatus StatusCode
    sent_at = fields.DatetimeField(null=True)
    fields_sent: list[Any] = fields.JSONField(
        default=list
    )  # the field names that went (not values)

    class Meta:
        table = "police_upload"
        unique_together = (("agreement_id", "source_key"),)
        indexes = (("state", "next_attempt_at"), ("agreement_id", "state"))


class PoliceLinkState(TimestampedModel):
    """The link's own state per agreement: registration, keepalive, collection cursors."""

    id = fields.IntField(primary_key=True)
    agreement_id = fields.IntField(unique=True)
    registered = fields.BooleanField(default=False)
    registered_at = fields.DatetimeField(null=True)
    last_keepalive_at = fields.DatetimeField(null=True)
    next_register_at = fields.DatetimeField(default=utcnow)
    register_failures = fields.IntField(default=0)
    last_error = fields.CharField(max_length=200, default="")
    subscribe_id = fields.CharField(max_length=64, default="")
    subscribed_at = fields.DatetimeField(null=True)
    cursors: dict[str, Any] = fields.JSONField(default=dict)  # source -> ISO time collected up to

    class Meta:
        table = "police_link_state"


class PoliceAlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


class PoliceAlert(TimestampedModel):
    """A disposition (布控) hit the police platform notified at one of our doors. Seen by
    the security role only; the watchlist itself never comes here, only the hit."""

    id = fields.IntField(primary_key=True)
    agreement_id = fields.IntField(db_index=True)
    community_id = fields.IntField(db_index=True)
    notification_id = fields.CharField(max_length=64, unique=True)
    disposition_id = fields.CharField(max_length=64, default="")
    title = fields.CharField(max_length=200, default="")
    trigger_time = fields.DatetimeField(null=True)
    object_id = fields.CharField(max_length=64, default="")  # our FaceID / MotorVehicleID
    access_event_id = fields.BigIntField(null=True)
    device_id = fields.IntField(null=True)
    state = fields.CharEnumField(PoliceAlertState, max_length=16, default=PoliceAlertState.OPEN)
    acknowledged_by_id = fields.IntField(null=True)
    acknowledged_at = fields.DatetimeField(null=True)
    closed_by_id = fields.IntField(null=True)
    closed_at = fields.DatetimeField(null=True)
    note = fields.CharField(max_length=200, default="")

    class Meta:
        table = "police_alert"
        indexes = (("community_id", "state"),)


class TraceQuery(AppendOnlyModel):
    """Every outsider-tracing query: who asked, why, under which case, what it covered."""

    id = fields.BigIntField(primary_key=True)
    community_id = fields.IntField(db_index=True)
    staff_id = fields.IntField()
    reason = fields.CharField(max_length=200)
    case_no = fields.CharField(max_length=64)
    since = fields.DatetimeField()
    until = fields.DatetimeField()
    device_ids: list[Any] = fields.JSONField(default=list)
    kinds: list[Any] = fields.JSONField(default=list)
    result_count = fields.IntField(default=0)
    created_at = fields.DatetimeField(default=utcnow, db_index=True)

    class Meta:
        table = "trace_query"


class ExportState(StrEnum):
    PENDING = "pending"  # a bulk export waits for a second approver
    APPROVED = "approved"
    REJECTED = "rejected"


class TraceExport(TimestampedModel):
    id = fields.IntField(primary_key=True)
    query_id = fields.BigIntField(db_index=True)
    community_id = fields.IntField(db_index=True)
    requested_by_id = fields.IntField()
    format = fields.CharField(max_length=8)  # csv | xlsx
    rows = fields.IntField()
    bulk = fields.BooleanField(default=False)
    state = fields.CharEnumField(ExportState, max_length=16)
    approver_id = fields.IntField(null=True)
    decided_at = fields.DatetimeField(null=True)
    decision_note = fields.CharField(max_length=200, default="")
    downloaded_at = fields.DatetimeField(null=True)

    class Meta:
        table = "trace_export"
