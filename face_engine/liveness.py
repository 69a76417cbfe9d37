"""Active liveness: the person in front of the camera follows the asked head movements.

A printed photo or a replayed still cannot turn its head; a video of someone else fails
the same-person check against the first (frontal) frame. This is a challenge-response
check, not passive anti-spoofing: a replayed video of the right person doing the right
moves in the right order would pass, which is why the actions are chosen at random by
the server per session from a larger set (api/faces: 36 sequences of three moves), and
why a video showing more moves than asked fails: a recording that runs through every
move would otherwise contain any sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .types import LivenessVerdict, Pose

ACTIONS = ("turn_left", "turn_right", "nod", "look_up")
MAX_FRAMES = 30
# The first frame is the reference and must be roughly frontal.
START_MAX_YAW = 20.0
# A turn counts once yaw moved this far from the reference frame, in the right direction.
YAW_DELTA = 15.0
# A nod (chin down) or look-up counts once pitch moved this far from the reference.
PITCH_DELTA = 10.0

REASONS: dict[str, tuple[str, str]] = {
    "no_frames": ("未收到视频帧", "no frames were received"),
    "too_many_frames": ("视频帧过多", "too many frames"),
    "unknown_action": ("不支持的动作", "unsupported action requested"),
    "frame_no_face": ("部分画面中未检测到人脸", "no face in some frames"),
    "frame_multiple_faces": ("画面中出现多张人脸", "several faces in some frames"),
    "different_person": (
        "检测到不同的人，请本人完成验证",
        "a different person appeared during the check",
    ),
    "not_frontal_start": ("请先正对摄像头", "start facing the camera"),
    "action_not_done": (
        "未完成指定动作，请按提示转头或点头",
        "the requested head movement was not seen; follow the prompts",
    ),
    "unexpected_action": (
        "做了未要求的动作，请只按提示依次完成",
        "moves that were not asked for were seen; do only the prompted moves, in order",
    ),
}


@dataclass(frozen=True, slots=True)
class FrameObservation:
    face_count: int
    pose: Pose | None = None
    embedding: np.ndarray | None = None


def _moved(action: str, ref: Pose, pose: Pose, mirrored: bool) -> bool:
    yaw = pose.yaw - ref.yaw
    if mirrored:  # a mirrored preview swaps the subject's left and right
        yaw = -yaw
    pitch = pose.pitch - ref.pitch
    if action == "turn_left":
        return yaw >= YAW_DELTA
    if action == "turn_right":
        return yaw <= -YAW_DELTA
    if action == "nod":
        return pitch <= -PITCH_DELTA
    if action == "look_up":
        return pitch >= PITCH_DELTA
    return False


def _move(ref: Pose, pose: Pose, mirrored: bool) -> str | None:
    """The one move a frame shows against the reference, or None. A turn is read first:
    the landmark pitch estimate drifts by 10-16 degrees on a turned head, so a frame counts
    as a nod or look-up only while the head is near frontal (yaw under half a turn)."""
    yaw = abs(pose.yaw - ref.yaw)
    if yaw >= YAW_DELTA:
        return next(a for a in ("turn_left", "turn_right") if _moved(a, ref, pose, mirrored))
    if yaw < YAW_DELTA / 2:
        return next((a for a in ("nod", "look_up") if _moved(a, ref, pose, mirrored)), None)
    return None


def _moves(ref: Pose, poses: list[Pose], mirrored: bool) -> list[str]:
    seen: list[str] = []
    last: str | None = None
    for pose in poses:
        move = _move(ref, pose, mirrored)
        if move is not None and move != last:
            seen.append(move)
        last = move
    return seen


def _verdict(reasons: list[str], **kw) -> LivenessVerdict:
    zh = "；".join(REASONS[r][0] for r in reasons) if reasons else "活体检测通过"
    en = "; ".join(REASONS[r][1] for r in reasons) if reasons else "liveness check passed"
    return LivenessVerdict(passed=not reasons, reasons=reasons, message_zh=zh, message_en=en, **kw)


def evaluate(
    frames: list[FrameObservation],
    actions: list[str],
    same_person_min: float,
    mirrored: bool = False,
) -> LivenessVerdict:
    """Judge a sequence of observed frames against the asked actions, in order."""
    if not frames:
        return _verdict(["no_frames"])
    if len(frames) > MAX_FRAMES:
        return _verdict(["too_many_frames"])
    if any(a not in ACTIONS for a in actions):
        return _verdict(["unknown_action"])
    reasons: list[str] = []
    if any(f.face_count == 0 for f in frames):
        reasons.append("frame_no_face")
    if any(f.face_count > 1 for f in frames):
        reasons.append("frame_multiple_faces")
    if reasons:
        return _verdict(reasons)

    # Every frame has exactly one face from here on: each has its pose and embedding.
    poses = [f.pose for f in frames if f.pose is not None]
    embeddings = [f.embedding for f in frames if f.embedding is not None]
    if len(poses) != len(frames) or len(embeddings) != len(frames):
        return _verdict(["frame_no_face"])
    yaws = [round(p.yaw, 1) for p in poses]
    pitches = [round(p.pitch, 1) for p in poses]
    sims = [float(np.dot(embeddings[0], e)) for e in embeddings[1:]]
    min_sim = min(sims) if sims else 1.0
    if min_sim < same_person_min:
        reasons.append("different_person")
    if abs(poses[0].yaw) > START_MAX_YAW:
        reasons.append("not_frontal_start")

    # The moves seen, in order (runs of one move merged, frames between moves dropped),
    # must be exactly the asked ones: a replayed video that runs through every move in
    # turn contains any asked sequence, so extra moves fail as surely as missing ones.
    seen = _moves(poses[0], poses[1:], mirrored)
    done: list[str] = []
    for asked, move in zip(actions, seen, strict=False):
        if asked != move:
            break
        done.append(asked)
    if seen != list(actions):
        reasons.append("action_not_done" if len(seen) <= len(actions) else "unexpected_action")
    return _verdict(
        reasons, yaws=yaws, pitches=pitches, min_similarity=round(min_sim, 4), actions_done=done
    )
