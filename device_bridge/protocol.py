"""Anxin device protocol v1: topics, limits and message schemas.

The wire format is described in docs/device-protocol.md; this module is its executable
form. Every payload is a JSON object with `"v": 1` and an `id`. Times are integer epoch
milliseconds (integers keep the signed canonical form identical in every language).
Embeddings travel as base64 little-endian float32 for the same reason.

Parsing is done on dicts so that signatures are checked on what was received, not on a
re-serialization: `decode()` gives the dict, `signing.verify()` checks it, then
`parse_command` / `parse_event` / `Ack.model_validate` give typed objects.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from anxin.clock import clock

PROTOCOL_VERSION = 1

# Size limits. A broker-side `message_size_limit` should be set to MAX_MESSAGE_BYTES.
MAX_MESSAGE_BYTES = 512 * 1024
MAX_IMAGE_B64 = 256 * 1024  # capture/snapshot images, base64 characters
MAX_TOKEN_CHARS = 4096  # QR payload (a pass JWT is ~300)
MAX_EMBEDDING_DIM = 1024
MAX_LIBRARY_CHANGES = 500  # per library_sync command; larger syncs are chunked
# A library copied terminal to terminal (section 5a) travels in chunks of at most this much
# plaintext (JSON entries), so a sealed chunk and its envelope fit in one message.
MAX_TRANSFER_CHUNK_PLAIN = 300 * 1024
MAX_TRANSFER_SEALED = (((MAX_TRANSFER_CHUNK_PLAIN + 28) * 4) // 3) + 4
MAX_TRANSFER_CHUNKS = 1_000  # ~100,000 faces: a community's library fits many times over

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # no '/', '+', '#', '$'
DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
MsgId = Annotated[str, Field(min_length=1, max_length=64)]
EpochMs = Annotated[int, Field(ge=0)]
ImageB64 = Annotated[str, Field(max_length=MAX_IMAGE_B64)]
EmbeddingB64 = Annotated[str, Field(max_length=(MAX_EMBEDDING_DIM * 4 * 4) // 3 + 4)]
# An embedding sealed to one terminal (device_bridge/sealing.py): nonce + ciphertext + tag.
SealedEmbedding = Annotated[str, Field(max_length=((MAX_EMBEDDING_DIM * 4 + 28) * 4) // 3 + 4)]
# An X25519 public key, base64url of its 32 raw bytes (43 characters).
PublicKeyB64 = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")]
TransferId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]

DeviceKind = Literal["face_gate", "unit_door", "barrier_gate", "intercom_panel", "fence"]
CHANNELS = ("cmd", "ack", "evt", "state")
Channel = Literal["cmd", "ack", "evt", "state"]


class ProtocolError(ValueError):
    """A message that is not valid protocol v1 (bad JSON, too large, wrong schema)."""


def now_ms() -> int:
    return int(clock.time() * 1000)


def new_id() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------- topics


@dataclass(frozen=True)
class Topics:
    """Topic layout: `{root}/v1/dev/{device_id}/{cmd|ack|evt|state}`."""

    root: str = "anxin"

    def device(self, device_id: str, channel: Channel) -> str:
        return f"{self.root}/v{PROTOCOL_VERSION}/dev/{device_id}/{channel}"

    def cmd(self, device_id: str) -> str:
        return self.device(device_id, "cmd")

    def ack(self, device_id: str) -> str:
        return self.device(device_id, "ack")

    def evt(self, device_id: str) -> str:
        return self.device(device_id, "evt")

    def state(self, device_id: str) -> str:
        return self.device(device_id, "state")

    def all(self, channel: Channel) -> str:
        """Wildcard over every device for one channel (server side)."""
        return self.device("+", channel)

    @staticmethod
    def shared(group: str, topic: str) -> str:
        """Shared subscription: each message goes to one member of `group` (Mosquitto >= 1.6)."""
        return f"$share/{group}/{topic}"

    def parse(self, topic: str) -> tuple[str, Channel] | None:
        """(device_id, channel) for a topic of this root, else None."""
        prefix = f"{self.root}/v{PROTOCOL_VERSION}/dev/"
        if not topic.startswith(prefix):
            return None
        rest = topic[len(prefix) :].split("/")
        if len(rest) != 2 or rest[1] not in CHANNELS or not rest[0]:
            return None
        return rest[0], rest[1]  # type: ignore[return-value]


# ---------------------------------------------------------------- encoding


def encode(msg: dict[str, Any] | BaseModel) -> bytes:
    if isinstance(msg, BaseModel):
        msg = msg.model_dump(mode="json", exclude_none=True)
    data = json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return data


def decode(payload: bytes | bytearray | str) -> dict[str, Any]:
    """JSON object of protocol v1, or ProtocolError. Never raises anything else."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ProtocolError("message too large")
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: JSON nested deeper than the parser goes ("[[[[…").
        raise ProtocolError(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("not a JSON object")
    if obj.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {obj.get('v')!r}")
    return obj


def embedding_to_b64(vec: np.ndarray | list[float]) -> str:
    arr = np.asarray(vec, dtype="<f4").reshape(-1)
    if arr.size > MAX_EMBEDDING_DIM:
        raise ProtocolError("embedding too long")
    return base64.b64encode(arr.tobytes()).decode()


def embedding_from_b64(data: str) -> np.ndarray:
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise ProtocolError("embedding is not base64") from None
    if len(raw) % 4 or not raw or len(raw) > MAX_EMBEDDING_DIM * 4:
        raise ProtocolError("embedding has a bad length")
    arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ProtocolError("embedding has non-finite values")
    return arr


# ---------------------------------------------------------------- models


class _Msg(BaseModel):
    # Unknown fields are ignored so that v1 can grow optional fields without breaking devices.
    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = 1  # PROTOCOL_VERSION
    id: MsgId
    device_id: DeviceId
    sig: str | None = None


# Commands (server -> device). `id` is the command id; acks refer to it.

CommandOp = Literal[
    "open", "library_sync", "revoke_pass", "config", "reboot", "library_export", "library_import"
]


class OpenArgs(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    door: int = Field(1, ge=1, le=16)
    hold_s: float | None = Field(None, gt=0, le=600)  # None = device's relock setting
    reason: str = Field("", max_length=64)  # "face", "card", "remote", "visitor" ... for logs
    person_id: str | None = Field(None, max_length=64)
    event_id: str | None = Field(None, max_length=64)  # the event this decision answers


class LibraryChange(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    version: int = Field(ge=1)  # library version after this change
    op: Literal["add", "remove"]
    person_id: str = Field(min_length=1, max_length=64)
    # For an add: the template sealed to this terminal (sealing.py); the server never
    # sends `embedding` in clear, and a terminal refuses one ("unsealed").
    sealed: SealedEmbedding | None = None
    embedding: EmbeddingB64 | None = None
    valid_until: EpochMs | None = None  # device stops matching after this time


class LibrarySyncArgs(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    base_version: int = Field(ge=0)  # device must be at this version (ignored if full)
    version: int = Field(ge=0)  # version after applying
    full: bool = False  # replace the whole library
    current: bool = True  # after this, the device is up to date with the server
    changes: list[LibraryChange] = Field(default_factory=list, max_length=MAX_LIBRARY_CHANGES)


class RevokePassArgs(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    pass_ids: list[str] = Field(min_length=1, max_length=1000)
    until: EpochMs | None = None  # forget the revocation after this (the pass's exp)


class PassKeyArg(BaseModel):
    """A public key a gate accepts visitor passes signed with (after a key rotation)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    kid: str = Field("", max_length=16)  # the token header's kid ("" = none)
    public_key_pem: str = Field(min_length=1, max_length=1000)
    until: EpochMs | None = None  # forget the key after this (its last pass expired)


class ConfigArgs(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    # Replaces the gate's pass keys (the current key and those of unexpired older passes).
    pass_keys: list[PassKeyArg] | None = Field(None, max_length=8)
    relock_s: float | None = Field(None, gt=0, le=600)
    heartbeat_s: float | None = Field(None, ge=1, le=3600)
    match_mode: Literal["local", "server"] | None = None
    match_threshold: float | None = Field(None, gt=0, lt=1)
    held_open_alarm_s: float | None = Field(None, gt=0, le=3600)


class RebootArgs(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LibraryExportArgs(BaseModel):
    """To a peer terminal: seal your library to the replacement's public key and send it
    up as `library_export` events (section 5a)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    transfer_id: TransferId
    to_device_id: DeviceId
    to_public_key: PublicKeyB64


class TransferChunk(BaseModel):
    """One sealed chunk of a library copied terminal to terminal; the server cannot open it."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    transfer_id: TransferId
    library_version: int = Field(ge=0)
    chunk: int = Field(ge=0, lt=MAX_TRANSFER_CHUNKS)
    chunks: int = Field(ge=1, le=MAX_TRANSFER_CHUNKS)
    count: int = Field(ge=0, le=100_000)  # entries in this chunk
    epk: PublicKeyB64  # the sender's ephemeral X25519 key for this chunk
    sealed: str = Field(min_length=1, max_length=MAX_TRANSFER_SEALED)


class LibraryImportArgs(TransferChunk):
    """To the replacement: one chunk of a peer's library, relayed as received."""

    from_device_id: DeviceId


class _Command(_Msg):
    issued_at: EpochMs
    expires_at: EpochMs


class OpenCommand(_Command):
    op: Literal["open"] = "open"
    args: OpenArgs = OpenArgs()


class LibrarySyncCommand(_Command):
    op: Literal["library_sync"] = "library_sync"
    args: LibrarySyncArgs


class RevokePassCommand(_Command):
    op: Literal["revoke_pass"] = "revoke_pass"
    args: RevokePassArgs


class ConfigCommand(_Command):
    op: Literal["config"] = "config"
    args: ConfigArgs = ConfigArgs()


class RebootCommand(_Command):
    op: Literal["reboot"] = "reboot"
    args: RebootArgs = RebootArgs()


class LibraryExportCommand(_Command):
    op: Literal["library_export"] = "library_export"
    args: LibraryExportArgs


class LibraryImportCommand(_Command):
    op: Literal["library_import"] = "library_import"
    args: LibraryImportArgs


Command = Annotated[
    OpenCommand
    | LibrarySyncCommand
    | RevokePassCommand
    | ConfigCommand
    | RebootCommand
    | LibraryExportCommand
    | LibraryImportCommand,
    Field(discriminator="op"),
]
COMMAND_ARGS: dict[str, type[BaseModel]] = {
    "open": OpenArgs,
    "library_sync": LibrarySyncArgs,
    "revoke_pass": RevokePassArgs,
    "config": ConfigArgs,
    "reboot": RebootArgs,
    "library_export": LibraryExportArgs,
    "library_import": LibraryImportArgs,
}

# Acks (device -> server): the ack, not the publish, is what makes a command done.

RefusalReason = Literal[
    "bad_signature",  # HMAC does not match
    "expired",  # now > expires_at
    "not_yet_valid",  # issued_at too far in the device's future (clock skew)
    "replayed",  # command id already seen
    "wrong_device",  # device_id is not this device
    "malformed",  # schema violation
    "unsupported",  # op not supported by this device kind
    "version_mismatch",  # library_sync base_version != device version
    "unsealed",  # library_sync carried a face template in clear
    "no_library",  # library_export: this terminal has no synced library to give
    "transfer_unreadable",  # library_import: a chunk that does not open with our key
    "busy",
]


class Ack(_Msg):
    cmd_id: MsgId
    ts: EpochMs
    result: Literal["done", "refused", "failed"]
    reason: str | None = Field(None, max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict)


# Events (device -> server). `id` is unique per device; redelivery keeps the id.


class _Event(_Msg):
    ts: EpochMs  # when it happened on the device (not when it was sent)
    seq: int = Field(0, ge=0)  # per-device counter, for ordering and gap detection
    door: int = Field(1, ge=1, le=16)
    # Set by the device on an event it kept while offline and sends after reconnecting: the
    # server logs such a door request and never acts on it late (section 6).
    buffered: bool = False


# Events that ask the server to open a door now (a qr_scan only when the gate left the check
# to the server): old, future-dated or buffered ones are logged and never opened for.
DOOR_REQUESTS = frozenset(
    {"face_capture", "card_swipe", "code_entry", "plate_read", "intercom_call", "qr_scan"}
)


def asks_to_open(event: Any) -> bool:
    if event.type == "qr_scan":
        return bool(event.local_result == "unchecked")
    return event.type in DOOR_REQUESTS


class FaceCapture(_Event):
    type: Literal["face_capture"] = "face_capture"
    mode: Literal["local", "server"]
    person_id: str | None = Field(None, max_length=64)  # local match result
    score: float | None = Field(None, ge=-1, le=1)
    library_version: int = 0
    library_stale: bool = False  # device has not synced since it reconnected
    embedding: EmbeddingB64 | None = None
    image: ImageB64 | None = None  # JPEG, base64: face crop or full frame
    liveness: float | None = Field(None, ge=0, le=1)


class CardSwipe(_Event):
    type: Literal["card_swipe"] = "card_swipe"
    card_no: str = Field(min_length=1, max_length=32)


class QrScan(_Event):
    type: Literal["qr_scan"] = "qr_scan"
    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)
    local_result: Literal["accepted", "rejected", "unchecked"] = "unchecked"
    reason: str | None = Field(None, max_length=64)
    pass_id: str | None = Field(None, max_length=64)
    image: ImageB64 | None = None  # JPEG, base64: the holder's photo, where the gate has a camera


class CodeEntry(_Event):
    type: Literal["code_entry"] = "code_entry"
    room: str = Field(max_length=32)
    # The keyed code sealed to the server (sealing.py, purpose "code"): never in clear.
    code_sealed: str = Field(min_length=1, max_length=128)


class PlateRead(_Event):
    type: Literal["plate_read"] = "plate_read"
    plate: str = Field(min_length=1, max_length=16)
    confidence: float | None = Field(None, ge=0, le=1)
    direction: Literal["in", "out"] = "in"
    image: ImageB64 | None = None


class IntercomCall(_Event):
    type: Literal["intercom_call"] = "intercom_call"
    room: str = Field(min_length=1, max_length=32)


class DoorState(_Event):
    type: Literal["door_state"] = "door_state"
    state: Literal["opened", "closed", "held_open", "forced_open"]
    cmd_id: str | None = Field(None, max_length=64)  # command that opened it, if any
    pass_id: str | None = Field(None, max_length=64)  # pass that opened it, if any


class FenceAlarm(_Event):
    type: Literal["fence_alarm"] = "fence_alarm"
    zone: str = Field(min_length=1, max_length=32)
    alarm: Literal["intrusion", "cut", "tamper", "cleared"] = "intrusion"


class PassUsed(_Event):
    type: Literal["pass_used"] = "pass_used"
    pass_id: str = Field(min_length=1, max_length=64)
    uses: int = Field(ge=1)  # local count including this use
    plate: str | None = Field(None, max_length=16)


class LibraryExport(TransferChunk, _Event):
    """One chunk of this terminal's library, sealed to a replacement terminal (section 5a)."""

    type: Literal["library_export"] = "library_export"
    to_device_id: DeviceId


EventType = Literal[
    "face_capture",
    "card_swipe",
    "qr_scan",
    "code_entry",
    "plate_read",
    "intercom_call",
    "door_state",
    "fence_alarm",
    "pass_used",
    "library_export",
]
Event = Annotated[
    FaceCapture
    | CardSwipe
    | QrScan
    | CodeEntry
    | PlateRead
    | IntercomCall
    | DoorState
    | FenceAlarm
    | PassUsed
    | LibraryExport,
    Field(discriminator="type"),
]

# State (device -> server, retained). Last will = the same shape with status "offline".


class DeviceState(_Msg):
    ts: EpochMs
    status: Literal["online", "offline"]
    kind: DeviceKind | None = None
    firmware: str | None = Field(None, max_length=32)
    library_version: int = 0
    match_mode: Literal["local", "server"] | None = None
    buffered_events: int = 0
    uptime_s: int = 0
    reason: str | None = Field(None, max_length=32)  # offline: "lwt", "shutdown"
    # The terminal's X25519 public key for receiving a library from a peer (section 5a).
    library_key: PublicKeyB64 | None = None


_command_adapter: TypeAdapter[Any] = TypeAdapter(Command)
_event_adapter: TypeAdapter[Any] = TypeAdapter(Event)


AnyCommand = (
    OpenCommand
    | LibrarySyncCommand
    | RevokePassCommand
    | ConfigCommand
    | RebootCommand
    | LibraryExportCommand
    | LibraryImportCommand
)


def parse_command(obj: dict[str, Any]) -> AnyCommand:
    try:
        return _command_adapter.validate_python(obj)
    except ValueError as exc:
        raise ProtocolError(f"bad command: {exc}") from None


def parse_event(obj: dict[str, Any]) -> Any:
    """One of the event classes (FaceCapture, CardSwipe, ...), or ProtocolError."""
    try:
        return _event_adapter.validate_python(obj)
    except ValueError as exc:
        raise ProtocolError(f"bad event: {exc}") from None


def parse_ack(obj: dict[str, Any]) -> Ack:
    try:
        return Ack.model_validate(obj)
    except ValueError as exc:
        raise ProtocolError(f"bad ack: {exc}") from None


def parse_state(obj: dict[str, Any]) -> DeviceState:
    try:
        return DeviceState.model_validate(obj)
    except ValueError as exc:
        raise ProtocolError(f"bad state: {exc}") from None


def json_schemas() -> dict[str, Any]:
    """JSON Schema of every message, for the docs and for device vendors."""
    return {
        "command": _command_adapter.json_schema(),
        "ack": Ack.model_json_schema(),
        "event": _event_adapter.json_schema(),
        "state": DeviceState.model_json_schema(),
    }


if __name__ == "__main__":  # python -m device_bridge.protocol > docs/device-protocol.schema.json
    print(json.dumps(json_schemas(), indent=2, ensure_ascii=False))
