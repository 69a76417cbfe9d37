"""Plain data the engine hands out: no numpy-free promises, but no behaviour either."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from face_engine.errors import FaceRejected


@dataclass(frozen=True, slots=True)
class DetectedFace:
    """One face in image pixel coordinates.

    landmarks5 is (5, 2) float32 in the ArcFace order: the eye on the image's left
    (the subject's right eye), the other eye, nose tip, left mouth corner, right corner.
    """

    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float
    landmarks5: np.ndarray

    @property
    def width(self) -> float:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks5[1] - self.landmarks5[0]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "bbox": [round(float(v), 1) for v in self.bbox],
            "score": round(float(self.score), 4),
            "landmarks5": [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks5],
        }


@dataclass(frozen=True, slots=True)
class Pose:
    """Head pose in degrees, estimated from the 5 landmarks (rough, see align.estimate_pose).

    yaw > 0: the subject turned towards their own left (nose towards the image's right in
    an unmirrored camera frame); pitch > 0: chin up; roll > 0: head tilted clockwise in
    the image.
    """

    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Measurements on one face; `reason` is None when it passes the gate."""

    reason: str | None
    face: DetectedFace | None = None
    face_count: int = 0
    face_px: float = 0.0  # bbox short side in pixels
    blur: float = 0.0  # variance of Laplacian on the aligned 112x112 crop
    brightness: float = 0.0  # mean grey level of the central face region, 0..255
    pose: Pose | None = None
    eye_contrast: float = 0.0  # min over both eyes of the eye patch's grey std-dev

    @property
    def ok(self) -> bool:
        return self.reason is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "face_count": self.face_count,
            "face_px": round(self.face_px, 1),
            "blur": round(self.blur, 1),
            "brightness": round(self.brightness, 1),
            "yaw": None if self.pose is None else round(self.pose.yaw, 1),
            "pitch": None if self.pose is None else round(self.pose.pitch, 1),
            "roll": None if self.pose is None else round(self.pose.roll, 1),
            "eye_contrast": round(self.eye_contrast, 1),
            "det_score": None if self.face is None else round(self.face.score, 3),
        }


@dataclass(frozen=True, slots=True)
class EnrollmentAnalysis:
    """Result of decode + quality gate + embedding for one enrollment photo.

    `embeddings` maps backend name to its L2-normalised float32 vector (one entry, or two
    in high-security dual mode); it is empty when the quality gate refused the photo.
    """

    quality: QualityReport
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    message_zh: str = ""
    message_en: str = ""

    @property
    def ok(self) -> bool:
        return self.quality.ok and bool(self.embeddings)

    @property
    def reason(self) -> str | None:
        return self.quality.reason

    @property
    def embedding(self) -> np.ndarray | None:
        """The primary backend's embedding (the first one)."""
        return next(iter(self.embeddings.values()), None)

    @property
    def error_code(self) -> str | None:
        """The API error code of a refusal: `face_` and the reason, the prefix exactly once
        (the reason `face_too_small` already carries it: its code is `face_too_small`)."""
        if self.ok:
            return None
        reason = self.reason or "rejected"
        return reason if reason.startswith("face_") else f"face_{reason}"

    def raise_for_quality(self) -> None:
        """Turn a refused photo into `FaceRejected` with `error_code` as its code."""
        if not self.ok:
            raise FaceRejected(
                self.error_code or "face_rejected",
                self.message_zh,
                self.message_en,
                self.quality.as_dict(),
            )


@dataclass(frozen=True, slots=True)
class ProbeQuality:
    """Gate capture measurements; `usable` is False for faces we should not match on."""

    usable: bool
    reason: str | None
    report: QualityReport
    image_px: float = 0.0  # the capture's short side in pixels (tells "far" from "tiny")


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Open-set 1:N answer. person_id is None unless the match is accepted.

    reason: "match", "empty_gallery", "below_threshold", "ambiguous" (too close to the
    second-best person) or "backends_disagree" (dual mode).
    candidate_id is the best-scoring person even when refused (for audit logs only).
    """

    person_id: str | None
    score: float
    second_score: float
    reason: str
    candidate_id: str | None = None

    @property
    def matched(self) -> bool:
        return self.person_id is not None


@dataclass(frozen=True, slots=True)
class LivenessVerdict:
    passed: bool
    reasons: list[str]  # empty when passed; stable codes otherwise
    message_zh: str = ""
    message_en: str = ""
    yaws: list[float] = field(default_factory=list)
    pitches: list[float] = field(default_factory=list)
    min_similarity: float | None = None
    actions_done: list[str] = field(default_factory=list)
