"""A dead face terminal replaced without re-enrollment (edge mode), through the broker on
both backends: staff approve, a peer terminal seals its library to the new terminal's
public key, the server relays what it cannot read, the old terminal's lifecycle ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from anxin.clock import clock
from device_bridge.http_push import HttpDeviceLink
from device_bridge.protocol import (
    LibraryExportArgs,
    LibraryImportArgs,
    embedding_from_b64,
    embedding_to_b64,
)
from device_bridge.sealing import (
    SealError,
    open_with_private_key,
    public_key_b64,
    seal_to_public_key,
    transfer_aad,
)
from device_bridge.service import BRIDGE
from device_bridge.simulator.device import DeviceConfig, SimulatedDevice
from domain.devices.replacement import BUSY, REPLACEMENTS
from domain.faces.library import FACE_LIBRARY
from models import (
    AuditLog,
    Device,
    DeviceCommand,
    FaceDelivery,
    FaceEnrollment,
    FaceRecord,
    ReplacementState,
    StaffRoleName,
    TerminalReplacement,
    TransferChunk,
)
from tests.console_helpers import console_client
from tests.devices import register_device, simulator
from tests.helpers import approved_resident, error_code, make_staff, make_world, staff_headers
from tests.stack import Stack
from tests.test_faces_support import V1, embedding, enroll_and_approve, eventually


def test_a_sealed_chunk_opens_only_with_its_key_and_its_place() -> None:
    mine, other = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    aad = transfer_aad("t-123456", "peer", "new", 7, 0, 1)
    epk, sealed = seal_to_public_key(public_key_b64(mine), b'[{"person_id":"f1"}]', aad)
    assert open_with_private_key(mine, epk, sealed, aad) == b'[{"person_id":"f1"}]'
    with pytest.raises(SealError):
        open_with_private_key(other, epk, sealed, aad)  # the server, or any other terminal
    with pytest.raises(SealError):  # moved to another transfer, version or chunk
        open_with_private_key(mine, epk, sealed, transfer_aad("t-123456", "peer", "new", 7, 1, 2))
    with pytest.raises(SealError):
        seal_to_public_key("A" * 43, b"x", aad)  # a low-order point is no key


def _terminal(device_id: str) -> SimulatedDevice:
    """A terminal that is never started (its outbox keeps what it would send)."""
    return SimulatedDevice(
        DeviceConfig(device_id=device_id, secret=f"secret-{device_id}"),
        mqtt_url="mqtt://127.0.0.1:9",
    )


async def test_a_large_library_travels_in_chunks_and_lands_whole() -> None:
    peer, new, other = _terminal("peer-1"), _terminal("new-1"), _terminal("other-1")
    rng = np.random.default_rng(7)
    entries = [
        {
            "person_id": f"f{i}",
            "embedding": embedding_to_b64(rng.standard_normal(512).astype(np.float32)),
            "valid_until": None,
        }
        for i in range(250)
    ]
    peer.library.replace(entries, 42)  # type: ignore[arg-type]
    export = LibraryExportArgs(
        transfer_id="t-abcdefgh",
        to_device_id="new-1",
        to_public_key=public_key_b64(new.transfer_key),
    )
    assert peer._export_library(export)[1] == "no_library"  # not current since it connected
    peer.library_synced.set()
    result, _, detail = peer._export_library(export)
    assert (result, detail["library_version"], detail["size"]) == ("done", 42, 250)
    events = [e for e in peer.outbox if e["type"] == "library_export"]
    assert len(events) == detail["chunks"] >= 3  # 300 KiB of entries per chunk at most
    fields = ("transfer_id", "library_version", "chunk", "chunks", "count", "epk", "sealed")

    def relayed(evt: dict, **change: object) -> LibraryImportArgs:  # type: ignore[type-arg]
        return LibraryImportArgs(from_device_id="peer-1", **{k: evt[k] for k in fields} | change)

    # Another terminal cannot open them; a tampered chunk does not open either.
    assert other._import_library(relayed(events[0]))[1] == "transfer_unreadable"
    tampered = relayed(events[0], sealed=events[1]["sealed"])
    assert new._import_library(tampered)[1] == "transfer_unreadable"
    # In any order; the library changes only with the last chunk, all at once.
    for evt in reversed(events[1:]):
        assert new._import_library(relayed(evt))[0] == "done"
        assert len(new.library) == 0
    result, _, detail = new._import_library(relayed(events[0]))
    assert (result, detail["library_version"], detail["size"]) == ("done", 42, 250)
    got, sent = new.library.entries(), peer.library.entries()
    assert [e["person_id"] for e in got] == [e["person_id"] for e in sent]
    for a, b in zip(got, sent, strict=True):  # unit vectors, renormalised on arrival
        assert np.allclose(embedding_from_b64(a["embedding"]), embedding_from_b64(b["embedding"]))  # type: ignore[arg-type]


async def test_dead_terminal_replaced_from_a_peer_without_re_enrollment(stack: Stack) -> None:
    world = await make_world(units=1, rooms_per_unit=1)
    cid = world.community.id
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    app = await approved_resident(stack, world.rooms[0], admin_h)
    peer = await register_device(stack, cid, admin_h, kind="face_gate", name="北门")
    old = await register_device(stack, cid, admin_h, kind="face_gate", name="南门")
    library = stack.runtime.get(FACE_LIBRARY)
    replacements = stack.runtime.get(REPLACEMENTS)

    async with simulator(stack, peer) as p:
        async with simulator(stack, old) as o:
            await eventually(lambda: p.library_synced.is_set() and o.library_synced.is_set())
            e = await enroll_and_approve(stack, app, cid, admin_h, "obama")
            pid = f"f{e['id']}"
            await eventually(lambda: pid in p.library and pid in o.library)
            await library.idle(cid)
            # Edge: both terminals acknowledged, the server holds no usable copy any more.
            assert (await FaceEnrollment.get(id=e["id"])).embedding_enc is None
        # The south gate died (its simulator is gone). Its replacement is installed...
        # A terminal of another make that polls over HTTP (section 8).
        new = await register_device(
            stack, cid, admin_h, kind="face_gate", name="南门(新)", transport="http_push"
        )
        # ... but it cannot take over before it has connected and reported its key.
        url = f"{V1}/staff/devices/{old['id']}/replace"
        r = await stack.client.post(url, json={"new_device_id": new["id"]}, headers=admin_h)
        assert r.status_code == 409 and error_code(r) == "replacement_key_unknown"

        async with _http_terminal(stack, new) as n:
            await eventually(lambda: n.library_synced.is_set())
            await library.idle(cid)
            # The ordinary sync cannot fill it: the server has no copy to send.
            assert pid not in n.library
            view = await _library_view(stack, cid, admin_h)
            assert view[new["id"]]["missing_enrollments"] == [e["id"]]

            r = await stack.client.post(
                f"{V1}/staff/devices/{new['id']}/replace",
                json={"new_device_id": new["id"]},
                headers=admin_h,
            )
            assert r.status_code == 422 and error_code(r) == "replacement_device_invalid"

            r = await stack.client.post(
                url,
                json={"new_device_id": new["id"], "reason": "雷击损坏"},
                headers={**admin_h, "Idempotency-Key": "replace-south-1"},
            )
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            assert r.json()["old_device_id"] == old["id"]

            async def done() -> bool:
                row = await TerminalReplacement.get(id=rid)
                return row.state in (ReplacementState.DONE, ReplacementState.FAILED)

            await eventually(done, timeout=15)
            await replacements.idle()
            await library.idle(cid)
            row = await TerminalReplacement.get(id=rid)
            assert (row.state, row.error, row.peer_device_id) == (
                ReplacementState.DONE,
                "",
                peer["id"],
            )
            assert (row.library_version, row.size) == (1, 1)

            # The new terminal holds the face, taken from the peer, sealed end to end: no
            # message the server relayed carried the template in a form it could read.
            assert pid in n.library
            template = p.library.entries()[0]["embedding"]
            assert isinstance(template, str)
            imports = [raw for raw in n.received if b'"library_import"' in raw]
            assert imports and not any(template.encode() in raw for raw in imports)
            exports = [evt for evt in p.sent if evt["type"] == "library_export"]
            assert exports and not any(template in str(evt) for evt in exports)
            assert not await TransferChunk.filter(replacement_id=rid).exists()

            # The sync state shows it acknowledged, nothing missing.
            view = await _library_view(stack, cid, admin_h)
            assert old["id"] not in view
            assert (view[new["id"]]["acked_version"], view[new["id"]]["up_to_date"]) == (1, True)
            assert view[new["id"]]["missing_enrollments"] == []
            delivery = await FaceDelivery.get(enrollment_id=e["id"], device_id=new["id"], op="add")
            assert delivery.state.value == "acked"

            # It recognises the resident from its own library.
            await n.capture_face(embedding=embedding("obama2"))
            assert (await n.wait_opened()).person_id == pid

            # A retry of the same request answers the same; a new one finds the old revoked.
            again = await stack.client.post(
                url,
                json={"new_device_id": new["id"], "reason": "雷击损坏"},
                headers={**admin_h, "Idempotency-Key": "replace-south-1"},
            )
            assert again.status_code == 201 and again.json()["id"] == rid
            r = await stack.client.post(url, json={"new_device_id": new["id"]}, headers=admin_h)
            assert r.status_code == 409 and error_code(r) == "device_revoked"

    # The old terminal's lifecycle ended: revoked, no secret, nothing pending, no key.
    dead = await Device.get(id=old["id"])
    assert (dead.status.value, dead.secret_enc, dead.online) == ("revoked", None, False)
    assert await stack.runtime.get(BRIDGE).doors.key_for(old["device_uid"]) is None  # type: ignore[union-attr]
    assert not await DeviceCommand.filter(device_id=old["id"], status="sent").exists()
    assert not await FaceDelivery.filter(device_id=old["id"], state="pending").exists()
    assert await AuditLog.filter(action="device.replaced", target_id=str(old["id"])).exists()
    assert await FaceRecord.filter(action="library.transferred", device_id=new["id"]).exists()
    listed = (
        await stack.client.get(f"{V1}/staff/communities/{cid}/device-replacements", headers=admin_h)
    ).json()["items"]
    assert [(x["id"], x["state"]) for x in listed] == [(rid, "done")]
    await app.aclose()


async def test_replacement_refusals_and_expiry(stack: Stack) -> None:
    world = await make_world(units=1, rooms_per_unit=1)
    cid = world.community.id
    admin = await make_staff(world.community, StaffRoleName.ADMIN)
    admin_h = await staff_headers(stack, admin)
    guard_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.GUARD))
    old = await register_device(stack, cid, admin_h, kind="face_gate", name="东门")
    new = await register_device(stack, cid, admin_h, kind="face_gate", name="东门(新)")
    barrier = await register_device(stack, cid, admin_h, kind="barrier_gate", name="车闸")
    await Device.filter(id=new["id"]).update(library_key="B" * 43)  # as if it had reported
    url = f"{V1}/staff/devices/{old['id']}/replace"

    r = await stack.client.post(url, json={"new_device_id": new["id"]}, headers=guard_h)
    assert r.status_code == 403
    # The only other face terminal is the new one: nobody can give it the library.
    r = await stack.client.post(url, json={"new_device_id": new["id"]}, headers=admin_h)
    assert r.status_code == 409 and error_code(r) == "no_peer_terminal"
    r = await stack.client.post(
        f"{V1}/staff/devices/{barrier['id']}/replace",
        json={"new_device_id": new["id"]},
        headers=admin_h,
    )
    assert r.status_code == 409 and error_code(r) == "not_a_face_terminal"
    assert (await Device.get(id=old["id"])).status.value == "active"  # nothing changed

    # With a peer that never comes online, the replacement waits, then expires and ends.
    # Approved from the console's devices page this time.
    door = await register_device(stack, cid, admin_h, kind="unit_door", unit_id=world.units[0].id)
    page = f"/console/c/{cid}/devices"
    async with console_client(stack, admin.username) as (console, csrf):
        html = (await console.get(page)).text
        assert f'data-replace="{old["id"]}"' in html and f'value="{new["id"]}"' in html
        r = await console.post(
            f"{page}/{old['id']}/replace",
            data={"new_device_id": str(new["id"]), "reason": "进水", "csrf_token": csrf},
        )
        assert r.status_code == 303, r.text
        (row,) = await TerminalReplacement.filter(old_device_id=old["id"])
        rid = row.id
        html = (await console.get(page)).text
        assert f'data-replacement="{rid}" data-state="exporting"' in html
    await stack.runtime.get(REPLACEMENTS).idle()
    assert (await TerminalReplacement.get(id=rid)).state == ReplacementState.EXPORTING
    # Chunks are kept only from the peer asked, for the terminal named, within their count.
    replacements = stack.runtime.get(REPLACEMENTS)
    await TerminalReplacement.filter(id=rid).update(peer_device_id=door["id"])
    transfer = (await TerminalReplacement.get(id=rid)).transfer_id
    chunk = {"chunk": 0, "chunks": 1, "count": 1, "library_version": 1, "epk": "A" * 43}
    peer_row, old_row = await Device.get(id=door["id"]), await Device.get(id=old["id"])

    async def store(sender: Device, tid: str, to: str, **change: object) -> str:
        return await replacements.store_chunk(sender, tid, to, chunk | {"sealed": "x"} | change)

    assert await store(old_row, transfer, new["device_uid"]) == "transfer_mismatch"
    assert await store(peer_row, transfer, old["device_uid"]) == "transfer_mismatch"
    assert await store(peer_row, transfer, new["device_uid"], chunk=1) == "transfer_mismatch"
    assert await store(peer_row, "no-such-transfer", new["device_uid"]) == "transfer_unknown"
    assert await store(peer_row, transfer, new["device_uid"]) == "stored"
    assert await store(peer_row, transfer, new["device_uid"], sealed="y") == "duplicate"
    clock.advance(timedelta(days=3).total_seconds())
    # While another process holds the replacement's step, this one leaves it alone.
    await stack.runtime.kv.set(f"replacement:{rid}:step", "another-process", 60)
    assert await replacements.advance(rid) is BUSY
    assert (await TerminalReplacement.get(id=rid)).state == ReplacementState.EXPORTING
    await stack.runtime.kv.delete(f"replacement:{rid}:step")
    assert await replacements.tick() == 1
    row = await TerminalReplacement.get(id=rid)
    assert (row.state, row.error) == (ReplacementState.FAILED, "expired")
    assert not await TransferChunk.filter(replacement_id=rid).exists()


@asynccontextmanager
async def _http_terminal(stack: Stack, device: dict) -> AsyncIterator[SimulatedDevice]:  # type: ignore[type-arg]
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stack.app), base_url="http://anxin.test"
    )
    link = HttpDeviceLink(
        "http://anxin.test", device["device_uid"], device["secret"], client=client, poll_wait_s=0.5
    )
    sim = SimulatedDevice(
        DeviceConfig(device_id=device["device_uid"], secret=device["secret"], kind="face_gate"),
        link=link,
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()
        await client.aclose()


async def _library_view(stack: Stack, cid: int, headers: dict[str, str]) -> dict[int, dict]:  # type: ignore[type-arg]
    r = await stack.client.get(f"{V1}/staff/communities/{cid}/face-library", headers=headers)
    assert r.status_code == 200, r.text
    return {d["device_id"]: d for d in r.json()["devices"]}
