"""Per-community face galleries for server matching (central storage), in every process.

Loaded from the encrypted rows on first use (at start where this process handles device
events) and kept current from the bus (a gallery change).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import numpy as np

from anxin.bus import run_subscriber
from anxin.channels import FACES_GALLERY
from anxin.runtime import Key, Runtime
from domain.faces.store import decrypt_embeddings
from face_engine import DualGallery, Gallery, get_engine
from models import Community, EnrollmentState, FaceEnrollment, FaceStoragePolicy

BACKEND_DIMS = {"insightface": 512, "sface": 128}  # shipped models; a model pack may differ


class FaceGalleries:
    """One gallery per central community, in this process (`runtime.get(GALLERIES)`)."""

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
            asyncio.create_task(run_subscriber(bus, FACES_GALLERY, self._on_gallery)),
        ]
        if self.settings.run_bridge:
            central: list[Any] = await Community.filter(
                face_storage_policy=FaceStoragePolicy.CENTRAL
            ).values_list("id", flat=True)
            for cid in central:
                await self.gallery(int(cid))

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
                keyring = self.runtime.keyring
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
            self._add(g, e.person_id, decrypt_embeddings(self.runtime.keyring, e))


GALLERIES: Key[FaceGalleries] = Key("faces")
