"""Request and response bodies of cameras, live view, captures and the viewing audit."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.contract import LocalTime, Page
from api.schemas import Strict
from domain.video import captures, tickets
from models import CaptureKind, CaptureState, VideoCodec

DoorId = Annotated[int, Field(gt=0, le=2**31 - 1)]


class CameraIn(Strict):
    name: str = Field(min_length=1, max_length=64)
    place: str = Field("", max_length=100)
    main_url: str = Field(min_length=8, max_length=300)
    sub_url: str = Field("", max_length=300)
    sub_codec: VideoCodec = VideoCodec.H264
    username: str = Field("", max_length=64)
    password: str = Field("", max_length=128)
    door_ids: list[DoorId] = Field(default_factory=list, max_length=16)


class CameraUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=64)
    place: str | None = Field(None, max_length=100)
    main_url: str | None = Field(None, min_length=8, max_length=300)
    sub_url: str | None = Field(None, max_length=300)
    sub_codec: VideoCodec | None = None
    enabled: bool | None = None
    username: str | None = Field(None, max_length=64)
    password: str | None = Field(None, max_length=128)
    door_ids: list[DoorId] | None = Field(None, max_length=16)


class ReasonIn(Strict):
    reason: str = Field(max_length=200)


class WebRtcStart(Strict):
    ticket: str = Field(max_length=tickets.MAX_TICKET_LEN)


class WebRtcAnswer(Strict):
    ticket: str = Field(max_length=tickets.MAX_TICKET_LEN)
    sdp: str = Field(min_length=10, max_length=20_000)


class PolicyIn(Strict):
    clip_pre_s: int = Field(ge=0, le=captures.MAX_PRE_S)
    clip_post_s: int = Field(ge=0, le=captures.MAX_POST_S)
    clip_retention_days: int = Field(ge=1, le=captures.MAX_RETENTION_DAYS)


class CameraHealth(BaseModel):
    reachable: bool
    last_frame_at: LocalTime | None
    error: str
    checked_at: LocalTime | None


class CameraOut(BaseModel):
    id: int
    community_id: int
    name: str
    place: str
    main_url: str = Field(description="without credentials: those are write-only")
    sub_url: str
    sub_codec: VideoCodec
    has_credentials: bool
    enabled: bool
    door_ids: list[int]
    media_server: str | None = Field(description="the media server's name; null when none")
    live_protocols: list[str]
    health: CameraHealth
    timezone: str


class CameraPage(Page[CameraOut]):
    media_server: str | None
    message: str | None = Field(description="why video is unavailable (zh), when it is")


class LiveTicketOut(BaseModel):
    camera_id: int
    ticket: str
    expires_at: LocalTime
    expires_in: int = Field(description="seconds")
    protocols: list[str]
    hls_url: str
    webrtc_url: str | None


class WebRtcOfferOut(BaseModel):
    session_id: str
    type: Literal["offer"] = "offer"
    sdp: str


class CaptureOut(BaseModel):
    id: int
    camera_id: int
    kind: CaptureKind
    state: CaptureState
    access_event_id: int | None
    alarm_id: int | None
    start_at: LocalTime | None
    end_at: LocalTime | None
    size: int = Field(description="bytes")
    error: str
    content_type: Literal["image/jpeg", "video/mp4"]
    timezone: str


class ViewingOut(BaseModel):
    id: int
    action: str = Field(description="video.live, video.snapshot.read or video.clip.read")
    staff_id: int | None
    camera_id: int | None
    capture_id: int | None
    from_: LocalTime | None = Field(alias="from", description="start of the time range seen")
    to: LocalTime | None = Field(description="end of the time range seen")
    reason: str
    at: LocalTime
    timezone: str

    model_config = ConfigDict(populate_by_name=True)


class VideoPolicyOut(BaseModel):
    clip_pre_s: int
    clip_post_s: int
    clip_retention_days: int
    max_pre_s: int = Field(description="the most seconds before an event the buffer holds")
