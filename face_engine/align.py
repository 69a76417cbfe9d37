"""Alignment to the ArcFace 112x112 template and head pose from five landmarks."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .types import Pose

# The standard ArcFace destination points for a 112x112 crop (InsightFace, also used
# by OpenCV's SFace alignCrop): eyes, nose tip, mouth corners.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
ALIGNED_SIZE = 112

# Pose model: a frontal face has the nose tip midway between the eyes horizontally and
# at NOSE_DROP_FRONTAL of the eye-to-mouth height. Turning the head moves the protruding
# nose tip by depth*sin(angle) while the eye/mouth spans shrink by cos(angle), so
# offset/span = (depth/span) * tan(angle). The depth ratios are rough anthropometric
# averages (nose tip ~3.5 cm in front of the eyes, half inter-ocular ~3.2 cm, eye-to-mouth
# ~7 cm); the estimate is +-10 degrees, enough to tell "frontal" from "clearly turned".
NOSE_DEPTH_TO_HALF_EYE_SPAN = 1.0
NOSE_DEPTH_TO_EYE_MOUTH = 0.5
NOSE_DROP_FRONTAL = 0.55


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation), Umeyama 1991.

    Returns the 2x3 matrix mapping src points onto dst.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1  # no reflections
    rot = u @ sign @ vt
    var_s = (s**2).sum() / len(src)
    scale = float(np.trace(np.diag(sigma) @ sign) / var_s) if var_s > 0 else 1.0
    m = np.zeros((2, 3), dtype=np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def align_face(img: np.ndarray, landmarks5: np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """Warp the face onto the ArcFace template: a size x size BGR crop."""
    dst = ARCFACE_TEMPLATE * (size / ALIGNED_SIZE)
    m = similarity_transform(landmarks5, dst)
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)


def estimate_pose(landmarks5: np.ndarray) -> Pose:
    """Rough yaw / pitch / roll in degrees from 5 landmarks (see the module constants).

    Roll is removed first (landmarks rotated so the eyes are level), so a tilted but
    frontal head still reads as yaw ~ 0.
    """
    pts = np.asarray(landmarks5, dtype=np.float64)
    eye_a, eye_b, nose, mouth_a, mouth_b = pts
    dx, dy = eye_b - eye_a
    roll = math.degrees(math.atan2(dy, dx))
    c, s = math.cos(-math.radians(roll)), math.sin(-math.radians(roll))
    rot = np.array([[c, -s], [s, c]])
    eye_a, eye_b, nose, mouth_a, mouth_b = (rot @ p for p in (eye_a, eye_b, nose, mouth_a, mouth_b))

    half_span = max((eye_b[0] - eye_a[0]) / 2.0, 1e-6)
    eye_mid = (eye_a + eye_b) / 2.0
    mouth_mid = (mouth_a + mouth_b) / 2.0
    # Use the eye and mouth midlines together: each alone is noisy on turned faces.
    mid_x = (eye_mid[0] + mouth_mid[0]) / 2.0
    yaw_ratio = (nose[0] - mid_x) / half_span
    yaw = math.degrees(math.atan(yaw_ratio / NOSE_DEPTH_TO_HALF_EYE_SPAN))

    eye_mouth = max(mouth_mid[1] - eye_mid[1], 1e-6)
    drop = (nose[1] - eye_mid[1]) / eye_mouth
    pitch = math.degrees(math.atan((NOSE_DROP_FRONTAL - drop) / NOSE_DEPTH_TO_EYE_MOUTH))
    return Pose(yaw=yaw, pitch=pitch, roll=roll)
