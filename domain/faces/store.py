"""Face data at rest: encrypted embeddings and photos, bound to their enrollment row.

The associated data names the row and the person, so a blob copied to another
enrollment (or another resident's row) fails to decrypt instead of matching the wrong
person.
"""

from __future__ import annotations

import base64
import json

import numpy as np

from anxin.crypto import KeyRing
from models import FaceEnrollment


def _ad(kind: str, e: FaceEnrollment) -> bytes:
    return f"face-{kind}:{e.id}:{e.resident_id}:{e.community_id}".encode()


def encrypt_embeddings(keyring: KeyRing, e: FaceEnrollment, vecs: dict[str, np.ndarray]) -> bytes:
    packed = {
        name: base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode()
        for name, v in vecs.items()
    }
    return keyring.encrypt(json.dumps(packed).encode(), _ad("embedding", e))


def decrypt_embeddings(keyring: KeyRing, e: FaceEnrollment) -> dict[str, np.ndarray]:
    """Backend name -> unit float32 vector; empty when the server holds no copy."""
    if not e.embedding_enc:
        return {}
    packed = json.loads(keyring.decrypt(bytes(e.embedding_enc), _ad("embedding", e)))
    return {
        name: np.frombuffer(base64.b64decode(b64), dtype="<f4").astype(np.float32)
        for name, b64 in packed.items()
    }


def encrypt_photo(keyring: KeyRing, e: FaceEnrollment, data: bytes) -> bytes:
    return keyring.encrypt(data, _ad("photo", e))


def decrypt_photo(keyring: KeyRing, e: FaceEnrollment) -> bytes | None:
    if not e.photo_enc:
        return None
    return keyring.decrypt(bytes(e.photo_enc), _ad("photo", e))
