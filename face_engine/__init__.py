"""Anxin's face engine: detection, alignment, embeddings, 1:N search, quality, liveness.

Knows nothing of HTTP, MQTT or the database; errors for users are
`face_engine.errors.FaceEngineError` kinds (no status codes: adapters translate them).
See docs/face-engine.md.
"""

from .align import ARCFACE_TEMPLATE, align_face, estimate_pose
from .engine import BACKEND_DEFAULTS, DualEngine, DualGallery, FaceEngine, get_engine
from .gallery import Gallery
from .imaging import decode_image
from .models import MODEL_SHA256, ModelIntegrityError, verify_model_file
from .types import (
    DetectedFace,
    EnrollmentAnalysis,
    LivenessVerdict,
    MatchResult,
    Pose,
    ProbeQuality,
    QualityReport,
)

__all__ = [
    "ARCFACE_TEMPLATE",
    "BACKEND_DEFAULTS",
    "MODEL_SHA256",
    "DetectedFace",
    "DualEngine",
    "DualGallery",
    "EnrollmentAnalysis",
    "FaceEngine",
    "Gallery",
    "LivenessVerdict",
    "MatchResult",
    "ModelIntegrityError",
    "Pose",
    "ProbeQuality",
    "QualityReport",
    "align_face",
    "decode_image",
    "estimate_pose",
    "get_engine",
    "verify_model_file",
]
