"""Faces at the gate: the `face_capture` handler, per-community galleries for server
matching, and the wiring of the face library sync into the bridge.

Local mode (edge): the terminal matched against its own library and sends the opaque
person id and score; the server maps it to the enrollment and re-checks everything that
may have changed since (consent, membership, block, building) with the one access policy.
Server mode (central): the terminal sends an embedding or an image; the server searches
the community's gallery (open set: threshold and margin from settings; in high-security
mode both backends must agree). Galleries live in memory in every process, loaded from
the encrypted rows at start and kept current from bus messages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from typing import Any

import numpy as np

from anxin.bus import run_subscriber
from anxin.runtime import Runtime
from device_bridge.library_sync import LibrarySync
from device_bridge.protocol import ProtocolError, embedding_from_b64
from device_bridge.service import AccessAttempt, DeviceBridge, EventContext
from device_bridge.snapshots import snapshot_store
from domain.access.policy import Decision, resident_may_enter
from domain.faces import consent
from domain.faces.records import record
from domain.faces.store import decrypt_embeddings
from face_engine import DualGallery, Gallery, get_engine
from face_engine.errors import FaceEngineError
from models import (
    AccessMethod,
    Community,
    EnrollmentState,
    FaceEnrollment,
    FaceStoragePolicy,
)

log = logging.getLogger(__name__)

GALLERY_CHANNEL = "faces.gallery"  # {op: add|remove, community_id, enrollment_id, person_id}
BACKEND_DIMS = {"insightface": 512, "sface": 128}  # shipped models; a model pack may differ


class FaceGalleries:
    """Runtime service "faces": one gallery per central community, in this process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self._galleries: dict[int, Gallery | DualGallery] = {}
        self._loaded: set[int] = set()
        self._load_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def engine(self) -> Any:
        return get_engine(self.settings)

    async def start(self) -> None:
        bus = self.runtime.bus
        self._tasks = [
            asyncio.create_task(run_subscriber(bus, GALLERY_CHANNEL, self._on_gallery)),
        ]
        if self.settings.run_bridge:
            central = await Community.filter(
                face_storage_policy=FaceStoragePolicy.CENTRAL
            ).values_list("id", flat=True)
            for cid in central:
                await self.gallery(cid)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def _new(self) -> Gallery | DualGallery:
        if self.settings.face_high_security:
            return self.engine.new_gallery()
        dim = BACKEND_DIMS.get(self.settings.face_backend, 512)
        return Gallery(dim, self.settings.face_match_threshold, self.settings.face_match_margin)

    async def gallery(self, community_id: int) -> Gallery | DualGallery:
        """The community's gallery, loaded from its encrypted rows on first use."""
        if community_id in self._loaded:
            return self._galleries[community_id]
        async with self._load_lock:
            if community_id not in self._loaded:
                g = self._new()
                keyring = self.runtime.get("bridge").keyring
                rows = await FaceEnrollment.filter(
                    community_id=community_id,
                    state=EnrollmentState.APPROVED,
                    embedding_enc__not_isnull=True,
                    storage_policy=FaceStoragePolicy.CENTRAL.value,
                )
                for e in rows:
                    self._add(g, e.person_id, decrypt_embeddings(keyring, e))
                self._galleries[community_id] = g
                self._loaded.add(community_id)
        return self._galleries[community_id]

    def _add(self, g: Gallery | DualGallery, person_id: str, vecs: dict[str, np.ndarray]) -> None:
        if not vecs:
            return
        if isinstance(g, DualGallery):
            if set(g.galleries) <= set(vecs):
                g.replace(person_id, vecs)
            return
        vec = vecs.get(self.settings.face_backend, next(iter(vecs.values())))
        if vec.shape[0] != g.dim:
            return
        g.replace(person_id, vec)

    async def _on_gallery(self, _: str, msg: dict[str, Any]) -> None:
        cid = int(msg["community_id"])
        if cid not in self._loaded:
            return  # loaded from the rows (already changed) on first use
        g = self._galleries[cid]
        if msg.get("op") == "remove":
            g.remove(str(msg["person_id"]))
            return
        e = await FaceEnrollment.get_or_none(id=int(msg["enrollment_id"]))
        if e is not None and e.state == EnrollmentState.APPROVED:
            self._add(g, e.person_id, decrypt_embeddings(self.runtime.get("bridge").keyring, e))


# ---------------------------------------------------------------- the handler


async def _enrollment_for(person_id: str | None, community_id: int) -> FaceEnrollment | None:
    if not person_id:
        return None
    return await FaceEnrollment.get_or_none(
        person_id=person_id, community_id=community_id, state=EnrollmentState.APPROVED
    )


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
    result = await asyncio.to_thread(g.search, query)
    return result.person_id, result.score, result.reason


async def on_face_capture(ctx: EventContext) -> AccessAttempt:
    runtime = ctx.bridge.runtime
    galleries: FaceGalleries = runtime.get("faces")
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
            runtime.get("face_library").push_soon(community.id)
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


def register(runtime: Runtime, bridge: DeviceBridge) -> None:
    """Wire faces into one process: galleries, library sync, the handler, the state hook."""
    runtime.add("faces", FaceGalleries(runtime))
    sync = runtime.add("face_library", LibrarySync(runtime))
    bridge.register_event("face_capture", on_face_capture)
    bridge.on_state(sync.on_state)
    from domain.faces import service

    service.register_jobs()
