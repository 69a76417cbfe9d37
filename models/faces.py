"""Face data: consents, enrollments, the per-community terminal library and its deliveries,
and the face-data processing record (PIPL art. 51-55; CAC face recognition measures).

Nothing here holds a usable face unless encrypted: `photo_enc` and `embedding_enc` are
AES-GCM blobs whose associated data names the row (see domain/faces/service.py).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields

from anxin.clock import utcnow
from models.base import AppendOnlyModel, TimestampedModel


class ConsentPurpose(StrEnum):
    GATE_ENTRY = "gate_entry"  # face recognition to open the gates
    TERMINAL_STORAGE = "terminal_storage"  # the face sent to and kept on the gate terminals
    SERVER_STORAGE = "server_storage"  # the face sent to and kept on the server (central)


class ConsentGiver(StrEnum):
    SELF = "self"
    GUARDIAN = "guardian"  # for a child under 14
    IN_PERSON = "in_person"  # given at the property office, witnessed by staff


class ConsentText(TimestampedModel):
    """What a resident agrees to: one immutable text per purpose and version."""

    id = fields.IntField(primary_key=True)
    purpose = fields.CharEnumField(ConsentPurpose, max_length=24)
    version = fields.IntField()
    title_zh = fields.CharField(max_length=100)
    title_en = fields.CharField(max_length=100)
    text_zh = fields.TextField()
    text_en = fields.TextField()

    class Meta:
        table = "face_consent_text"
        unique_together = (("purpose", "version"),)


class FaceConsent(TimestampedModel):
    id = fields.IntField(primary_key=True)
    resident_id = fields.IntField(db_index=True)  # whose face
    community_id = fields.IntField(db_index=True)
    purpose = fields.CharEnumField(ConsentPurpose, max_length=24)
    text: fields.ForeignKeyRelation[ConsentText] = fields.ForeignKeyField(
        "anxin.ConsentText", related_name="consents", on_delete=fields.RESTRICT
    )
    text_id: int
    given_by = fields.CharEnumField(ConsentGiver, max_length=16)
    guardian_id = fields.IntField(null=True)  # resident who consented for a child
    witness_staff_id = fields.IntField(null=True)  # staff at an in-person enrollment
    granted_at = fields.DatetimeField(default=utcnow)
    withdrawn_at = fields.DatetimeField(null=True)
    withdrawn_by_type = fields.CharField(max_length=16, default="")
    withdrawn_by_id = fields.IntField(null=True)

    class Meta:
        table = "face_consent"
        indexes = (("resident_id", "community_id", "purpose"),)


class EnrollmentState(StrEnum):
    PENDING = "pending"  # waiting for staff
    APPROVED = "approved"  # in the gallery / terminal libraries
    REJECTED = "rejected"
    REMOVED = "removed"  # withdrawn, moved out, blocked, superseded: gone everywhere


class EnrollmentMethod(StrEnum):
    PHOTO = "photo"
    LIVENESS = "liveness"
    IN_PERSON = "in_person"


class FaceEnrollment(TimestampedModel):
    id = fields.IntField(primary_key=True)
    resident_id = fields.IntField(db_index=True)
    community_id = fields.IntField(db_index=True)
    submitted_by_type = fields.CharField(max_length=16)  # resident | guardian | staff
    submitted_by_id = fields.IntField()
    method = fields.CharEnumField(EnrollmentMethod, max_length=16)
    state = fields.CharEnumField(EnrollmentState, max_length=16, default=EnrollmentState.PENDING)
    storage_policy = fields.CharField(max_length=16)  # the community's policy at submission
    # The opaque id terminals know this face by ("f<id>"): no name, no resident id.
    person_id = fields.CharField(max_length=32, default="", db_index=True)
    backend = fields.CharField(max_length=48, default="")
    photo_enc = fields.BinaryField(null=True)  # until the decision, for the reviewer only
    embedding_enc = fields.BinaryField(null=True)  # central: kept; edge: until delivered
    quality: dict[str, Any] = fields.JSONField(default=dict)
    liveness: dict[str, Any] = fields.JSONField(default=dict)
    duplicate_of: list[Any] = fields.JSONField(
        default=list
    )  # [{resident_id, enrollment_id, score}]
    decided_by_id = fields.IntField(null=True)
    decided_at = fields.DatetimeField(null=True)
    decision_reason = fields.CharField(max_length=200, default="")
    photo_deleted_at = fields.DatetimeField(null=True)
    embedding_deleted_at = fields.DatetimeField(null=True)
    purge_after = fields.DatetimeField(null=True)  # move-out grace: deletion due then
    removed_at = fields.DatetimeField(null=True)
    removed_reason = fields.CharField(max_length=32, default="")
    library_version = fields.BigIntField(null=True)  # version of its library "add"
    # Set by whoever sent its library "remove": one removal, however many removers race.
    library_removed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "face_enrollment"
        indexes = (("community_id", "state"),)


class LibraryOp(StrEnum):
    ADD = "add"
    REMOVE = "remove"


class FaceLibraryChange(AppendOnlyModel):
    """The community's terminal library as a versioned change log (versions 1, 2, ...).

    No embedding here: an add refers to its enrollment, whose encrypted embedding exists
    until every terminal acknowledged it (edge) or until deletion (central).
    """

    id = fields.BigIntField(primary_key=True)
    community_id = fields.IntField()
    version = fields.BigIntField()
    op = fields.CharEnumField(LibraryOp, max_length=8)
    person_id = fields.CharField(max_length=32)
    enrollment_id = fields.IntField(db_index=True)
    reason = fields.CharField(max_length=32, default="")
    valid_until = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(default=utcnow)

    class Meta:
        table = "face_library_change"
        unique_together = (("community_id", "version"),)


class FaceDeliveryState(StrEnum):
    PENDING = "pending"
    ACKED = "acked"
    MISSING = "missing"  # a new/reset terminal that cannot get it (edge): re-enroll


class FaceDelivery(TimestampedModel):
    """Where a face went: one row per library change and terminal."""

    id = fields.BigIntField(primary_key=True)
    community_id = fields.IntField(db_index=True)
    enrollment_id = fields.IntField(db_index=True)
    device_id = fields.IntField(db_index=True)
    op = fields.CharEnumField(LibraryOp, max_length=8)
    version = fields.BigIntField()
    state = fields.CharEnumField(FaceDeliveryState, max_length=8, default=FaceDeliveryState.PENDING)
    acked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "face_delivery"
        unique_together = (("enrollment_id", "device_id", "op"),)


class FaceRecord(AppendOnlyModel):
    """Record of processing of face data: who did what to whose face, when and why.

    Actions (stable): consent.given, consent.withdrawn, enrollment.submitted,
    enrollment.refused, photo.viewed, enrollment.approved, enrollment.rejected,
    photo.deleted, embedding.deleted, face.removed, match, library.sent, library.acked,
    library.transferred (a peer's library copied to a replacement terminal),
    snapshot.deleted, export.
    """

    id = fields.BigIntField(primary_key=True)
    community_id = fields.IntField(null=True, db_index=True)
    resident_id = fields.IntField(null=True, db_index=True)  # whose face
    enrollment_id = fields.IntField(null=True)
    device_id = fields.IntField(null=True)
    action = fields.CharField(max_length=32, db_index=True)
    actor_type = fields.CharField(max_length=16)  # resident | staff | system | device
    actor_id = fields.IntField(null=True)
    reason = fields.CharField(max_length=64, default="")
    details: dict[str, Any] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(default=utcnow, db_index=True)

    class Meta:
        table = "face_record"
