"""AES-256-GCM encryption of face data at rest, with key ids so keys can rotate.

Keys come from settings.face_keys, "kid:base64key,kid2:base64key": the first key
encrypts, every listed key decrypts, so rotation is: prepend the new key, re-encrypt
rows in the background, then drop the old one. There is no fallback key: a server
without keys refuses to start (Settings.check_secrets), and the demo generates its own
(anxin/demo_secrets.py).

Blob format (version 1): b"AX1" | kid length (1 byte) | kid (ASCII) | nonce (12 bytes) |
ciphertext+tag. The header is authenticated too, and the caller's associated data
(e.g. b"resident:42") binds a blob to its row: copied to another row, it won't decrypt.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from anxin.settings import get_settings

log = logging.getLogger("anxin.crypto")

MAGIC = b"AX1"
NONCE_BYTES = 12


class CryptoError(Exception):
    """A blob that cannot be decrypted: unknown key, tampered, wrong row, bad format."""


@dataclass(frozen=True)
class KeyRing:
    keys: dict[str, bytes]  # kid -> 32-byte key, in priority order
    primary: str

    def encrypt(self, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        kid = self.primary.encode("ascii")
        header = MAGIC + bytes([len(kid)]) + kid
        nonce = os.urandom(NONCE_BYTES)  # random 96-bit nonces: fine far below 2^32 blobs/key
        ct = AESGCM(self.keys[self.primary]).encrypt(nonce, plaintext, header + associated_data)
        return header + nonce + ct

    def decrypt(self, blob: bytes, associated_data: bytes = b"") -> bytes:
        kid, header, nonce, ct = _parse(blob)
        key = self.keys.get(kid)
        if key is None:
            raise CryptoError(f"unknown key id {kid!r}")
        try:
            return AESGCM(key).decrypt(nonce, ct, header + associated_data)
        except InvalidTag:
            raise CryptoError("blob failed authentication (tampered, or wrong row)") from None

    def needs_rotation(self, blob: bytes) -> bool:
        return key_id(blob) != self.primary

    def rotate(self, blob: bytes, associated_data: bytes = b"") -> bytes:
        """Re-encrypt under the primary key (no-op copy when already there)."""
        if not self.needs_rotation(blob):
            return blob
        return self.encrypt(self.decrypt(blob, associated_data), associated_data)

    def encrypt_embedding(self, embedding: np.ndarray, associated_data: bytes = b"") -> bytes:
        vec = np.ascontiguousarray(embedding, dtype="<f4").reshape(-1)
        return self.encrypt(vec.tobytes(), associated_data)

    def decrypt_embedding(self, blob: bytes, associated_data: bytes = b"") -> np.ndarray:
        raw = self.decrypt(blob, associated_data)
        if len(raw) % 4:
            raise CryptoError("embedding blob has a bad length")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def _parse(blob: bytes) -> tuple[str, bytes, bytes, bytes]:
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 1:
        raise CryptoError("not an AX1 blob")
    n = blob[len(MAGIC)]
    start = len(MAGIC) + 1
    if n == 0 or len(blob) < start + n + NONCE_BYTES + 16:
        raise CryptoError("truncated blob")
    header = blob[: start + n]
    try:
        kid = blob[start : start + n].decode("ascii")
    except UnicodeDecodeError:
        raise CryptoError("bad key id") from None
    nonce = blob[start + n : start + n + NONCE_BYTES]
    return kid, header, nonce, blob[start + n + NONCE_BYTES :]


def key_id(blob: bytes) -> str:
    return _parse(blob)[0]


def parse_keys(spec: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kid, sep, b64 = item.partition(":")
        kid = kid.strip()
        if not sep or not kid or len(kid) > 255 or not kid.isascii():
            raise ValueError(f"face key entry {kid!r} must be 'kid:base64key'")
        try:
            key = base64.b64decode(b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = base64.urlsafe_b64decode(b64.strip() + "=" * (-len(b64.strip()) % 4))
        if len(key) != 32:
            raise ValueError(f"face key {kid!r} must be 32 bytes (AES-256), got {len(key)}")
        if kid in keys:
            raise ValueError(f"face key id {kid!r} is listed twice")
        keys[kid] = key
    return keys


def keyring_from_settings(settings: Any = None) -> KeyRing:
    """The process's key ring for these settings: one object per key set, shared by the
    runtime (`runtime.keyring`), the snapshot store and the demo seeding."""
    if settings is None:
        settings = get_settings()
    return _keyring(settings.face_keys)


@functools.lru_cache(maxsize=8)
def _keyring(face_keys: str) -> KeyRing:
    keys = parse_keys(face_keys)
    if not keys:
        # No fallback key: a server without keys refuses to start (Settings.check_secrets).
        from anxin.settings import InsecureConfiguration

        raise InsecureConfiguration("ANXIN_FACE_KEYS is not set")
    return KeyRing(keys, next(iter(keys)))


def generate_key_spec(kid: str) -> str:
    """A fresh 'kid:base64key' entry for ANXIN_FACE_KEYS."""
    return f"{kid}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"
