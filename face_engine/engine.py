"""FaceEngine: decode -> detect -> quality -> align -> embed, plus liveness and galleries.

Models load lazily, once per process and backend, under a lock; every method is
synchronous and thread-safe (onnxruntime sessions are), and the `a*` variants run it on
a small worker pool so async routes never block the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import liveness, quality
from .align import align_face, estimate_pose
from .backends import Backend, load_backend
from .gallery import Gallery
from .imaging import DEFAULT_MAX_PIXELS, decode_image
from .types import (
    DetectedFace,
    EnrollmentAnalysis,
    LivenessVerdict,
    MatchResult,
    ProbeQuality,
    QualityReport,
)

log = logging.getLogger("anxin.face_engine")


@dataclass(frozen=True, slots=True)
class BackendDefaults:
    threshold: float
    margin: float


# Cosine-similarity operating points measured on the offline photos (docs/face-engine.md,
# bench/face_engine.py). ArcFace: genuine pairs 0.51-0.91, impostors <= 0.37 over ~2,900
# pairs. SFace separates less well: genuine 0.52-0.85, impostor FAR 2% at 0.40 and 0.4%
# at 0.50 (mostly tiny group-photo faces), so its threshold is higher.
BACKEND_DEFAULTS: dict[str, BackendDefaults] = {
    "insightface": BackendDefaults(threshold=0.40, margin=0.08),
    "sface": BackendDefaults(threshold=0.50, margin=0.08),
}

# Two workers: the machines have two cores and each session uses up to two threads
# without spinning, so more workers would only queue inside onnxruntime.
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="face")
        return _executor


async def run_in_worker(fn: Any, *args: Any, **kwargs: Any) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(), partial(fn, *args, **kwargs))


class FaceEngine:
    """One backend (detector + recogniser) with the app's thresholds."""

    def __init__(
        self,
        backend: str = "insightface",
        *,
        threshold: float | None = None,
        margin: float | None = None,
        model_dir: str = "",
        data_dir: Path | None = None,
        max_bytes: int | None = 4 * 1024 * 1024,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        defaults = BACKEND_DEFAULTS.get(backend)
        if defaults is None:
            raise ValueError(f"unknown face backend {backend!r}: use 'insightface' or 'sface'")
        self.backend_name = backend
        self.threshold = defaults.threshold if threshold is None else float(threshold)
        self.margin = defaults.margin if margin is None else float(margin)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self._model_dir = model_dir
        self._data_dir = data_dir
        self._backend: Backend | None = None
        self._lock = threading.Lock()

    # -- models ------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = load_backend(
                        self.backend_name, model_dir=self._model_dir, data_dir=self._data_dir
                    )
                    log.info(
                        "face backend %s loaded: %s", self.backend_name, self._backend.model_info
                    )
        return self._backend

    @property
    def dim(self) -> int:
        return self.backend.dim

    def warmup(self) -> None:
        img = np.full((480, 640, 3), 127, dtype=np.uint8)
        self.backend.detect(img)
        self.backend.embed_aligned(img[:112, :112])

    # -- primitives --------------------------------------------------------------
    def decode(self, data: bytes) -> np.ndarray:
        return decode_image(data, self.max_bytes, self.max_pixels)

    def detect(self, img: np.ndarray) -> list[DetectedFace]:
        """Faces sorted by area, largest first."""
        return self.backend.detect(img)

    def align(self, img: np.ndarray, face: DetectedFace) -> np.ndarray:
        return align_face(img, face.landmarks5)

    def embed(self, img: np.ndarray, face: DetectedFace) -> np.ndarray:
        """L2-normalised float32 embedding of one detected face."""
        return self.backend.embed_aligned(align_face(img, face.landmarks5))

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.dot(np.ravel(a), np.ravel(b)))

    def new_gallery(self) -> Gallery:
        return Gallery(self.dim, self.threshold, self.margin)

    def is_match(self, a: np.ndarray, b: np.ndarray) -> bool:
        return self.similarity(a, b) >= self.threshold

    # -- app-level operations ------------------------------------------------------
    def analyze_enrollment(self, image_bytes: bytes) -> EnrollmentAnalysis:
        """Decode (FaceEngineError on bad files), run the quality gate, embed the single face."""
        img = self.decode(image_bytes)
        return self.analyze_enrollment_image(img)

    def analyze_enrollment_image(self, img: np.ndarray) -> EnrollmentAnalysis:
        report = quality.assess(img, self.detect(img))
        if not report.ok:
            zh, en = quality.message(report.reason or "")
            return EnrollmentAnalysis(report, {}, zh, en)
        assert report.face is not None  # an ok report has its face
        emb = self.embed(img, report.face)
        return EnrollmentAnalysis(report, {self.backend_name: emb}, "照片合格", "photo accepted")

    def embed_probe(self, image_bytes: bytes) -> tuple[np.ndarray, ProbeQuality] | None:
        """For gate captures: the largest face's embedding and how trustworthy it is.

        None when no face was found. Quality is reported, not enforced: the gate decides
        (e.g. only open the door on `usable` probes, but log all of them).
        """
        img = self.decode(image_bytes)
        return self.embed_probe_image(img)

    def embed_probe_image(self, img: np.ndarray) -> tuple[np.ndarray, ProbeQuality] | None:
        faces = self.detect(img)
        if not faces:
            return None
        face = faces[0]
        report = quality.assess(img, [face])  # the largest face only: crowds at gates
        emb = self.embed(img, face)
        return emb, ProbeQuality(report.ok, report.reason, report, float(min(img.shape[:2])))

    def observe_frame(self, img: np.ndarray) -> liveness.FrameObservation:
        faces = quality.significant_faces(self.detect(img))
        if len(faces) != 1:
            return liveness.FrameObservation(face_count=len(faces))
        face = faces[0]
        return liveness.FrameObservation(1, estimate_pose(face.landmarks5), self.embed(img, face))

    def check_liveness(
        self, frames: list[bytes], actions: list[str], mirrored: bool = False
    ) -> LivenessVerdict:
        """Frames are JPEG/PNG bytes in capture order; actions in the order they were asked."""
        if len(frames) > liveness.MAX_FRAMES:
            return liveness.evaluate([liveness.FrameObservation(0)] * len(frames), actions, 1.0)
        images = [self.decode(f) for f in frames]
        return self.check_liveness_images(images, actions, mirrored)

    def check_liveness_images(
        self, images: list[np.ndarray], actions: list[str], mirrored: bool = False
    ) -> LivenessVerdict:
        observed = [self.observe_frame(img) for img in images]
        return liveness.evaluate(observed, actions, self.threshold, mirrored)

    # -- async wrappers --------------------------------------------------------------
    async def aanalyze_enrollment(self, image_bytes: bytes) -> EnrollmentAnalysis:
        return await run_in_worker(self.analyze_enrollment, image_bytes)

    async def aembed_probe(self, image_bytes: bytes) -> tuple[np.ndarray, ProbeQuality] | None:
        return await run_in_worker(self.embed_probe, image_bytes)

    async def acheck_liveness(
        self, frames: list[bytes], actions: list[str], mirrored: bool = False
    ) -> LivenessVerdict:
        return await run_in_worker(self.check_liveness, frames, actions, mirrored)

    async def awarmup(self) -> None:
        await run_in_worker(self.warmup)


class DualGallery:
    """One gallery per backend; a match needs every backend to pick the same person."""

    def __init__(self, galleries: dict[str, Gallery]) -> None:
        self.galleries = galleries

    def __len__(self) -> int:
        return min(len(g) for g in self.galleries.values())

    def add(self, person_id: str, embeddings: dict[str, np.ndarray]) -> None:
        missing = set(self.galleries) - set(embeddings)
        if missing:
            raise ValueError(f"missing embeddings for {sorted(missing)}")
        for name, gallery in self.galleries.items():
            gallery.add(person_id, embeddings[name])

    def remove(self, person_id: str) -> int:
        return min(g.remove(person_id) for g in self.galleries.values())

    def replace(self, person_id: str, embeddings: dict[str, np.ndarray]) -> None:
        self.remove(person_id)
        self.add(person_id, embeddings)

    def search(self, embeddings: dict[str, np.ndarray]) -> MatchResult:
        results = {name: g.search(embeddings[name]) for name, g in self.galleries.items()}
        primary = next(iter(results.values()))
        if not all(r.matched for r in results.values()):
            failed = next(r for r in results.values() if not r.matched)
            return MatchResult(
                None, primary.score, primary.second_score, failed.reason, primary.candidate_id
            )
        if len({r.person_id for r in results.values()}) != 1:
            return MatchResult(
                None, primary.score, primary.second_score, "backends_disagree", primary.candidate_id
            )
        return primary


class DualEngine:
    """High-security mode: ArcFace and SFace must both match the same person.

    The quality gate and liveness run on the primary engine; embeddings come from both,
    keyed by backend name, and DualGallery.search demands agreement.
    """

    def __init__(self, primary: FaceEngine, secondary: FaceEngine) -> None:
        self.primary = primary
        self.secondary = secondary
        self.engines = {primary.backend_name: primary, secondary.backend_name: secondary}
        self.backend_name = f"dual:{primary.backend_name}+{secondary.backend_name}"
        self.threshold = primary.threshold
        self.margin = primary.margin

    @property
    def dim(self) -> int:
        return self.primary.dim

    def warmup(self) -> None:
        for engine in self.engines.values():
            engine.warmup()

    def decode(self, data: bytes) -> np.ndarray:
        return self.primary.decode(data)

    def detect(self, img: np.ndarray) -> list[DetectedFace]:
        return self.primary.detect(img)

    def embed(self, img: np.ndarray, face: DetectedFace) -> np.ndarray:
        return self.primary.embed(img, face)

    def embed_all(self, img: np.ndarray) -> dict[str, np.ndarray] | None:
        """Each backend embeds its own largest face (their boxes differ slightly)."""
        out = {}
        for name, engine in self.engines.items():
            faces = engine.detect(img)
            if not faces:
                return None
            out[name] = engine.embed(img, faces[0])
        return out

    def new_gallery(self) -> DualGallery:
        return DualGallery({name: e.new_gallery() for name, e in self.engines.items()})

    def analyze_enrollment(self, image_bytes: bytes) -> EnrollmentAnalysis:
        img = self.decode(image_bytes)
        first = self.primary.analyze_enrollment_image(img)
        if not first.ok:
            return first
        second = self.secondary.analyze_enrollment_image(img)
        if not second.ok:
            return second
        return EnrollmentAnalysis(
            first.quality,
            {**first.embeddings, **second.embeddings},
            first.message_zh,
            first.message_en,
        )

    def embed_probe(self, image_bytes: bytes) -> tuple[dict[str, np.ndarray], ProbeQuality] | None:
        img = self.decode(image_bytes)
        probe = self.primary.embed_probe_image(img)
        if probe is None:
            return None
        embeddings = self.embed_all(img)
        if embeddings is None:
            return None
        return embeddings, probe[1]

    def check_liveness(
        self, frames: list[bytes], actions: list[str], mirrored: bool = False
    ) -> LivenessVerdict:
        return self.primary.check_liveness(frames, actions, mirrored)

    async def aanalyze_enrollment(self, image_bytes: bytes) -> EnrollmentAnalysis:
        return await run_in_worker(self.analyze_enrollment, image_bytes)

    async def aembed_probe(self, image_bytes: bytes):
        return await run_in_worker(self.embed_probe, image_bytes)

    async def acheck_liveness(
        self, frames: list[bytes], actions: list[str], mirrored: bool = False
    ) -> LivenessVerdict:
        return await run_in_worker(self.check_liveness, frames, actions, mirrored)


_engines: dict[tuple, FaceEngine | DualEngine] = {}
_engines_lock = threading.RLock()


def _engine_for(settings: Any, backend: str) -> FaceEngine:
    explicit: set[str] = getattr(settings, "model_fields_set", set())
    threshold = margin = None
    if backend == settings.face_backend:
        # The settings' threshold applies to the configured backend when set explicitly;
        # otherwise each backend uses its own measured operating point.
        if "face_match_threshold" in explicit:
            threshold = settings.face_match_threshold
        if "face_match_margin" in explicit:
            margin = settings.face_match_margin
    key = (
        backend,
        threshold,
        margin,
        settings.face_model_dir if backend == "insightface" else "",
        str(settings.data_dir),
        settings.max_upload_bytes,
    )
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = FaceEngine(
                backend,
                threshold=threshold,
                margin=margin,
                model_dir=settings.face_model_dir if backend == "insightface" else "",
                data_dir=Path(settings.data_dir),
                max_bytes=settings.max_upload_bytes,
            )
            _engines[key] = engine
        return engine  # type: ignore[return-value]


def get_engine(settings: Any = None) -> FaceEngine | DualEngine:
    """The process-wide engine for these settings (models load on first use)."""
    if settings is None:
        from anxin.settings import get_settings

        settings = get_settings()
    primary = _engine_for(settings, settings.face_backend)
    if not settings.face_high_security:
        return primary
    other = "sface" if settings.face_backend == "insightface" else "insightface"
    key = ("dual", id(primary), other)
    with _engines_lock:
        dual = _engines.get(key)
        if dual is None:
            dual = DualEngine(primary, _engine_for(settings, other))
            _engines[key] = dual
        return dual


def quality_message(report: QualityReport) -> tuple[str, str]:
    return quality.message(report.reason or "")
