"""The police link's pieces without a database: GA/T coding, Digest, rate limit, batching."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import pytest
from PIL import Image

from domain.police.coding import (
    OBJECT_FACE,
    TYPE_APE,
    code20,
    image_id,
    object_id,
    valid_code20,
    viid_time,
)
from police_link import digest, service
from police_link.objects import jpeg_size


def test_ids_have_the_standard_lengths() -> None:
    dev = code20("33010600", TYPE_APE, 42)
    assert dev == "33010600001210000042" and valid_code20(dev)
    shot = viid_time(datetime(2026, 12, 1, 2, 3, 4, tzinfo=UTC), "Asia/Shanghai")
    assert shot == "20261201100304"  # local time, no offset, as the standard writes it
    img = image_id(dev, shot, 1234567)
    assert len(img) == 41 and img.endswith("34567")
    face = object_id(img, OBJECT_FACE)
    assert len(face) == 48 and face[41:43] == "06"
    with pytest.raises(ValueError):
        code20("3301060", TYPE_APE, 1)
    with pytest.raises(ValueError):
        code20("33010600", TYPE_APE, 10**7)


def test_jpeg_size_reads_the_frame_header() -> None:
    out = io.BytesIO()
    Image.new("RGB", (123, 45)).save(out, "JPEG")
    assert jpeg_size(out.getvalue()) == (123, 45)
    assert jpeg_size(b"\xff\xd8not a jpeg") == (0, 0)


def _signed(method: str, uri: str, password: str, secret: bytes, realm: str = "viid") -> str:
    """An Authorization header as httpx computes it against our challenge."""
    request = httpx.Request(method, f"http://x{uri}")
    challenge = httpx.Response(
        401,
        headers={"WWW-Authenticate": digest.challenge(realm, secret)},
        request=request,
    )
    flow = httpx.DigestAuth("anxin", password).auth_flow(request)
    next(flow)
    return flow.send(challenge).headers["Authorization"]


def test_digest_accepts_the_right_password_only() -> None:
    secret = b"s" * 32
    kw = dict(method="POST", realm="viid", secret=secret, password_of={"anxin": "pw"}.get)
    good = _signed("POST", "/VIID/System/Register", "pw", secret)
    assert digest.verify(good, path="/VIID/System/Register", **kw) == "anxin"  # type: ignore[arg-type]
    bad = _signed("POST", "/VIID/System/Register", "wrong", secret)
    assert digest.verify(bad, path="/VIID/System/Register", **kw) is None  # type: ignore[arg-type]
    # Computed for another path, another realm's nonce, or a stale nonce: refused.
    assert digest.verify(good, path="/VIID/Faces", **kw) is None  # type: ignore[arg-type]
    other = _signed("POST", "/VIID/System/Register", "pw", b"o" * 32)
    assert digest.verify(other, path="/VIID/System/Register", **kw) is None  # type: ignore[arg-type]
    assert not digest.nonce_fresh(digest.make_nonce(secret, now=0), secret)


async def test_token_bucket_paces_objects() -> None:
    now = [1000.0]
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = service.TokenBucket(100, clock=lambda: now[0], sleep=fake_sleep)
    for _ in range(6):
        await bucket.take(50)  # 300 objects at 100/s: the first 100 at once, then paced
    assert sum(slept) == pytest.approx(2.0, abs=0.05)


def _built(path: str, oid: str) -> SimpleNamespace:
    return SimpleNamespace(
        collection=SimpleNamespace(path=path), upload=SimpleNamespace(object_id=oid)
    )


def test_waves_keep_versions_of_one_object_in_order() -> None:
    items = [_built("/P", "a"), _built("/P", "b"), _built("/P", "a"), _built("/F", "x")]
    waves = service._waves(items)  # type: ignore[arg-type]
    assert len(waves) == 2
    first = [b.upload.object_id for chunk in waves[0] for b in chunk]
    assert sorted(first) == ["a", "b", "x"]
    assert [b.upload.object_id for chunk in waves[1] for b in chunk] == ["a"]
    many = [_built("/F", str(i)) for i in range(service.BATCH * 2 + 1)]
    (wave,) = service._waves(many)  # type: ignore[arg-type]
    assert [len(c) for c in wave] == [service.BATCH, service.BATCH, 1]
