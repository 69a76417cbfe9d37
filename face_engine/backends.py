"""The two model families behind one small interface: detect() and embed_aligned()."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import onnxruntime as ort

from . import models
from .align import align_face
from .types import DetectedFace

log = logging.getLogger("anxin.face_engine")

DET_SIZE = 640  # detector input: long side resized to 640 (SCRFD's training size)
DET_THRESHOLD = 0.5
NMS_THRESHOLD = 0.4


class Backend(Protocol):
    name: str
    dim: int
    model_info: dict[str, str]

    def detect(self, img: np.ndarray) -> list[DetectedFace]: ...

    def embed_aligned(self, crop: np.ndarray) -> np.ndarray: ...


def _l2(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n < 1e-12:
        raise ValueError("the recogniser returned an empty embedding")
    return v / n


def _faces(boxes: np.ndarray, kpss: np.ndarray) -> list[DetectedFace]:
    faces = [
        DetectedFace(
            bbox=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            score=float(b[4]),
            landmarks5=np.asarray(k, dtype=np.float32).reshape(5, 2),
        )
        for b, k in zip(boxes, kpss, strict=True)
    ]
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces


class InsightFaceBackend:
    """SCRFD (detection + 5 landmarks) and ArcFace (512-d), through insightface's loaders."""

    name = "insightface"

    def __init__(
        self, detector: Path, recognizer: Path, *, pinned: bool = True, threads: int | None = None
    ) -> None:
        from insightface.model_zoo import get_model  # heavy import, only when used

        if pinned:
            models.verify_model_file(detector)
            models.verify_model_file(recognizer)
        opts = models.session_options(threads)
        provs = models.providers()
        self._det = get_model(str(detector), providers=provs, sess_options=opts)
        self._rec = get_model(str(recognizer), providers=provs, sess_options=opts)
        if type(self._det).__name__ != "SCRFD" or type(self._rec).__name__ != "ArcFaceONNX":
            raise models.ModelIntegrityError(
                f"{detector.name} / {recognizer.name} are not an SCRFD + ArcFace pair"
            )
        self._det.prepare(-1, det_thresh=DET_THRESHOLD, nms_thresh=NMS_THRESHOLD)
        self.dim = int(self._rec.output_shape[-1])
        self.model_info = {"detector": detector.name, "recognizer": recognizer.name}

    def detect(self, img: np.ndarray) -> list[DetectedFace]:
        boxes, kpss = self._det.detect(img, input_size=(DET_SIZE, DET_SIZE))
        if boxes is None or len(boxes) == 0 or kpss is None:
            return []
        return _faces(boxes, kpss)

    def embed_aligned(self, crop: np.ndarray) -> np.ndarray:
        return _l2(self._rec.get_feat(crop))


class SFaceBackend:
    """YuNet (OpenCV's detector, 5 landmarks) and SFace (128-d); Apache-2.0 / MIT."""

    name = "sface"

    def __init__(
        self,
        detector: Path,
        recognizer: Path,
        cache_dir: Path | None,
        *,
        threads: int | None = None,
    ) -> None:
        models.verify_model_file(detector)
        source = models.fixed_sface_model(recognizer, cache_dir)
        opts = models.session_options(threads)
        model = str(source) if isinstance(source, Path) else source
        self._rec = ort.InferenceSession(model, opts, providers=models.providers())
        self._rec_input = self._rec.get_inputs()[0].name
        self.dim = int(self._rec.get_outputs()[0].shape[-1])
        # cv2.FaceDetectorYN keeps the input size as state: one instance, used under a lock.
        self._yunet = cv2.FaceDetectorYN.create(
            str(detector), "", (DET_SIZE, DET_SIZE), DET_THRESHOLD + 0.1, 0.3, 5000
        )
        self._lock = threading.Lock()
        self.model_info = {"detector": detector.name, "recognizer": recognizer.name}

    def detect(self, img: np.ndarray) -> list[DetectedFace]:
        h, w = img.shape[:2]
        scale = min(1.0, DET_SIZE / max(h, w))
        work = cv2.resize(img, (round(w * scale), round(h * scale))) if scale < 1.0 else img
        with self._lock:
            self._yunet.setInputSize((work.shape[1], work.shape[0]))
            _, raw = self._yunet.detect(work)
        if raw is None or len(raw) == 0:
            return []
        raw = np.asarray(raw, dtype=np.float32)
        coords = raw[:, :14] / np.float32(scale)
        x, y, bw, bh = coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]
        boxes = np.stack([x, y, x + bw, y + bh, raw[:, 14]], axis=1)
        # YuNet's order (right eye, left eye, nose, right mouth, left mouth) from the
        # subject's view is the image-left-first order ArcFace uses.
        kpss = coords[:, 4:14].reshape(-1, 5, 2)
        return _faces(boxes, kpss)

    def embed_aligned(self, crop: np.ndarray) -> np.ndarray:
        # SFace takes raw BGR 0..255, NCHW, no mean/scale.
        blob = np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32)
        return _l2(self._rec.run(None, {self._rec_input: blob})[0])


def embed(backend: Backend, img: np.ndarray, face: DetectedFace) -> np.ndarray:
    return backend.embed_aligned(align_face(img, face.landmarks5))


def load_backend(
    name: str, *, model_dir: str = "", data_dir: Path | None = None, threads: int | None = None
) -> Backend:
    if name == "insightface":
        if model_dir:
            pack = models.find_model_pack(Path(model_dir))
            return InsightFaceBackend(pack.detector, pack.recognizer, pinned=False, threads=threads)
        det, rec = models.insightface_model_paths()
        return InsightFaceBackend(det, rec, threads=threads)
    if name == "sface":
        det, rec = models.sface_model_paths()
        cache = Path(data_dir) / "models" if data_dir is not None else None
        return SFaceBackend(det, rec, cache, threads=threads)
    raise ValueError(f"unknown face backend {name!r} (expected 'insightface' or 'sface')")
