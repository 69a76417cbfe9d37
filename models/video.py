"""Cameras, which doors they watch, what they captured, and per-community video rules."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from anxin.clock import utcnow
from models.base import TimestampedModel


class VideoCodec(StrEnum):
    H264 = "h264"  # browsers decode it: WebRTC and HLS
    H265 = "h265"  # browsers mostly cannot: recorded and snapshotted, not watched live


class Camera(TimestampedModel):
    """An RTSP camera. The URLs hold no credentials; those are encrypted in `credentials_enc`
    (AES-GCM with the face keyring, bound to `uid`)."""

    id = fields.IntField(primary_key=True)
    uid = fields.CharField(max_length=32, unique=True)  # media paths, key binding
    community: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Community", related_name="cameras", on_delete=fields.RESTRICT
    )
    community_id: int
    name = fields.CharField(max_length=64)
    place = fields.CharField(max_length=100, default="")
    main_url = fields.CharField(max_length=300)
    sub_url = fields.CharField(max_length=300, default="")
    sub_codec = fields.CharEnumField(VideoCodec, max_length=8, default=VideoCodec.H264)
    credentials_enc = fields.BinaryField(null=True)
    enabled = fields.BooleanField(default=True)
    # Health, written by the media backend.
    reachable = fields.BooleanField(default=False)
    last_frame_at = fields.DatetimeField(null=True)
    last_error = fields.CharField(max_length=200, default="")
    health_checked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "camera"


class CameraDoor(Model):
    """A camera watching a door (device): its events get snapshots, its alarms clips."""

    id = fields.IntField(primary_key=True)
    camera: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Camera", related_name="doors", on_delete=fields.CASCADE
    )
    camera_id: int
    device: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Device", related_name="cameras", on_delete=fields.CASCADE
    )
    device_id: int

    class Meta:
        table = "camera_door"
        unique_together = (("camera", "device"),)


class CaptureKind(StrEnum):
    SNAPSHOT = "snapshot"
    CLIP = "clip"


class CaptureState(StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    DELETED = "deleted"  # retention removed the file; the row stays as the record


class VideoCapture(Model):
    """A snapshot or clip a camera took because of an access event or an alarm."""

    id = fields.BigIntField(primary_key=True)
    community_id = fields.IntField(db_index=True)
    camera_id = fields.IntField(db_index=True)
    kind = fields.CharEnumField(CaptureKind, max_length=8)
    access_event_id = fields.BigIntField(null=True, db_index=True)
    alarm_id = fields.IntField(null=True, db_index=True)
    # What it shows: [start_at, end_at] (a snapshot: both the frame's time).
    start_at = fields.DatetimeField()
    end_at = fields.DatetimeField()
    state = fields.CharEnumField(CaptureState, max_length=8, default=CaptureState.PENDING)
    ref = fields.CharField(max_length=200, default="")
    size = fields.IntField(default=0)
    error = fields.CharField(max_length=200, default="")
    # One capture per (trigger, camera, kind): a redelivered event captures nothing new.
    dedupe_key = fields.CharField(max_length=128, unique=True)
    created_at = fields.DatetimeField(default=utcnow, db_index=True)

    class Meta:
        table = "video_capture"
        indexes = (("community_id", "created_at"),)


class CommunityVideoPolicy(TimestampedModel):
    """Per-community video rules; a community without a row uses the settings' defaults."""

    id = fields.IntField(primary_key=True)
    community: fields.OneToOneRelation = fields.OneToOneField(
        "anxin.Community", related_name="video_policy", on_delete=fields.CASCADE
    )
    community_id: int
    clip_retention_days = fields.IntField()
    clip_pre_s = fields.IntField()
    clip_post_s = fields.IntField()

    class Meta:
        table = "community_video_policy"
