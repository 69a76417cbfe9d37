"""Enrollment quality gate: one clear, frontal, well-lit, sharp face, eyes visible.

Each refusal has a stable code plus a Chinese and an English sentence the app can show.
The thresholds below were set on the offline test photos (docs/face-engine.md): real
portraits measure blur 250-4000, brightness 85-165, |yaw| <= 23 degrees, eye contrast >= 25.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .align import ARCFACE_TEMPLATE, align_face, estimate_pose
from .types import DetectedFace, QualityReport

# A second face counts only if it is at least this fraction of the largest face's
# width: tiny faces in the background cannot be the person enrolling.
SECONDARY_FACE_RATIO = 0.4
# Face bbox short side, in image pixels. Below ~80 px the 112 px aligned crop is an
# upsampled guess and ArcFace scores drop sharply.
MIN_FACE_PX = 80
# Mean grey level of the aligned face's central region (cheeks, nose, eyes), 0..255.
MIN_BRIGHTNESS = 60
MAX_BRIGHTNESS = 200
# Variance of the Laplacian of the grey 112x112 aligned crop: sharp portraits measure
# 250-4000 here, a Gaussian blur of sigma 3 at 112 px brings them under 40.
MIN_BLUR_VARIANCE = 80.0
# Landmark-based head pose limits, degrees (the estimate itself is +-10 degrees).
MAX_YAW = 25.0
MAX_PITCH = 25.0
# Eyes: the grey-level std-dev of a patch around each eye on the aligned crop. An open,
# visible eye (sclera, iris, lashes) has strong local contrast; sunglasses, a hand, hair
# or a mask over the eyes leave a flat patch. Also the eye patch must not be much darker
# than the face (dark glasses with a reflection can still have some contrast).
MIN_EYE_CONTRAST = 14.0
MIN_EYE_TO_FACE_BRIGHTNESS = 0.35
EYE_PATCH_HALF = (11, 7)  # half width, half height in aligned-crop pixels
MIN_DET_SCORE = 0.5

REASONS: dict[str, tuple[str, str]] = {
    "no_face": ("未检测到人脸，请正对摄像头重新拍摄", "no face found; face the camera and retake"),
    "multiple_faces": (
        "检测到多张人脸，请确保画面中只有您本人",
        "several faces found; make sure only you are in the photo",
    ),
    "face_too_small": ("人脸太小，请靠近一些", "the face is too small; move closer"),
    "too_dark": ("光线太暗，请到明亮处拍摄", "the photo is too dark; find better light"),
    "too_bright": ("光线过强，请避免强光直射", "the photo is too bright; avoid direct light"),
    "too_blurry": ("照片模糊，请保持稳定后重新拍摄", "the photo is blurred; hold still and retake"),
    "head_turned": ("请正对摄像头，不要侧脸", "face the camera; the head is turned too far"),
    "head_tilted": (
        "请正对摄像头，不要抬头或低头",
        "face the camera; the head is tilted up or down too far",
    ),
    "eyes_not_visible": (
        "未能看清眼睛，请摘下墨镜或移开遮挡物",
        "the eyes are not visible; remove sunglasses or anything covering them",
    ),
}


def message(code: str) -> tuple[str, str]:
    return REASONS.get(code, ("照片不符合要求", "the photo does not meet the requirements"))


def _eye_patches(grey: np.ndarray) -> list[np.ndarray]:
    hw, hh = EYE_PATCH_HALF
    out = []
    for x, y in ARCFACE_TEMPLATE[:2]:
        cx, cy = round(float(x)), round(float(y))
        out.append(grey[cy - hh : cy + hh, cx - hw : cx + hw])
    return out


def measure(img: np.ndarray, face: DetectedFace) -> dict[str, float]:
    crop = align_face(img, face.landmarks5)
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    centre = grey[30:100, 25:87]  # eyes to chin, inside the cheeks: skin, not background
    brightness = float(centre.mean())
    blur = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    eyes = _eye_patches(grey)
    eye_contrast = min(float(p.std()) for p in eyes)
    eye_ratio = min(float(p.mean()) for p in eyes) / max(brightness, 1.0)
    return {
        "brightness": brightness,
        "blur": blur,
        "eye_contrast": eye_contrast,
        "eye_ratio": eye_ratio,
    }


def significant_faces(faces: list[DetectedFace]) -> list[DetectedFace]:
    """Faces big enough, relative to the largest, to be a second person in the shot."""
    if not faces:
        return []
    largest = max(f.width for f in faces)
    return [
        f for f in faces if f.score >= MIN_DET_SCORE and f.width >= SECONDARY_FACE_RATIO * largest
    ]


def assess(img: np.ndarray, faces: list[DetectedFace]) -> QualityReport:
    """Run the gate in a fixed order; the first failing check gives the reason."""
    faces = significant_faces(faces)
    if not faces:
        return QualityReport("no_face")
    if len(faces) > 1:
        return QualityReport("multiple_faces", face_count=len(faces))
    face = faces[0]
    face_px = float(min(face.width, face.height))
    pose = estimate_pose(face.landmarks5)
    m = measure(img, face)
    base: dict[str, Any] = dict(
        face=face,
        face_count=1,
        face_px=face_px,
        blur=m["blur"],
        brightness=m["brightness"],
        pose=pose,
        eye_contrast=m["eye_contrast"],
    )
    if face_px < MIN_FACE_PX:
        return QualityReport("face_too_small", **base)
    if m["brightness"] < MIN_BRIGHTNESS:
        return QualityReport("too_dark", **base)
    if m["brightness"] > MAX_BRIGHTNESS:
        return QualityReport("too_bright", **base)
    if m["blur"] < MIN_BLUR_VARIANCE:
        return QualityReport("too_blurry", **base)
    if abs(pose.yaw) > MAX_YAW:
        return QualityReport("head_turned", **base)
    if abs(pose.pitch) > MAX_PITCH:
        return QualityReport("head_tilted", **base)
    if m["eye_contrast"] < MIN_EYE_CONTRAST or m["eye_ratio"] < MIN_EYE_TO_FACE_BRIGHTNESS:
        return QualityReport("eyes_not_visible", **base)
    return QualityReport(None, **base)
