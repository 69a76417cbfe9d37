"""Safe decoding of untrusted uploads: every refusal has its own code and status."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from api.errors import http_status
from face_engine.errors import FaceEngineError
from face_engine.imaging import decode_image
from tests.face_data import photo_bytes


def _code(data: bytes, **kw) -> tuple[str, int]:
    with pytest.raises(FaceEngineError) as err:
        decode_image(data, **kw)
    assert err.value.zh and err.value.en
    return err.value.code, http_status(err.value)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_decodes_jpeg_and_png_to_bgr():
    img = decode_image(photo_bytes("obama"))
    assert img.shape == (1137, 910, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    png = decode_image(photo_bytes("gauss"), max_bytes=None)
    assert png.shape[2] == 3
    grey = decode_image(photo_bytes("solvay"), max_bytes=None)  # greyscale JPEG
    assert grey.shape == (2171, 3000, 3)


def test_png_alpha_and_bgr_order():
    buf = io.BytesIO()
    Image.new("RGBA", (4, 4), (255, 0, 0, 255)).save(buf, "PNG")
    assert decode_image(buf.getvalue())[0, 0].tolist() == [0, 0, 255]  # red, in BGR
    buf = io.BytesIO()
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(buf, "PNG")
    assert decode_image(buf.getvalue())[0, 0].tolist() == [255, 255, 255]  # on white


def test_exif_orientation_is_applied():
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), (10, 200, 10)).save(buf, "JPEG", exif=exif)
    assert decode_image(buf.getvalue()).shape[:2] == (40, 20)


def test_empty_text_and_other_types_are_refused():
    assert _code(b"") == ("image_empty", 422)
    assert _code(b"hello, I am a face, trust me\n" * 10) == ("image_unsupported_type", 415)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "GIF")
    assert _code(buf.getvalue()) == ("image_unsupported_type", 415)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "BMP")
    assert _code(buf.getvalue()) == ("image_unsupported_type", 415)


def test_oversize_bytes():
    data = photo_bytes("obama")
    assert _code(data, max_bytes=len(data) - 1) == ("image_too_large", 413)


def test_truncated_and_corrupt_files():
    data = photo_bytes("obama")
    assert _code(data[: len(data) // 2]) == ("image_corrupt", 422)
    assert _code(data[:40]) == ("image_corrupt", 422)
    assert _code(b"\xff\xd8\xff" + b"\x00" * 500) == ("image_corrupt", 422)
    assert _code(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20) == ("image_corrupt", 422)


def test_decompression_bomb_is_refused_from_the_header():
    # 100k x 100k pixels declared, a few hundred bytes on the wire.
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 100_001 * 10)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    assert len(bomb) < 2000
    assert _code(bomb) == ("image_dimensions_too_large", 422)
    # A real image just above the caller's pixel limit.
    assert _code(photo_bytes("obama"), max_pixels=910 * 1137 - 1)[0] == "image_dimensions_too_large"
    # 1 x 20000: few pixels, absurd side.
    buf = io.BytesIO()
    Image.new("L", (20_000, 1)).save(buf, "PNG")
    assert _code(buf.getvalue())[0] == "image_dimensions_too_large"
