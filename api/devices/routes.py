"""Staff manage devices: register, rotate, revoke, disable, configure, see their state."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import Field

from api.deps import PrincipalDep, RuntimeDep
from api.schemas import Strict
from device_bridge.service import BRIDGE
from domain.devices import service
from models import Device, DeviceKind, DeviceStatus

router = APIRouter(prefix="/api/v1/staff", tags=["devices"])


class DeviceIn(Strict):
    kind: DeviceKind
    name: str = Field(min_length=1, max_length=64)
    building_id: int | None = Field(None, gt=0)
    unit_id: int | None = Field(None, gt=0)
    place: str = Field("", max_length=100)
    methods: list[str] | None = Field(None, max_length=8)
    transport: Literal["mqtt", "http_push"] = "mqtt"


class DeviceUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=64)
    place: str | None = Field(None, max_length=100)
    methods: list[str] | None = Field(None, max_length=8)


class StatusIn(Strict):
    status: DeviceStatus


def device_out(d: Device) -> dict[str, Any]:
    return {
        "id": d.id,
        "device_uid": d.device_uid,
        "community_id": d.community_id,
        "kind": d.kind.value,
        "name": d.name,
        "building_id": d.building_id,
        "unit_id": d.unit_id,
        "place": d.place,
        "methods": d.methods,
        "status": d.status.value,
        "online": d.online,
        "last_seen_at": d.last_seen_at,
        "credential_version": d.credential_version,
        "firmware": d.firmware,
        "library_version_acked": d.library_version_acked,
        "transport": d.transport,
    }


def _with_secret(creds: service.NewCredentials) -> dict[str, Any]:
    return {
        **device_out(creds.device),
        "secret": creds.secret,
        "secret_note": "仅显示一次，请立即写入设备 · shown once: configure the device now",
    }


@router.post("/communities/{community_id}/devices", status_code=201)
async def register(
    community_id: int, body: DeviceIn, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    creds = await service.register_device(
        principal,
        runtime.keyring,
        community_id,
        kind=body.kind,
        name=body.name,
        building_id=body.building_id,
        unit_id=body.unit_id,
        place=body.place,
        methods=body.methods,
        transport=body.transport,
    )
    # The broker knows the new login before the secret is shown (dynamic security).
    await runtime.get(BRIDGE).credentials_changed(creds.device.device_uid)
    return _with_secret(creds)


@router.get("/communities/{community_id}/devices")
async def list_devices(community_id: int, principal: PrincipalDep) -> list[dict[str, Any]]:
    return [device_out(d) for d in await service.list_devices(principal, community_id)]


@router.get("/devices/{device_id}")
async def get_device(device_id: int, principal: PrincipalDep) -> dict[str, Any]:
    return device_out(await service.get_device(principal, device_id))


@router.patch("/devices/{device_id}")
async def update(
    device_id: int, body: DeviceUpdate, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    d = await service.configure(
        principal, runtime.bus, device_id, name=body.name, methods=body.methods, place=body.place
    )
    return device_out(d)


@router.post("/devices/{device_id}/rotate")
async def rotate(device_id: int, principal: PrincipalDep, runtime: RuntimeDep) -> dict[str, Any]:
    creds = await service.rotate_credentials(principal, runtime.keyring, runtime.bus, device_id)
    await runtime.get(BRIDGE).credentials_changed(creds.device.device_uid)
    return _with_secret(creds)


@router.post("/devices/{device_id}/status")
async def set_status(
    device_id: int, body: StatusIn, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    device = await service.set_status(principal, runtime.bus, device_id, body.status)
    await runtime.get(BRIDGE).credentials_changed(device.device_uid)
    return device_out(device)
