"""Faces at the gate: the `face_capture` handler and the face library's state hook. The
galleries (domain/faces/galleries.py) and the library sync (domain/faces/library.py) are
the faces capability's; this adapter decodes the event and calls them.

Local mode (edge): the terminal matched against its own library and sends the opaque
person id and score; the server maps it to the enrollment and re-checks everything that
may have changed since (consent, membership, block, building) with the one access policy.
Server mode (central): the terminal sends an embedding or an image; the server searches
the community's gallery (open set: threshold and margin from settings; in high-security
mode both backends must agree).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import Any

from anxin.runtime import Runtime
from device_bridge.protocol import ProtocolError, embedding_from_b64
from device_bridge.service import BRIDGE, AccessAttempt, DeviceBridge, EventContext
from device_bridge.transport import InboundState
from domain.access.policy import Decision, resident_may_enter
from domain.access.snapshots import snapshot_store
from domain.devices.replacement import REPLACEMENTS
from domain.faces import consent
from domain.faces.galleries import GALLERIES, FaceGalleries
from domain.faces.library import FACE_LIBRARY
from domain.faces.records import record
from face_engine import DualGallery
from face_engine.errors import FaceEngineError
from models import (
    AccessMethod,
    Community,
    Device,
    EnrollmentState,
    FaceEnrollment,
    FaceStoragePolicy,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- the handler


async def _enrollment_for(person_id: str | None, community_id: int) -> FaceEnrollment | None:
    if not person_id:
        return None
    # By person id alone, so the database takes its index: with the community in the
    # query SQLite chose the community index and read every enrollment of a 10,000-face
    # community (74 ms instead of well under 1).
    rows = await FaceEnrollment.filter(person_id=person_id)
    return next(
        (e for e in rows if e.community_id == community_id and e.state == EnrollmentState.APPROVED),
        None,
    )


# Galleries up to this many rows are searched on the event loop (one thread, ~0.7 ms at
# 10,000 on this kind of machine); bigger ones in a worker thread, not to hold the loop.
INLINE_SEARCH_ROWS = 20_000

# A face under this share of the capture's short side: the frame was fine, the person
# stood far off. A face as small in a tiny frame: the capture itself is too small.
FAR_FACE_SHARE = 0.25
# Server match outcomes that say the capture was bad (the guard sees these, not "stranger").
CAPTURE_REFUSALS = {
    "no_face": "face_not_found",
    "probe_no_face": "face_not_found",
    "probe_face_too_small": "face_too_small",
    "probe_face_too_far": "face_too_far",
}


def _small_face(quality: Any) -> str:
    if quality.image_px and quality.report.face_px < FAR_FACE_SHARE * quality.image_px:
        return "probe_face_too_far"
    return "probe_face_too_small"


async def _server_match(
    ctx: EventContext, galleries: FaceGalleries, community: Community
) -> tuple[str | None, float | None, str]:
    """(person_id, score, reason) from the server gallery; edge communities hold none."""
    if community.face_storage_policy != FaceStoragePolicy.CENTRAL:
        return None, None, "no_server_gallery"
    evt = ctx.event
    g = await galleries.gallery(community.id)
    engine = galleries.engine
    if isinstance(g, DualGallery) or (evt.embedding is None and evt.image):
        if not evt.image:
            return None, None, "image_required"
        try:
            probe = await engine.aembed_probe(base64.b64decode(evt.image, validate=True))
        except (FaceEngineError, binascii.Error, ValueError):
            return None, None, "bad_image"
        if probe is None:
            return None, None, "no_face"
        emb, quality = probe
        if not quality.usable and quality.reason == "face_too_small":
            return None, None, _small_face(quality)
        if not quality.usable and quality.reason == "no_face":
            return None, None, "probe_no_face"
        query: Any = (
            emb
            if isinstance(g, DualGallery)
            else (emb if not isinstance(emb, dict) else emb[galleries.settings.face_backend])
        )
    else:
        try:
            query = embedding_from_b64(evt.embedding)
        except ProtocolError:
            return None, None, "bad_embedding"
        if query.shape[0] != g.dim:
            return None, None, "bad_embedding"
    if len(g) <= INLINE_SEARCH_ROWS:
        result = g.search(query)  # ~0.7 ms at 10,000 faces: less than a thread hop
    else:
        result = await asyncio.to_thread(g.search, query)
    return result.person_id, result.score, result.reason


async def on_face_capture(ctx: EventContext) -> AccessAttempt:
    runtime = ctx.bridge.runtime
    galleries = runtime.get(GALLERIES)
    device, evt = ctx.device, ctx.event
    community = await Community.get(id=device.community_id)
    threshold = runtime.settings.face_match_threshold

    if evt.mode == "local" and not evt.library_stale:
        person_id, score = evt.person_id, evt.score
        how = "local"
        if person_id and score is not None and score < threshold:
            person_id, how = None, "local_below_threshold"
    else:
        person_id, score, how = await _server_match(ctx, galleries, community)

    enrollment = await _enrollment_for(person_id, community.id)
    if enrollment is None:
        decision = await resident_may_enter(device, None, AccessMethod.FACE)
        if decision.reason == "unknown_person" and how in CAPTURE_REFUSALS:
            decision.reason = CAPTURE_REFUSALS[how]  # a bad capture, not a stranger
        if person_id:  # the terminal knows a face we removed: make it forget
            runtime.get(FACE_LIBRARY).push_soon(community.id)
    else:
        missing = await consent.missing(
            enrollment.resident_id, community.id, enrollment.storage_policy
        )
        if missing:
            decision = Decision.deny("consent_missing", resident_id=enrollment.resident_id)
        else:
            decision = await resident_may_enter(device, enrollment.resident_id, AccessMethod.FACE)
    decision.score = score
    decision.details["match"] = how

    snapshot_ref = ""
    if evt.image:
        try:
            snapshot_ref = snapshot_store(runtime.settings).save(
                community.id, ctx.event_key, base64.b64decode(evt.image, validate=True)
            )
        except (ValueError, binascii.Error, OSError):
            log.info("snapshot of %s not kept", ctx.event_key)
    await record(
        "match",
        actor_type="device",
        actor_id=device.id,
        community_id=community.id,
        resident_id=enrollment.resident_id if enrollment else None,
        enrollment_id=enrollment.id if enrollment else None,
        device_id=device.id,
        reason=decision.reason,
        details={
            "mode": evt.mode,
            "how": how,
            "score": score,
            "granted": decision.granted,
            "snapshot": bool(snapshot_ref),
        },
    )
    return AccessAttempt(
        AccessMethod.FACE,
        decision,
        snapshot_ref=snapshot_ref,
        person_id=enrollment.person_id if enrollment and decision.granted else None,
    )


async def on_device_state(bridge: DeviceBridge, device: Device, inbound: InboundState) -> None:
    """A terminal's state: the face library catches a (re)connected one up, and a
    replacement waiting for it (as peer or as new terminal) moves on."""
    online = inbound.state.status == "online"
    await bridge.runtime.get(FACE_LIBRARY).on_device_state(
        device, online, inbound.state.library_version
    )
    await bridge.runtime.get(REPLACEMENTS).on_device_state(device, online)


async def on_library_export(ctx: EventContext) -> None:
    """A chunk of a peer's library sealed to a replacement terminal: kept (unreadable
    here) until every chunk is in, then relayed (domain/devices/replacement.py)."""
    e = ctx.event
    outcome = await ctx.bridge.runtime.get(REPLACEMENTS).store_chunk(
        ctx.device,
        e.transfer_id,
        e.to_device_id,
        {
            "chunk": e.chunk,
            "chunks": e.chunks,
            "count": e.count,
            "library_version": e.library_version,
            "epk": e.epk,
            "sealed": e.sealed,
        },
    )
    if outcome not in ("stored", "duplicate"):
        ctx.bridge.reject(outcome, ctx.device.device_uid, f"library_export {e.transfer_id}")


def install(runtime: Runtime) -> None:
    """The face_capture handler and the library state hook (needs BRIDGE and faces)."""
    bridge = runtime.get(BRIDGE)
    bridge.register_event("face_capture", on_face_capture)
    bridge.register_event("library_export", on_library_export)
    bridge.on_state(on_device_state)
