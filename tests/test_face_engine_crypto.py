"""AES-GCM at rest: round trips, row binding, tampering, key rotation, no fallback key."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from anxin.crypto import (
    CryptoError,
    KeyRing,
    generate_key_spec,
    key_id,
    keyring_from_settings,
    parse_keys,
)
from anxin.settings import InsecureConfiguration, Settings

K1 = base64.b64encode(b"\x01" * 32).decode()
K2 = base64.b64encode(b"\x02" * 32).decode()


def ring(spec: str) -> KeyRing:
    return keyring_from_settings(Settings(face_keys=spec))


def test_round_trip_and_format():
    r = ring(f"k2025:{K1}")
    blob = r.encrypt(b"secret", b"resident:1")
    assert blob[:3] == b"AX1" and blob[3] == 5 and blob[4:9] == b"k2025"
    assert key_id(blob) == "k2025"
    assert r.decrypt(blob, b"resident:1") == b"secret"
    assert r.encrypt(b"secret", b"resident:1") != blob  # fresh nonce each time


def test_embedding_helpers():
    r = ring(f"a:{K1}")
    vec = np.random.default_rng(0).normal(size=512).astype(np.float32)
    blob = r.encrypt_embedding(vec, b"resident:7")
    out = r.decrypt_embedding(blob, b"resident:7")
    assert out.dtype == np.float32 and np.array_equal(out, vec)


def test_blob_cannot_move_to_another_row():
    r = ring(f"a:{K1}")
    blob = r.encrypt(b"face", b"resident:1")
    with pytest.raises(CryptoError):
        r.decrypt(blob, b"resident:2")


@pytest.mark.parametrize("pos", [3, 5, 7, 20, -1])
def test_tampering_is_detected(pos):
    r = ring(f"a:{K1}")
    blob = bytearray(r.encrypt(b"face data", b"x"))
    blob[pos] ^= 0x01
    with pytest.raises(CryptoError):
        r.decrypt(bytes(blob), b"x")


def test_garbage_and_truncation():
    r = ring(f"a:{K1}")
    blob = r.encrypt(b"face data")
    for bad in (b"", b"AX2" + blob[3:], blob[:10], blob[:-1], b"AX1\x00rest" * 5):
        with pytest.raises(CryptoError):
            r.decrypt(bad)


def test_rotation():
    old = ring(f"old:{K1}")
    blob = old.encrypt(b"face", b"r1")
    rotated_ring = ring(f"new:{K2},old:{K1}")
    assert rotated_ring.decrypt(blob, b"r1") == b"face"  # old blobs still readable
    assert rotated_ring.needs_rotation(blob)
    fresh = rotated_ring.rotate(blob, b"r1")
    assert key_id(fresh) == "new" and not rotated_ring.needs_rotation(fresh)
    assert rotated_ring.rotate(fresh, b"r1") is fresh
    with pytest.raises(CryptoError, match="unknown key id"):
        ring(f"new:{K2}").decrypt(blob, b"r1")  # old key retired


def test_key_parsing():
    assert list(parse_keys(f" a:{K1} , b:{K2} ")) == ["a", "b"]
    for bad in ("a", f"a:{base64.b64encode(b'short').decode()}", f"a:{K1},a:{K2}", ":" + K1):
        with pytest.raises(ValueError):
            parse_keys(bad)
    spec = generate_key_spec("k9")
    assert list(parse_keys(spec)) == ["k9"]


def test_no_keys_no_keyring_in_any_mode():
    """There is no derived development key any more: no keys, no encryption."""
    for env in ("development", "production"):
        with pytest.raises(InsecureConfiguration):
            keyring_from_settings(Settings(face_keys="", jwt_secret="s" * 40, env=env))
