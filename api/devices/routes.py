"""Staff manage devices: register, rotate, revoke, disable, configure, see their state."""

from __future__ import annotations

from anxin.timefmt import local_iso
from api.contract import (
    PAGE_DEFAULT,
    STAFF,
    Cursor,
    Limit,
    Page,
    api_router,
    community_tz,
    errors,
    page_list,
)
from api.deps import PrincipalDep, RuntimeDep
from api.devices.schemas import (
    DeviceIn,
    DeviceOut,
    DeviceUpdate,
    DeviceWithSecret,
    ReplaceIn,
    ReplacementOut,
    StatusIn,
)
from api.idempotency import IdempotencyKey, fingerprint, run_once
from api.schemas import PathId
from device_bridge.service import BRIDGE
from domain.devices import replacement, service
from models import Device, TerminalReplacement

router = api_router("/api/v1/staff", tags=[STAFF])


def device_out(d: Device, tz: str) -> DeviceOut:
    return DeviceOut(
        id=d.id,
        device_uid=d.device_uid,
        community_id=d.community_id,
        kind=d.kind,
        name=d.name,
        building_id=d.building_id,
        unit_id=d.unit_id,
        place=d.place,
        methods=list(d.methods or []),
        status=d.status,
        online=d.online,
        last_seen_at=local_iso(d.last_seen_at, tz),
        timezone=tz,
        credential_version=d.credential_version,
        firmware=d.firmware,
        library_version_acked=d.library_version_acked,
        transport=d.transport,
    )


async def _out(d: Device) -> DeviceOut:
    return device_out(d, await community_tz(d.community_id))


async def _with_secret(creds: service.NewCredentials) -> DeviceWithSecret:
    return DeviceWithSecret(
        **(await _out(creds.device)).model_dump(),
        secret=creds.secret,
        secret_note="仅显示一次，请立即写入设备 · shown once: configure the device now",
    )


@router.post(
    "/communities/{community_id}/devices",
    status_code=201,
    response_model=DeviceWithSecret,
    summary="Register a device; its secret is shown once",
)
async def register_device(
    community_id: PathId, body: DeviceIn, principal: PrincipalDep, runtime: RuntimeDep
) -> DeviceWithSecret:
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
    return await _with_secret(creds)


@router.get(
    "/communities/{community_id}/devices",
    response_model=Page[DeviceOut],
    summary="A community's devices",
)
async def list_devices(
    community_id: PathId,
    principal: PrincipalDep,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[DeviceOut]:
    rows, nxt = page_list(
        await service.list_devices(principal, community_id), cursor, limit, lambda d: d.id
    )
    tz = await community_tz(community_id)
    return Page(items=[device_out(d, tz) for d in rows], next=nxt)


@router.get("/devices/{device_id}", response_model=DeviceOut, summary="One device")
async def get_device(device_id: PathId, principal: PrincipalDep) -> DeviceOut:
    return await _out(await service.get_device(principal, device_id))


@router.patch(
    "/devices/{device_id}",
    response_model=DeviceOut,
    responses=errors(409),
    summary="Rename, move or change a device's methods",
)
async def update_device(
    device_id: PathId, body: DeviceUpdate, principal: PrincipalDep, runtime: RuntimeDep
) -> DeviceOut:
    d = await service.configure(
        principal, runtime.bus, device_id, name=body.name, methods=body.methods, place=body.place
    )
    return await _out(d)


@router.post(
    "/devices/{device_id}/rotate",
    response_model=DeviceWithSecret,
    responses=errors(409),
    summary="New device secret (the old one stops working)",
)
async def rotate_device_secret(
    device_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> DeviceWithSecret:
    creds = await service.rotate_credentials(principal, runtime.keyring, runtime.bus, device_id)
    await runtime.get(BRIDGE).credentials_changed(creds.device.device_uid)
    return await _with_secret(creds)


@router.post(
    "/devices/{device_id}/status",
    response_model=DeviceOut,
    responses=errors(409),
    summary="Activate, disable or revoke a device",
)
async def set_device_status(
    device_id: PathId, body: StatusIn, principal: PrincipalDep, runtime: RuntimeDep
) -> DeviceOut:
    device = await service.set_status(principal, runtime.bus, device_id, body.status)
    await runtime.get(BRIDGE).credentials_changed(device.device_uid)
    return await _out(device)


async def _replacement_out(r: TerminalReplacement) -> ReplacementOut:
    tz = await community_tz(r.community_id)
    return ReplacementOut(
        id=r.id,
        community_id=r.community_id,
        old_device_id=r.old_device_id,
        new_device_id=r.new_device_id,
        peer_device_id=r.peer_device_id,
        state=r.state,
        library_version=r.library_version,
        chunks=r.chunks,
        size=r.size,
        error=r.error,
        reason=r.reason,
        created_at=local_iso(r.created_at, tz),
        expires_at=local_iso(r.expires_at, tz),
        finished_at=local_iso(r.finished_at, tz),
        timezone=tz,
    )


@router.post(
    "/devices/{device_id}/replace",
    status_code=201,
    response_model=ReplacementOut,
    responses=errors(409),
    summary=(
        "替换故障人脸终端 · replace a dead face terminal: the old one is revoked, a peer "
        "terminal copies its library to the new one sealed (no re-enrollment)"
    ),
)
async def replace_device(
    device_id: PathId,
    body: ReplaceIn,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> ReplacementOut:
    async def action() -> ReplacementOut:
        row = await replacement.approve_replacement(
            runtime, principal, device_id, body.new_device_id, body.reason
        )
        old = await Device.get(id=row.old_device_id)
        # The broker drops the old login before we answer; the copy starts in the background.
        await runtime.get(BRIDGE).credentials_changed(old.device_uid)
        runtime.get(replacement.REPLACEMENTS).soon(row.id)
        return await _replacement_out(row)

    return await run_once(
        scope=f"staff:{principal.id}",
        operation="replaceDevice",
        key=idempotency_key,
        request_fingerprint=fingerprint(device_id, body.new_device_id, body.reason),
        action=action,
        status_code=201,
    )


@router.get(
    "/communities/{community_id}/device-replacements",
    response_model=Page[ReplacementOut],
    summary="A community's terminal replacements, newest first",
)
async def list_replacements(
    community_id: PathId,
    principal: PrincipalDep,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[ReplacementOut]:
    rows, nxt = page_list(
        await replacement.list_replacements(principal, community_id),
        cursor,
        limit,
        lambda r: r.id,
        descending=True,
    )
    return Page(items=[await _replacement_out(r) for r in rows], next=nxt)


@router.get(
    "/device-replacements/{replacement_id}",
    response_model=ReplacementOut,
    summary="One terminal replacement and how far it is",
)
async def get_replacement(replacement_id: PathId, principal: PrincipalDep) -> ReplacementOut:
    return await _replacement_out(await replacement.get_replacement(principal, replacement_id))
