"""Device administration: register (secret shown once), rotate, revoke, disable, configure."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from tortoise.transactions import in_transaction

from anxin.bus import Bus
from anxin.channels import DEVICE_CHANGED
from anxin.clock import utcnow
from anxin.crypto import KeyRing
from anxin.errors import Invalid, conflict, not_found
from auth.permissions import Action, Principal, authorize, scoped_row
from domain import audit
from models import (
    AccessMethod,
    Building,
    CommandStatus,
    Device,
    DeviceCommand,
    DeviceKind,
    DeviceStatus,
    FaceDelivery,
    FaceDeliveryState,
    ReplacementState,
    TerminalReplacement,
    TransferChunk,
    Unit,
)

# Ways in each kind of device can offer (a fence opens nothing).
KIND_METHODS: dict[DeviceKind, frozenset[str]] = {
    DeviceKind.FACE_GATE: frozenset({"face", "card", "code", "remote", "qr", "intercom"}),
    DeviceKind.UNIT_DOOR: frozenset({"face", "card", "code", "remote", "qr", "intercom"}),
    DeviceKind.BARRIER_GATE: frozenset({"plate", "qr", "remote"}),
    DeviceKind.INTERCOM_PANEL: frozenset({"code", "intercom", "qr", "remote", "card"}),
    DeviceKind.FENCE: frozenset(),
}
# Ways in a resident has besides their face (intercom and passes are a visitor's).
RESIDENT_ALTERNATIVES = frozenset({"card", "code", "remote"})
DEFAULT_METHODS: dict[DeviceKind, list[str]] = {
    DeviceKind.FACE_GATE: ["face", "card", "qr", "remote"],
    DeviceKind.UNIT_DOOR: ["face", "card", "code", "remote", "qr"],
    DeviceKind.BARRIER_GATE: ["plate", "qr", "remote"],
    DeviceKind.INTERCOM_PANEL: ["code", "intercom", "qr", "remote"],
    DeviceKind.FENCE: [],
}


def secret_ad(device: Device) -> bytes:
    """Associated data binding a device's encrypted secret to its uid (a row copied onto
    another device does not decrypt)."""
    return f"device-secret:{device.device_uid}".encode()


@dataclass
class NewCredentials:
    device: Device
    secret: str  # shown once; only its encrypted form is stored


def validate_methods(kind: DeviceKind, methods: list[str]) -> list[str]:
    """Refuse configurations a door cannot offer, and any face-only door: face entry is
    lawful only where residents can choose another way in (PIPL; SPC 2021 provision)."""
    known = {m.value for m in AccessMethod} & KIND_METHODS[kind]
    unknown = sorted(set(methods) - known)
    if unknown:
        raise Invalid(
            "device_methods_invalid",
            "该设备不支持所选通行方式",
            "the device kind does not support these methods",
            {"methods": unknown},
        )
    # Intercom and passes let visitors in; a resident without a face needs a way of
    # their own, so face + intercom (or + pass) is face-only for residents.
    if "face" in methods and not set(methods) & RESIDENT_ALTERNATIVES:
        raise Invalid(
            "face_only_refused",
            "刷脸不能是住户唯一的通行方式，请同时开启刷卡、密码或手机开门",
            "a door may not be face-only for residents: enable card, code or app too",
            {"methods": sorted(set(methods)), "need_one_of": sorted(RESIDENT_ALTERNATIVES)},
        )
    return sorted(set(methods))


async def _place(
    community_id: int, building_id: int | None, unit_id: int | None
) -> tuple[int | None, int | None]:
    if unit_id is not None:
        unit = await Unit.get_or_none(id=unit_id, community_id=community_id)
        if unit is None:
            raise not_found("unit")
        return unit.building_id, unit.id
    if building_id is not None and not await Building.exists(
        id=building_id, community_id=community_id
    ):
        raise not_found("building")
    return building_id, None


async def register_device(
    principal: Principal,
    keyring: KeyRing,
    community_id: int,
    *,
    kind: DeviceKind,
    name: str,
    building_id: int | None,
    unit_id: int | None,
    place: str,
    methods: list[str] | None,
    transport: str = "mqtt",
) -> NewCredentials:
    authorize(principal, Action.DEVICE_MANAGE, community_id)
    if kind == DeviceKind.UNIT_DOOR and unit_id is None:
        raise Invalid("unit_required", "单元门须指定所属单元", "a unit door needs its unit")
    building_id, unit_id = await _place(community_id, building_id, unit_id)
    methods = validate_methods(kind, DEFAULT_METHODS[kind] if methods is None else methods)
    secret = secrets.token_urlsafe(32)
    device = Device(
        device_uid=f"ax-{secrets.token_hex(8)}",
        community_id=community_id,
        kind=kind,
        name=name,
        building_id=building_id,
        unit_id=unit_id,
        place=place,
        methods=methods,
        transport=transport,
    )
    device.secret_enc = keyring.encrypt(secret.encode(), secret_ad(device))
    await device.save()
    await audit.record(
        "device.registered",
        **principal.audit_actor(),
        community_id=community_id,
        target_type="device",
        target_id=device.id,
        details={"uid": device.device_uid, "kind": kind.value, "methods": methods},
    )
    return NewCredentials(device, secret)


async def _scoped(principal: Principal, device_id: int, action: Action) -> Device:
    return await scoped_row(principal, action, Device, device_id, "device")


async def rotate_credentials(
    principal: Principal, keyring: KeyRing, bus: Bus, device_id: int
) -> NewCredentials:
    device = await _scoped(principal, device_id, Action.DEVICE_MANAGE)
    if device.status == DeviceStatus.REVOKED:
        raise conflict("device_revoked", "设备已吊销", "device revoked")
    secret = secrets.token_urlsafe(32)
    device.secret_enc = keyring.encrypt(secret.encode(), secret_ad(device))
    device.credential_version += 1
    await device.save(update_fields=["secret_enc", "credential_version"])
    await bus.publish(DEVICE_CHANGED, {"device_uid": device.device_uid})
    await audit.record(
        "device.credentials_rotated",
        **principal.audit_actor(),
        community_id=device.community_id,
        target_type="device",
        target_id=device.id,
        details={"version": device.credential_version},
    )
    return NewCredentials(device, secret)


async def set_status(
    principal: Principal, bus: Bus, device_id: int, status: DeviceStatus
) -> Device:
    device = await _scoped(principal, device_id, Action.DEVICE_MANAGE)
    if device.status == DeviceStatus.REVOKED:
        raise conflict("device_revoked", "设备已吊销", "device revoked")
    if status == DeviceStatus.REVOKED:
        async with in_transaction():
            await end_device(device)
    else:
        device.status = status
        await device.save(update_fields=["status"])
    await bus.publish(DEVICE_CHANGED, {"device_uid": device.device_uid})
    await audit.record(
        f"device.{status.value}",
        **principal.audit_actor(),
        community_id=device.community_id,
        target_type="device",
        target_id=device.id,
    )
    return device


async def end_device(device: Device) -> None:
    """Revocation, everything it ends; call inside the caller's transaction. The broker
    login and the transports' queues follow through the adapter (DEVICE_CHANGED and
    `credentials_changed`)."""
    device.status = DeviceStatus.REVOKED
    device.secret_enc = None  # nothing left to sign with or to authenticate
    device.online = False
    await device.save(update_fields=["status", "secret_enc", "online"])
    # Commands still waiting for its ack will never get one: never executed, now closed.
    await DeviceCommand.filter(device_id=device.id, status=CommandStatus.SENT).update(
        status=CommandStatus.EXPIRED, ack_reason="device_revoked"
    )
    # Faces still owed to it will never be delivered (and no longer hold a server copy).
    await FaceDelivery.filter(device_id=device.id, state=FaceDeliveryState.PENDING).delete()
    open_states = [ReplacementState.EXPORTING, ReplacementState.RELAYING]
    for row in await TerminalReplacement.filter(state__in=open_states):
        if row.new_device_id == device.id:
            await end_replacement(row, ReplacementState.FAILED, "new_terminal_revoked")
        elif row.peer_device_id == device.id and row.state == ReplacementState.EXPORTING:
            await TransferChunk.filter(replacement_id=row.id).delete()
            row.peer_device_id, row.chunks = None, 0  # another peer is asked
            await row.save(update_fields=["peer_device_id", "chunks"])


async def end_replacement(row: TerminalReplacement, state: ReplacementState, error: str) -> None:
    """A terminal replacement ends: its sealed chunks are deleted, whatever the outcome."""
    await TransferChunk.filter(replacement_id=row.id).delete()
    row.state, row.error, row.finished_at = state, error[:64], utcnow()
    await row.save(update_fields=["state", "error", "finished_at"])


async def configure(
    principal: Principal,
    bus: Bus,
    device_id: int,
    *,
    name: str | None,
    methods: list[str] | None,
    place: str | None,
) -> Device:
    device = await _scoped(principal, device_id, Action.DEVICE_MANAGE)
    changes: dict[str, Any] = {}
    if methods is not None:
        device.methods = validate_methods(device.kind, methods)
        changes["methods"] = device.methods
    if name is not None:
        device.name = changes["name"] = name
    if place is not None:
        device.place = changes["place"] = place
    await device.save()
    await bus.publish(DEVICE_CHANGED, {"device_uid": device.device_uid})  # bridge caches rows
    await audit.record(
        "device.configured",
        **principal.audit_actor(),
        community_id=device.community_id,
        target_type="device",
        target_id=device.id,
        details=changes,
    )
    return device


async def list_devices(principal: Principal, community_id: int) -> list[Device]:
    authorize(principal, Action.DEVICE_READ, community_id)
    return await Device.filter(community_id=community_id).order_by("id")


async def get_device(principal: Principal, device_id: int) -> Device:
    return await _scoped(principal, device_id, Action.DEVICE_READ)
