from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from anxin.clock import utcnow
from json import dumps, loads
from models.access_control import AlarmKind, AlarmState, BlockKind, CommandStatus
from models.community import FaceSelfEnrollment, FaceStoragePolicy
from models.devices import DeviceEventState, DeviceKind, DeviceStatus
from models.faces import (
    ConsentGiver,
    ConsentPurpose,
    EnrollmentMethod,
    EnrollmentState,
    FaceDeliveryState,
    LibraryOp,
)
from models.lifecycle import DepartureKind
from models.logs import AccessMethod, AccessResult
from models.notifications import Channel, DeliveryState, OutboxState
from models.passes import CallState, PassKind, PassState
from models.people import InvitationState, MembershipRole, MembershipState, StaffRoleName
from models.police import (
    AgreementState,
    ExportState,
    LegalBasis,
    PoliceAlertState,
    ShareCategory,
    UploadState,
)
from models.video import CaptureKind, CaptureState, VideoCodec
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="AccessEvent",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("community_id", fields.IntField(db_index=True)),
                ("device_id", fields.IntField(null=True, db_index=True)),
                (
                    "method",
                    fields.CharEnumField(
                        description="FACE: face\nCARD: card\nQR: qr\nCODE: code\nPLATE: plate\nREMOTE: remote\nINTERCOM: intercom\nSTAFF: staff",
                        enum_type=AccessMethod,
                        max_length=16,
                    ),
                ),
                (
                    "result",
                    fields.CharEnumField(
                        description="GRANTED: granted\nDENIED: denied\nFAILED: failed",
                        enum_type=AccessResult,
                        max_length=16,
                    ),
                ),
                ("reason", fields.CharField(max_length=64)),
                ("resident_id", fields.IntField(null=True, db_index=True)),
                ("room_id", fields.IntField(null=True)),
                ("pass_id", fields.IntField(null=True, db_index=True)),
                ("requested_by_id", fields.IntField(null=True)),
                ("plate", fields.CharField(default="", max_length=16)),
                ("score", fields.FloatField(null=True)),
                ("snapshot_ref", fields.CharField(default="", max_length=200)),
                ("command_id", fields.CharField(default="", max_length=40)),
                ("event_key", fields.CharField(null=True, unique=True, max_length=128)),
                (
                    "occurred_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "created_at",
                    fields.DatetimeField(
                        default=utcnow, db_index=True, auto_now=False, auto_now_add=False
                    ),
                ),
            ],
            options={
                "table": "access_event",
                "app": "anxin",
                "indexes": [Index(fields=["community_id", "created_at"])],
                "pk_attr": "id",
            },
            bases=["AppendOnlyModel"],
        ),
        ops.CreateModel(
            name="Alarm",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("community_id", fields.IntField(db_index=True)),
                ("device_id", fields.IntField(null=True)),
                (
                    "kind",
                    fields.CharEnumField(
                        description="HELD_OPEN: held_open\nFORCED_OPEN: forced_open\nFENCE: fence\nBLOCKLIST: blocklist\nDEVICE_OFFLINE: device_offline\nCODE_GUESSING: code_guessing\nPASS_OVERUSED: pass_overused",
                        enum_type=AlarmKind,
                        max_length=16,
                    ),
                ),
                (
                    "state",
                    fields.CharEnumField(
                        default=AlarmState.OPEN,
                        description="OPEN: open\nACKNOWLEDGED: acknowledged\nCLOSED: closed",
                        enum_type=AlarmState,
                        max_length=16,
                    ),
                ),
                (
                    "details",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("event_key", fields.CharField(null=True, unique=True, max_length=128)),
                ("handled_by_id", fields.IntField(null=True)),
                ("handled_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("note", fields.CharField(default="", max_length=200)),
            ],
            options={
                "table": "alarm",
                "app": "anxin",
                "indexes": [Index(fields=["community_id", "state"])],
                "pk_attr": "id",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="AuditLog",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("actor_type", fields.CharField(max_length=16)),
                ("actor_id", fields.IntField(null=True)),
                ("community_id", fields.IntField(null=True, db_index=True)),
                ("action", fields.CharField(db_index=True, max_length=64)),
                ("target_type", fields.CharField(default="", max_length=32)),
                ("target_id", fields.CharField(default="", max_length=64)),
                (
                    "details",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("request_id", fields.CharField(default="", max_length=64)),
                (
                    "created_at",
                    fields.DatetimeField(
                        default=utcnow, db_index=True, auto_now=False, auto_now_add=False
                    ),
                ),
            ],
            options={"table": "audit_log", "app": "anxin", "pk_attr": "id"},
            bases=["AppendOnlyModel"],
        ),
        ops.CreateModel(
            name="City",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("name", fields.CharField(unique=True, max_length=64)),
                ("name_en", fields.CharField(default="", max_length=64)),
            ],
            options={"table": "city", "app": "anxin", "pk_attr": "id"},
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="Community",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "city",
                    fields.ForeignKeyField(
                        "anxin.City",
                        source_field="city_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="communities",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("name", fields.CharField(max_length=64)),
                ("name_en", fields.CharField(default="", max_length=64)),
                ("address", fields.CharField(default="", max_length=200)),
                ("timezone", fields.CharField(default="Asia/Shanghai", max_length=64)),
                (
                    "face_storage_policy",
                    fields.CharEnumField(
                        default=FaceStoragePolicy.EDGE,
                        description="EDGE: edge\nCENTRAL: central",
                        enum_type=FaceStoragePolicy,
                        max_length=16,
                    ),
                ),
                (
                    "face_self_enrollment",
                    fields.CharEnumField(
                        default=FaceSelfEnrollment.LIVENESS,
                        description="LIVENESS: liveness\nPHOTO: photo",
                        enum_type=FaceSelfEnrollment,
                        max_length=16,
                    ),
                ),
                ("pass_public_key", fields.TextField(default="", unique=False)),
                ("pass_private_key_enc", fields.BinaryField(null=True)),
                ("pass_key_id", fields.CharField(default="", max_length=16)),
            ],
            options={
                "table": "community",
                "app": "anxin",
                "unique_together": (("city", "name"),),
                "pk_attr": "id",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="BlocklistEntry",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "community",
                    fields.ForeignKeyField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="blocklist",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "kind",
                    fields.CharEnumField(
                        description="PERSON: person\nPLATE: plate",
                        enum_type=BlockKind,
                        max_length=8,
                    ),
                ),
                ("resident_id", fields.IntField(null=True, db_index=True)),
                ("plate", fields.CharField(default="", db_index=True, max_length=16)),
                ("reason", fields.CharField(max_length=200)),
                ("created_by_id", fields.IntField(null=True)),
                ("active", fields.BooleanField(default=True)),
            ],
            options={"table": "blocklist_entry", "app": "anxin", "pk_attr": "id"},
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="Building",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "community",
                    fields.ForeignKeyField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="buildings",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("name", fields.CharField(max_length=32)),
            ],
            options={
                "table": "building",
                "app": "anxin",
                "unique_together": (("community", "name"),),
                "pk_attr": "id",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="Camera",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("uid", fields.CharField(unique=True, max_length=32)),
                (
                    "community",
                    fields.ForeignKeyField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="cameras",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("name", fields.CharField(max_length=64)),
                ("place", fields.CharField(default="", max_length=100)),
                ("main_url", fields.CharField(max_length=300)),
                ("sub_url", fields.CharField(default="", max_length=300)),
                (
                    "sub_codec",
                    fields.CharEnumField(
                        default=VideoCodec.H264,
                        description="H264: h264\nH265: h265",
                        enum_type=VideoCodec,
                        max_length=8,
                    ),
                ),
                ("credentials_enc", fields.BinaryField(null=True)),
                ("enabled", fields.BooleanField(default=True)),
                ("reachable", fields.BooleanField(default=False)),
                (
                    "last_frame_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("last_error", fields.CharField(default="", max_length=200)),
                (
                    "health_checked_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "camera",
                "app": "anxin",
                "pk_attr": "id",
                "table_description": "An RTSP camera. The URLs hold no credentials; those are encrypted in `credentials_enc`",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="CommunityVideoPolicy",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "community",
                    fields.OneToOneField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="video_policy",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("clip_retention_days", fields.IntField()),
                ("clip_pre_s", fields.IntField()),
                ("clip_post_s", fields.IntField()),
            ],
            options={
                "table": "community_video_policy",
                "app": "anxin",
                "pk_attr": "id",
                "table_description": "Per-community video rules; a community without a row uses the settings' defaults.",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="ConsentText",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "purpose",
                    fields.CharEnumField(
                        description="GATE_ENTRY: gate_entry\nTERMINAL_STORAGE: terminal_storage\nSERVER_STORAGE: server_storage",
                        enum_type=ConsentPurpose,
                        max_length=24,
                    ),
                ),
                ("version", fields.IntField()),
                ("title_zh", fields.CharField(max_length=100)),
                ("title_en", fields.CharField(max_length=100)),
                ("text_zh", fields.TextField(unique=False)),
                ("text_en", fields.TextField(unique=False)),
            ],
            options={
                "table": "face_consent_text",
                "app": "anxin",
                "unique_together": (("purpose", "version"),),
                "pk_attr": "id",
                "table_description": "What a resident agrees to: one immutable text per purpose and version.",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="Departure",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "kind",
                    fields.CharEnumField(
                        description="MOVED_OUT: moved_out\nLEFT: left\nBLOCKED: blocked\nACCOUNT_DELETED: account_deleted",
                        enum_type=DepartureKind,
                        max_length=16,
                    ),
                ),
                ("resident_id", fields.IntField(db_index=True)),
                ("community_id", fields.IntField(db_index=True)),
                (
                    "room_ids",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("reason", fields.CharField(default="", max_length=200)),
                ("actor_type", fields.CharField(max_length=16)),
                ("actor_id", fields.IntField(null=True)),
                ("left_community", fields.BooleanField(default=True)),
                (
                    "summary",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "finished_at",
                    fields.DatetimeField(
                        null=True, db_index=True, auto_now=False, auto_now_add=False
                    ),
                ),
                ("attempts", fields.IntField(default=0)),
                ("last_error", fields.CharField(default="", max_length=200)),
            ],
            options={"table": "departure", "app": "anxin", "pk_attr": "id"},
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="DeviceCommand",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("command_id", fields.CharField(unique=True, max_length=40)),
                ("device_id", fields.IntField(db_index=True)),
                ("op", fields.CharField(max_length=16)),
                ("reason", fields.CharField(default="", max_length=64)),
                (
                    "issued_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                ("expires_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "status",
                    fields.CharEnumField(
                        default=CommandStatus.SENT,
                        description="SENT: sent\nDONE: done\nREFUSED: refused\nFAILED: failed\nEXPIRED: expired\nTIMEOUT: timeout",
                        enum_type=CommandStatus,
                        max_length=16,
                    ),
                ),
                ("ack_reason", fields.CharField(default="", max_length=64)),
                ("latency_ms", fields.FloatField(null=True)),
            ],
            options={"table": "device_command", "app": "anxin", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="DeviceEventClaim",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("event_key", fields.CharField(unique=True, max_length=128)),
                ("device_id", fields.IntField(db_index=True)),
                ("event_type", fields.CharField(max_length=24)),
                (
                    "state",
                    fields.CharEnumField(
                        default=DeviceEventState.HANDLING,
                        description="HANDLING: handling\nDONE: done",
                        enum_type=DeviceEventState,
                        max_length=16,
                    ),
                ),
                ("lease_until", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("attempts", fields.IntField(default=1)),
                ("command_id", fields.CharField(default="", max_length=40)),
                (
                    "pending",
                    fields.JSONField(
                        null=True,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "payload",
                    fields.JSONField(
                        null=True,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("outcome", fields.CharField(default="", max_length=64)),
                (
                    "received_at",
                    fields.DatetimeField(
                        default=utcnow, db_index=True, auto_now=False, auto_now_add=False
                    ),
                ),
                (
                    "finished_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "device_event",
                "app": "anxin",
                "indexes": [Index(fields=["state", "lease_until"])],
                "pk_attr": "id",
                "table_description": "The durable claim of one device event: what makes acting on it unique.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="FaceConsent",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("resident_id", fields.IntField(db_index=True)),
                ("community_id", fields.IntField(db_index=True)),
                (
                    "purpose",
                    fields.CharEnumField(
                        description="GATE_ENTRY: gate_entry\nTERMINAL_STORAGE: terminal_storage\nSERVER_STORAGE: server_storage",
                        enum_type=ConsentPurpose,
                        max_length=24,
                    ),
                ),
                (
                    "text",
                    fields.ForeignKeyField(
                        "anxin.ConsentText",
                        source_field="text_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="consents",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "given_by",
                    fields.CharEnumField(
                        description="SELF: self\nGUARDIAN: guardian\nIN_PERSON: in_person",
                        enum_type=ConsentGiver,
                        max_length=16,
                    ),
                ),
                ("guardian_id", fields.IntField(null=True)),
                ("witness_staff_id", fields.IntField(null=True)),
                (
                    "granted_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "withdrawn_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("withdrawn_by_type", fields.CharField(default="", max_length=16)),
                ("withdrawn_by_id", fields.IntField(null=True)),
            ],
            options={
                "table": "face_consent",
                "app": "anxin",
                "indexes": [Index(fields=["resident_id", "community_id", "purpose"])],
                "pk_attr": "id",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="FaceDelivery",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("community_id", fields.IntField(db_index=True)),
                ("enrollment_id", fields.IntField(db_index=True)),
                ("device_id", fields.IntField(db_index=True)),
                (
                    "op",
                    fields.CharEnumField(
                        description="ADD: add\nREMOVE: remove", enum_type=LibraryOp, max_length=8
                    ),
                ),
                ("version", fields.BigIntField()),
                (
                    "state",
                    fields.CharEnumField(
                        default=FaceDeliveryState.PENDING,
                        description="PENDING: pending\nACKED: acked\nMISSING: missing",
                        enum_type=FaceDeliveryState,
                        max_length=8,
                    ),
                ),
                ("acked_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "face_delivery",
                "app": "anxin",
                "unique_together": (("enrollment_id", "device_id", "op"),),
                "pk_attr": "id",
                "table_description": "Where a face went: one row per library change and terminal.",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="FaceEnrollment",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("resident_id", fields.IntField(db_index=True)),
                ("community_id", fields.IntField(db_index=True)),
                ("submitted_by_type", fields.CharField(max_length=16)),
                ("submitted_by_id", fields.IntField()),
                (
                    "method",
                    fields.CharEnumField(
                        description="PHOTO: photo\nLIVENESS: liveness\nIN_PERSON: in_person",
                        enum_type=EnrollmentMethod,
                        max_length=16,
                    ),
                ),
                (
                    "state",
                    fields.CharEnumField(
                        default=EnrollmentState.PENDING,
                        description="PENDING: pending\nAPPROVED: approved\nREJECTED: rejected\nREMOVED: removed",
                        enum_type=EnrollmentState,
                        max_length=16,
                    ),
                ),
                ("storage_policy", fields.CharField(max_length=16)),
                ("person_id", fields.CharField(default="", db_index=True, max_length=32)),
                ("backend", fields.CharField(default="", max_length=48)),
                ("photo_enc", fields.BinaryField(null=True)),
                ("embedding_enc", fields.BinaryField(null=True)),
                (
                    "quality",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "liveness",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "duplicate_of",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("decided_by_id", fields.IntField(null=True)),
                ("decided_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("decision_reason", fields.CharField(default="", max_length=200)),
                (
                    "photo_deleted_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "embedding_deleted_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "purge_after",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("removed_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("removed_reason", fields.CharField(default="", max_length=32)),
                ("library_version", fields.BigIntField(null=True)),
                (
                    "library_removed_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "face_enrollment",
                "app": "anxin",
                "indexes": [Index(fields=["community_id", "state"])],
                "pk_attr": "id",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="FaceLibraryChange",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("community_id", fields.IntField()),
                ("version", fields.BigIntField()),
                (
                    "op",
                    fields.CharEnumField(
                        description="ADD: add\nREMOVE: remove", enum_type=LibraryOp, max_length=8
                    ),
                ),
                ("person_id", fields.CharField(max_length=32)),
                ("enrollment_id", fields.IntField(db_index=True)),
                ("reason", fields.CharField(default="", max_length=32)),
                (
                    "valid_until",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "face_library_change",
                "app": "anxin",
                "unique_together": (("community_id", "version"),),
                "pk_attr": "id",
                "table_description": "The community's terminal library as a versioned change log (versions 1, 2, ...).",
            },
            bases=["AppendOnlyModel"],
        ),
        ops.CreateModel(
            name="FaceRecord",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("community_id", fields.IntField(null=True, db_index=True)),
                ("resident_id", fields.IntField(null=True, db_index=True)),
                ("enrollment_id", fields.IntField(null=True)),
                ("device_id", fields.IntField(null=True)),
                ("action", fields.CharField(db_index=True, max_length=32)),
                ("actor_type", fields.CharField(max_length=16)),
                ("actor_id", fields.IntField(null=True)),
                ("reason", fields.CharField(default="", max_length=64)),
                (
                    "details",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "created_at",
                    fields.DatetimeField(
                        default=utcnow, db_index=True, auto_now=False, auto_now_add=False
                    ),
                ),
            ],
            options={
                "table": "face_record",
                "app": "anxin",
                "pk_attr": "id",
                "table_description": "Record of processing of face data: who did what to whose face, when and why.",
            },
            bases=["AppendOnlyModel"],
        ),
        ops.CreateModel(
            name="IntercomCallRecord",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("community_id", fields.IntField(db_index=True)),
                ("device_id", fields.IntField()),
                ("room_id", fields.IntField()),
                (
                    "state",
                    fields.CharEnumField(
                        default=CallState.RINGING,
                        description="RINGING: ringing\nACCEPTED: accepted\nDECLINED: declined\nMISSED: missed",
                        enum_type=CallState,
                        max_length=16,
                    ),
                ),
                (
                    "expires_at",
                    fields.DatetimeField(
                        default=utcnow, db_index=True, auto_now=False, auto_now_add=False
                    ),
                ),
                ("answered_by_id", fields.IntField(null=True)),
                (
                    "declined_by",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("event_key", fields.CharField(unique=True, max_length=128)),
                ("ended_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={"table": "intercom_call", "app": "anxin", "pk_attr": "id"},
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="Notification",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("outbox_id", fields.BigIntField()),
                ("recipient_type", fields.CharField(max_length=16)),
                ("recipient_id", fields.IntField()),
                ("community_id", fields.IntField(null=True)),
                ("event_type", fields.CharField(max_length=48)),
                ("mandatory", fields.BooleanField(default=False)),
                ("muted", fields.BooleanField(default=False)),
                ("title_zh", fields.CharField(max_length=100)),
                ("title_en", fields.CharField(max_length=100)),
                ("body_zh", fields.CharField(max_length=500)),
                ("body_en", fields.CharField(max_length=500)),
                (
                    "data",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "occurred_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                ("read_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "notification",
                "app": "anxin",
                "unique_together": (("outbox_id", "recipient_type", "recipient_id"),),
                "indexes": [Index(fields=["recipient_type", "recipient_id", "read_at"])],
                "pk_attr": "id",
                "table_description": "The in-app copy one recipient sees in the notification centre.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="NotificationAttempt",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("notification_id", fields.BigIntField(db_index=True)),
                ("delivery_id", fields.BigIntField(null=True)),
                (
                    "channel",
                    fields.CharEnumField(
                        description="INAPP: inapp\nREALTIME: realtime\nWECHAT: wechat",
                        enum_type=Channel,
                        max_length=16,
                    ),
                ),
                ("outcome", fields.CharField(max_length=32)),
                ("error_code", fields.IntField(null=True)),
                ("error", fields.CharField(default="", max_length=300)),
                ("at", fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "notification_attempt",
                "app": "anxin",
                "pk_attr": "id",
                "table_description": "Every try on every channel: what happened and WeChat's error code.",
            },
            bases=["AppendOnlyModel"],
        ),
        ops.CreateModel(
            name="NotificationDelivery",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("notification_id", fields.BigIntField()),
                (
                    "channel",
                    fields.CharEnumField(
                        description="INAPP: inapp\nREALTIME: realtime\nWECHAT: wechat",
                        enum_type=Channel,
                        max_length=16,
                    ),
                ),
                (
                    "state",
                    fields.CharEnumField(
                        default=DeliveryState.PENDING,
                        description="PENDING: pending\nPROCESSING: processing\nSENT: sent\nUNDELIVERABLE: undeliverable\nFAILED: failed\nEXPIRED: expired",
                        enum_type=DeliveryState,
                        max_length=16,
                    ),
                ),
                ("attempts", fields.IntField(default=0)),
                (
                    "next_attempt_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                ("lease_token", fields.CharField(null=True, max_length=32)),
                (
                    "lease_expires_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("last_error", fields.CharField(default="", max_length=300)),
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "finished_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "notification_delivery",
                "app": "anxin",
                "unique_together": (("notification_id", "channel"),),
                "indexes": [Index(fields=["state", "next_attempt_at"])],
                "pk_attr": "id",
                "table_description": "One external channel (WeChat) for one notification, retried on its own schedule.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="NotificationPreference",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("subject_type", fields.CharField(max_length=16)),
                ("subject_id", fields.IntField()),
                ("event_type", fields.CharField(max_length=48)),
                ("muted", fields.BooleanField(default=True)),
            ],
            options={
                "table": "notification_preference",
                "app": "anxin",
                "unique_together": (("subject_type", "subject_id", "event_type"),),
                "pk_attr": "id",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="OutboxEvent",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("event_type", fields.CharField(max_length=48)),
                ("community_id", fields.IntField(null=True)),
                (
                    "recipients",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "payload",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("dedupe_key", fields.CharField(null=True, unique=True, max_length=160)),
                (
                    "occurred_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "state",
                    fields.CharEnumField(
                        default=OutboxState.PENDING,
                        description="PENDING: pending\nPROCESSING: processing\nDONE: done\nFAILED: failed",
                        enum_type=OutboxState,
                        max_length=16,
                    ),
                ),
                ("attempts", fields.IntField(default=0)),
                (
                    "next_attempt_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                ("lease_token", fields.CharField(null=True, max_length=32)),
                (
                    "lease_expires_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("last_error", fields.CharField(default="", max_length=300)),
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "processed_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "notification_outbox",
                "app": "anxin",
                "indexes": [Index(fields=["state", "next_attempt_at"])],
                "pk_attr": "id",
                "table_description": "A domain event waiting to become notifications, written in the event's transaction.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="PassKeyRetired",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("community_id", fields.IntField(db_index=True)),
                ("kid", fields.CharField(max_length=16)),
                ("public_pem", fields.TextField(unique=False)),
                ("private_enc", fields.BinaryField(null=True)),
                ("accept_until", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "pass_key_retired",
                "app": "anxin",
                "unique_together": (("community_id", "kid"),),
                "pk_attr": "id",
                "table_description": "A community pass key replaced by a rotation: gates keep accepting it, and its",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="PoliceAgreement",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "community",
                    fields.ForeignKeyField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="police_agreements",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("platform_name", fields.CharField(max_length=100)),
                ("base_url", fields.CharField(max_length=300)),
                ("system_id", fields.CharField(max_length=20)),
                ("username", fields.CharField(max_length=64)),
                ("password_enc", fields.BinaryField()),
                ("center_code", fields.CharField(max_length=8)),
                ("community_code", fields.CharField(max_length=20)),
                (
                    "legal_basis",
                    fields.CharEnumField(
                        description="PIPL_13_3: pipl_13_3\nPIPL_13_5: pipl_13_5\nPIPL_26: pipl_26",
                        enum_type=LegalBasis,
                        max_length=16,
                    ),
                ),
                ("document_no", fields.CharField(max_length=100)),
                (
                    "categories",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("retention_days", fields.IntField()),
                ("approved_by", fields.CharField(max_length=100)),
                (
                    "approved_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                ("created_by_id", fields.IntField()),
                ("rate_limit_per_s", fields.IntField(default=500)),
                ("notify_url", fields.CharField(default="", max_length=300)),
                (
                    "state",
                    fields.CharEnumField(
                        default=AgreementState.ACTIVE,
                        description="ACTIVE: active\nWITHDRAWN: withdrawn",
                        enum_type=AgreementState,
                        max_length=16,
                    ),
                ),
                (
                    "withdrawn_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("withdrawn_by_id", fields.IntField(null=True)),
                ("withdrawal_reason", fields.CharField(default="", max_length=200)),
            ],
            options={
                "table": "police_agreement",
                "app": "anxin",
                "indexes": [Index(fields=["community_id", "state"])],
                "pk_attr": "id",
                "table_description": "A community's data-sharing agreement with one police platform, set by an operator.",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="PoliceAlert",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("agreement_id", fields.IntField(db_index=True)),
                ("community_id", fields.IntField(db_index=True)),
                ("notification_id", fields.CharField(unique=True, max_length=64)),
                ("disposition_id", fields.CharField(default="", max_length=64)),
                ("title", fields.CharField(default="", max_length=200)),
                (
                    "trigger_time",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("object_id", fields.CharField(default="", max_length=64)),
                ("access_event_id", fields.BigIntField(null=True)),
                ("device_id", fields.IntField(null=True)),
                (
                    "state",
                    fields.CharEnumField(
                        default=PoliceAlertState.OPEN,
                        description="OPEN: open\nACKNOWLEDGED: acknowledged\nCLOSED: closed",
                        enum_type=PoliceAlertState,
                        max_length=16,
                    ),
                ),
                ("acknowledged_by_id", fields.IntField(null=True)),
                (
                    "acknowledged_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("closed_by_id", fields.IntField(null=True)),
                ("closed_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("note", fields.CharField(default="", max_length=200)),
            ],
            options={
                "table": "police_alert",
                "app": "anxin",
                "indexes": [Index(fields=["community_id", "state"])],
                "pk_attr": "id",
                "table_description": "A disposition (布控) hit the police platform notified at one of our doors. Seen by",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="PoliceLinkState",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("agreement_id", fields.IntField(unique=True)),
                ("registered", fields.BooleanField(default=False)),
                (
                    "registered_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "last_keepalive_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "next_register_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                ("register_failures", fields.IntField(default=0)),
                ("last_error", fields.CharField(default="", max_length=200)),
                ("subscribe_id", fields.CharField(default="", max_length=64)),
                (
                    "subscribed_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "cursors",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
            ],
            options={
                "table": "police_link_state",
                "app": "anxin",
                "pk_attr": "id",
                "table_description": "The link's own state per agreement: registration, keepalive, collection cursors.",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="PoliceUpload",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("agreement_id", fields.IntField(db_index=True)),
                ("community_id", fields.IntField(db_index=True)),
                (
                    "category",
                    fields.CharEnumField(
                        description="APES: apes\nDOORS: doors\nFACE_CAPTURES: face_captures\nVEHICLE_PASSAGES: vehicle_passages\nVISITOR_REGISTRATIONS: visitor_registrations\nRESIDENT_REGISTRY: resident_registry\nVEHICLE_REGISTRY: vehicle_registry",
                        enum_type=ShareCategory,
                        max_length=24,
                    ),
                ),
                ("source_key", fields.CharField(max_length=80)),
                ("object_id", fields.CharField(db_index=True, max_length=64)),
                ("resident_id", fields.IntField(null=True, db_index=True)),
                (
                    "state",
                    fields.CharEnumField(
                        default=UploadState.QUEUED,
                        description="QUEUED: queued\nSENT: sent\nFAILED: failed\nCANCELLED: cancelled",
                        enum_type=UploadState,
                        max_length=16,
                    ),
                ),
                ("attempts", fields.IntField(default=0)),
                (
                    "next_attempt_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                ("last_error", fields.CharField(default="", max_length=200)),
                ("status_code", fields.IntField(null=True)),
                ("sent_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                (
                    "fields_sent",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
            ],
            options={
                "table": "police_upload",
                "app": "anxin",
                "unique_together": (("agreement_id", "source_key"),),
                "indexes": [
                    Index(fields=["state", "next_attempt_at"]),
                    Index(fields=["agreement_id", "state"]),
                ],
                "pk_attr": "id",
                "table_description": "One object to send under one agreement: the durable outbox row and, once sent, the",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="RefreshToken",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("token_hash", fields.CharField(unique=True, max_length=64)),
                ("family", fields.CharField(db_index=True, max_length=32)),
                ("subject_type", fields.CharField(max_length=16)),
                ("subject_id", fields.IntField()),
                (
                    "issued_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                ("expires_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("used_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("revoked_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("revoked_reason", fields.CharField(default="", max_length=32)),
            ],
            options={
                "table": "refresh_token",
                "app": "anxin",
                "indexes": [Index(fields=["subject_type", "subject_id"])],
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Resident",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("openid", fields.CharField(null=True, unique=True, max_length=64)),
                ("unionid", fields.CharField(null=True, db_index=True, max_length=64)),
                ("name", fields.CharField(default="", max_length=64)),
                ("phone", fields.CharField(null=True, db_index=True, max_length=20)),
                ("birth_date", fields.DateField(null=True)),
                ("language", fields.CharField(default="zh", max_length=8)),
                ("deleted_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={"table": "resident", "app": "anxin", "pk_attr": "id"},
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="AccessCard",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "community",
                    fields.ForeignKeyField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="cards",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "resident",
                    fields.ForeignKeyField(
                        "anxin.Resident",
                        source_field="resident_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="cards",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("card_no", fields.CharField(max_length=32)),
                ("active", fields.BooleanField(default=True)),
            ],
            options={
                "table": "access_card",
                "app": "anxin",
                "unique_together": (("community", "card_no"),),
                "pk_attr": "id",
                "table_description": "An IC card issued to a resident (the usual non-face way in).",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="StaffAccount",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("username", fields.CharField(unique=True, max_length=64)),
                ("password_hash", fields.CharField(max_length=256)),
                ("display_name", fields.CharField(default="", max_length=64)),
                ("is_active", fields.BooleanField(default=True)),
                ("is_operator", fields.BooleanField(default=False)),
            ],
            options={"table": "staff_account", "app": "anxin", "pk_attr": "id"},
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="ResidentBlock",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "resident",
                    fields.ForeignKeyField(
                        "anxin.Resident",
                        source_field="resident_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="blocks",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "community",
                    fields.ForeignKeyField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="resident_blocks",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("reason", fields.CharField(default="", max_length=200)),
                (
                    "blocked_by",
                    fields.ForeignKeyField(
                        "anxin.StaffAccount",
                        source_field="blocked_by_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
            ],
            options={
                "table": "resident_block",
                "app": "anxin",
                "unique_together": (("resident", "community"),),
                "pk_attr": "id",
                "table_description": "Staff of one community blocked a resident there. A block belongs to (resident,",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="StaffRole",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "staff",
                    fields.ForeignKeyField(
                        "anxin.StaffAccount",
                        source_field="staff_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="roles",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "community",
                    fields.ForeignKeyField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="staff_roles",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "role",
                    fields.CharEnumField(
                        description="ADMIN: admin\nAPPROVER: approver\nGUARD: guard\nSECURITY: security",
                        enum_type=StaffRoleName,
                        max_length=16,
                    ),
                ),
            ],
            options={
                "table": "staff_role",
                "app": "anxin",
                "unique_together": (("staff", "community", "role"),),
                "pk_attr": "id",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="TraceExport",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("query_id", fields.BigIntField(db_index=True)),
                ("community_id", fields.IntField(db_index=True)),
                ("requested_by_id", fields.IntField()),
                ("format", fields.CharField(max_length=8)),
                ("rows", fields.IntField()),
                ("bulk", fields.BooleanField(default=False)),
                (
                    "state",
                    fields.CharEnumField(
                        description="PENDING: pending\nAPPROVED: approved\nREJECTED: rejected",
                        enum_type=ExportState,
                        max_length=16,
                    ),
                ),
                ("approver_id", fields.IntField(null=True)),
                ("decided_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("decision_note", fields.CharField(default="", max_length=200)),
                (
                    "downloaded_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={"table": "trace_export", "app": "anxin", "pk_attr": "id"},
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="TraceQuery",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("community_id", fields.IntField(db_index=True)),
                ("staff_id", fields.IntField()),
                ("reason", fields.CharField(max_length=200)),
                ("case_no", fields.CharField(max_length=64)),
                ("since", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("until", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "device_ids",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "kinds",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("result_count", fields.IntField(default=0)),
                (
                    "created_at",
                    fields.DatetimeField(
                        default=utcnow, db_index=True, auto_now=False, auto_now_add=False
                    ),
                ),
            ],
            options={
                "table": "trace_query",
                "app": "anxin",
                "pk_attr": "id",
                "table_description": "Every outsider-tracing query: who asked, why, under which case, what it covered.",
            },
            bases=["AppendOnlyModel"],
        ),
        ops.CreateModel(
            name="Unit",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "building",
                    fields.ForeignKeyField(
                        "anxin.Building",
                        source_field="building_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="units",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "community",
                    fields.ForeignKeyField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="units",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("name", fields.CharField(max_length=32)),
            ],
            options={
                "table": "unit",
                "app": "anxin",
                "unique_together": (("building", "name"),),
                "pk_attr": "id",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="Device",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("device_uid", fields.CharField(unique=True, max_length=64)),
                (
                    "community",
                    fields.ForeignKeyField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="devices",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "kind",
                    fields.CharEnumField(
                        description="FACE_GATE: face_gate\nUNIT_DOOR: unit_door\nBARRIER_GATE: barrier_gate\nINTERCOM_PANEL: intercom_panel\nFENCE: fence",
                        enum_type=DeviceKind,
                        max_length=16,
                    ),
                ),
                ("name", fields.CharField(max_length=64)),
                (
                    "building",
                    fields.ForeignKeyField(
                        "anxin.Building",
                        source_field="building_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="devices",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "unit",
                    fields.ForeignKeyField(
                        "anxin.Unit",
                        source_field="unit_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="devices",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("place", fields.CharField(default="", max_length=100)),
                (
                    "methods",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "status",
                    fields.CharEnumField(
                        default=DeviceStatus.ACTIVE,
                        description="ACTIVE: active\nDISABLED: disabled\nREVOKED: revoked",
                        enum_type=DeviceStatus,
                        max_length=16,
                    ),
                ),
                ("secret_enc", fields.BinaryField(null=True)),
                ("credential_version", fields.IntField(default=1)),
                ("online", fields.BooleanField(default=False)),
                (
                    "last_seen_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "offline_alarm_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("library_version_acked", fields.BigIntField(default=0)),
                ("firmware", fields.CharField(default="", max_length=64)),
                ("transport", fields.CharField(default="mqtt", max_length=16)),
            ],
            options={"table": "device", "app": "anxin", "pk_attr": "id"},
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="CameraDoor",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "camera",
                    fields.ForeignKeyField(
                        "anxin.Camera",
                        source_field="camera_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="doors",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "device",
                    fields.ForeignKeyField(
                        "anxin.Device",
                        source_field="device_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="cameras",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
            ],
            options={
                "table": "camera_door",
                "app": "anxin",
                "unique_together": (("camera", "device"),),
                "pk_attr": "id",
                "table_description": "A camera watching a door (device): its events get snapshots, its alarms clips.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Room",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "unit",
                    fields.ForeignKeyField(
                        "anxin.Unit",
                        source_field="unit_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="rooms",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "building",
                    fields.ForeignKeyField(
                        "anxin.Building",
                        source_field="building_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="rooms",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "community",
                    fields.ForeignKeyField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="rooms",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("number", fields.CharField(max_length=16)),
            ],
            options={
                "table": "room",
                "app": "anxin",
                "unique_together": (("unit", "number"),),
                "pk_attr": "id",
                "table_description": "A flat: the household that residents belong to.",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="HouseholdCode",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "room",
                    fields.OneToOneField(
                        "anxin.Room",
                        source_field="room_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="door_code",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("code_hash", fields.CharField(max_length=64)),
                ("salt", fields.CharField(max_length=32)),
                ("key_id", fields.CharField(max_length=32)),
                ("set_by_id", fields.IntField(null=True)),
            ],
            options={
                "table": "household_code",
                "app": "anxin",
                "pk_attr": "id",
                "table_description": "A household's door code for relatives: only a keyed hash is kept.",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="Membership",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "resident",
                    fields.ForeignKeyField(
                        "anxin.Resident",
                        source_field="resident_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="memberships",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "room",
                    fields.ForeignKeyField(
                        "anxin.Room",
                        source_field="room_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="memberships",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "community",
                    fields.ForeignKeyField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="memberships",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "role",
                    fields.CharEnumField(
                        description="OWNER: owner\nFAMILY: family\nTENANT: tenant",
                        enum_type=MembershipRole,
                        max_length=16,
                    ),
                ),
                (
                    "state",
                    fields.CharEnumField(
                        default=MembershipState.PENDING,
                        description="PENDING: pending\nAPPROVED: approved\nREJECTED: rejected\nENDED: ended\nSUSPENDED: suspended",
                        enum_type=MembershipState,
                        max_length=16,
                    ),
                ),
                ("note", fields.CharField(default="", max_length=200)),
                ("decision_reason", fields.CharField(default="", max_length=200)),
                (
                    "decided_by",
                    fields.ForeignKeyField(
                        "anxin.StaffAccount",
                        source_field="decided_by_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("decided_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("move_in", fields.DateField(null=True)),
                ("move_out", fields.DateField(null=True)),
                ("ended_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "membership",
                "app": "anxin",
                "indexes": [
                    Index(fields=["community_id", "state"]),
                    Index(fields=["resident_id", "state"]),
                ],
                "pk_attr": "id",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="Invitation",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "community",
                    fields.ForeignKeyField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="invitations",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "room",
                    fields.ForeignKeyField(
                        "anxin.Room",
                        source_field="room_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="invitations",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("phone", fields.CharField(max_length=20)),
                ("name", fields.CharField(default="", max_length=64)),
                (
                    "role",
                    fields.CharEnumField(
                        description="OWNER: owner\nFAMILY: family\nTENANT: tenant",
                        enum_type=MembershipRole,
                        max_length=16,
                    ),
                ),
                ("move_in", fields.DateField(null=True)),
                (
                    "state",
                    fields.CharEnumField(
                        default=InvitationState.PENDING,
                        description="PENDING: pending\nACCEPTED: accepted\nDECLINED: declined\nWITHDRAWN: withdrawn",
                        enum_type=InvitationState,
                        max_length=16,
                    ),
                ),
                (
                    "invited_by",
                    fields.ForeignKeyField(
                        "anxin.StaffAccount",
                        source_field="invited_by_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("expires_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("decided_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                (
                    "resident",
                    fields.ForeignKeyField(
                        "anxin.Resident",
                        source_field="resident_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="invitations",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "membership",
                    fields.ForeignKeyField(
                        "anxin.Membership",
                        source_field="membership_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
            ],
            options={
                "table": "invitation",
                "app": "anxin",
                "indexes": [
                    Index(fields=["phone", "state"]),
                    Index(fields=["community_id", "state"]),
                ],
                "pk_attr": "id",
                "table_description": "Staff (usually by import) invite whoever holds a phone number into a room. It gives",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="Vehicle",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "community",
                    fields.ForeignKeyField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="vehicles",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "room",
                    fields.ForeignKeyField(
                        "anxin.Room",
                        source_field="room_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="vehicles",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("plate", fields.CharField(max_length=16)),
                ("added_by_id", fields.IntField(null=True)),
            ],
            options={
                "table": "vehicle",
                "app": "anxin",
                "unique_together": (("community", "plate"),),
                "pk_attr": "id",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="VideoCapture",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("community_id", fields.IntField(db_index=True)),
                ("camera_id", fields.IntField(db_index=True)),
                (
                    "kind",
                    fields.CharEnumField(
                        description="SNAPSHOT: snapshot\nCLIP: clip",
                        enum_type=CaptureKind,
                        max_length=8,
                    ),
                ),
                ("access_event_id", fields.BigIntField(null=True, db_index=True)),
                ("alarm_id", fields.IntField(null=True, db_index=True)),
                ("start_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("end_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "state",
                    fields.CharEnumField(
                        default=CaptureState.PENDING,
                        description="PENDING: pending\nREADY: ready\nFAILED: failed\nDELETED: deleted",
                        enum_type=CaptureState,
                        max_length=8,
                    ),
                ),
                ("ref", fields.CharField(default="", max_length=200)),
                ("size", fields.IntField(default=0)),
                ("error", fields.CharField(default="", max_length=200)),
                ("dedupe_key", fields.CharField(unique=True, max_length=128)),
                (
                    "created_at",
                    fields.DatetimeField(
                        default=utcnow, db_index=True, auto_now=False, auto_now_add=False
                    ),
                ),
            ],
            options={
                "table": "video_capture",
                "app": "anxin",
                "indexes": [Index(fields=["community_id", "created_at"])],
                "pk_attr": "id",
                "table_description": "A snapshot or clip a camera took because of an access event or an alarm.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="VisitorPass",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "community",
                    fields.ForeignKeyField(
                        "anxin.Community",
                        source_field="community_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="passes",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "room",
                    fields.ForeignKeyField(
                        "anxin.Room",
                        source_field="room_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="passes",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "created_by",
                    fields.ForeignKeyField(
                        "anxin.Resident",
                        source_field="created_by_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="passes",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "kind",
                    fields.CharEnumField(
                        default=PassKind.VISITOR,
                        description="VISITOR: visitor\nDELIVERY: delivery",
                        enum_type=PassKind,
                        max_length=16,
                    ),
                ),
                ("visitor_name", fields.CharField(default="", max_length=32)),
                ("visitor_phone", fields.CharField(default="", max_length=20)),
                ("plate", fields.CharField(default="", db_index=True, max_length=16)),
                ("valid_from", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "valid_until",
                    fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False),
                ),
                ("max_uses", fields.IntField()),
                ("uses", fields.IntField(default=0)),
                (
                    "device_uses",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "doors",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "state",
                    fields.CharEnumField(
                        default=PassState.ACTIVE,
                        description="ACTIVE: active\nREVOKED: revoked\nEXHAUSTED: exhausted\nEXPIRED: expired",
                        enum_type=PassState,
                        max_length=16,
                    ),
                ),
                ("revoked_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("revoked_by", fields.CharField(default="", max_length=32)),
                ("key_id", fields.CharField(default="", max_length=16)),
                ("share_token", fields.CharField(unique=True, max_length=64)),
            ],
            options={
                "table": "visitor_pass",
                "app": "anxin",
                "indexes": [Index(fields=["community_id", "state"])],
                "pk_attr": "id",
                "table_description": "A signed QR pass; the token itself is not stored, it is re-minted from this row.",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="PassRevocation",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "visitor_pass",
                    fields.ForeignKeyField(
                        "anxin.VisitorPass",
                        source_field="visitor_pass_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="revocations",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("device_id", fields.IntField(db_index=True)),
                ("until", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("acked_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "pass_revocation",
                "app": "anxin",
                "unique_together": (("visitor_pass", "device_id"),),
                "pk_attr": "id",
                "table_description": "One revoked pass to tell one device; acked once the device confirmed it.",
            },
            bases=["TimestampedModel"],
        ),
        ops.CreateModel(
            name="WeChatSubscription",
            fields=[
                (
                    "created_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "updated_at",
                    fields.DatetimeField(default=utcnow, auto_now=False, auto_now_add=False),
                ),
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("resident_id", fields.IntField()),
                ("template_id", fields.CharField(max_length=64)),
                ("quota", fields.IntField(default=0)),
                ("refused", fields.BooleanField(default=False)),
            ],
            options={
                "table": "wechat_subscription",
                "app": "anxin",
                "unique_together": (("resident_id", "template_id"),),
                "pk_attr": "id",
                "table_description": "Our count of a resident's one-time subscribe-message quota per template.",
            },
            bases=["TimestampedModel"],
        ),
    ]
