"""Safe decoding of untrusted uploads into BGR numpy arrays.

Only JPEG and PNG are accepted, recognised by their magic bytes (the client's
Content-Type is never trusted). Dimensions are read from the header and checked before
any pixel is decoded, so a small file declaring 100k x 100k pixels (a decompression bomb)
costs nothing. Each refusal has its own stable error code.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from face_engine.errors import ImageInvalid, ImageTooLarge, ImageUnsupported

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# 36 MP covers every phone camera's default output (12-24 MP) with room to spare; the
# decoded RGB array is then at most ~108 MB.
DEFAULT_MAX_PIXELS = 36_000_000
MAX_SIDE = 12_000  # also refuse absurd aspect ratios (1 x 30M) that pass the pixel cap
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


def image_empty() -> ImageInvalid:
    return ImageInvalid("image_empty", "未收到图片", "the image is empty")


def image_too_large(size: int, limit: int) -> ImageTooLarge:
    return ImageTooLarge(
        "image_too_large",
        f"图片过大，请上传不超过 {limit // 1024} KB 的照片",
        f"the image is too large ({size} bytes, limit {limit})",
        {"bytes": size, "limit": limit},
    )


def image_unsupported_type() -> ImageUnsupported:
    return ImageUnsupported(
        "image_unsupported_type",
        "仅支持 JPEG 或 PNG 格式的照片",
        "only JPEG and PNG images are accepted",
    )


def image_corrupt() -> ImageInvalid:
    return ImageInvalid(
        "image_corrupt", "图片已损坏或不完整，请重新拍摄", "the image is corrupt or truncated"
    )


def image_dimensions_too_large(width: int, height: int) -> ImageInvalid:
    return ImageInvalid(
        "image_dimensions_too_large",
        "图片分辨率过高，请压缩后再上传",
        f"the image dimensions are too large ({width}x{height})",
        {"width": width, "height": height},
    )


def sniff_type(data: bytes) -> str | None:
    if data.startswith(JPEG_MAGIC):
        return "JPEG"
    if data.startswith(PNG_MAGIC):
        return "PNG"
    return None


def decode_image(
    data: bytes,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode JPEG/PNG bytes to a contiguous HxWx3 uint8 BGR array, or raise a FaceEngineError.

    EXIF orientation is applied (phones store portrait shots rotated), alpha is
    composited on white, and any mode (greyscale, palette, CMYK, 16-bit) becomes RGB.
    """
    if not data:
        raise image_empty()
    if max_bytes is not None and len(data) > max_bytes:
        raise image_too_large(len(data), max_bytes)
    kind = sniff_type(data)
    if kind is None:
        raise image_unsupported_type()
    try:
        # open() only parses the header; no pixel is decoded yet.
        img = Image.open(io.BytesIO(data), formats=[kind])
    except Image.DecompressionBombError:
        # PIL's own guard fires in open() beyond 2x its MAX_IMAGE_PIXELS.
        raise image_dimensions_too_large(*_header_size(data)) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise image_corrupt() from None
    width, height = img.size
    if width <= 0 or height <= 0:
        raise image_corrupt()
    if width * height > max_pixels or max(width, height) > MAX_SIDE:
        raise image_dimensions_too_large(width, height)
    try:
        with warnings.catch_warnings():
            # Our own limit is checked above; PIL's bomb warning must not leak to logs.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()  # truncated data raises OSError here (LOAD_TRUNCATED_IMAGES is off)
            rgb = _to_rgb(ImageOps.exif_transpose(img))
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ):
        raise image_corrupt() from None
    arr = np.asarray(rgb, dtype=np.uint8)
    return np.ascontiguousarray(arr[:, :, ::-1])  # RGB -> BGR (the models' convention)


def _header_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG header, for the error details (0, 0 when unknown)."""
    if data.startswith(PNG_MAGIC) and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return 0, 0


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale PNG: scale to 8 bits rather than clipping.
        arr = np.asarray(img, dtype=np.float32)
        peak = float(arr.max()) or 1.0
        grey = np.clip(arr * (255.0 / max(peak, 255.0)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def encode_jpeg(bgr: np.ndarray, quality: int = 92) -> bytes:
    """Encode a BGR array as JPEG (tests, benchmark and thumbnails)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).save(buf, "JPEG", quality=quality)
    return buf.getvalue()
