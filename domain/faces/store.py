"""Face data at rest: encrypted embeddings and photos, bound to their enrollment row.

The associated data names the row and the person, so a blob copied to another
enrollment (or another resident's row) fails to decrypt instead of matching the wrong
person.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from anxin.clock import utcnow
from anxin.crypto import KeyRing
from domain.faces.records import record
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


async def delete_embedding(
    e: FaceEnrollment, reason: str, details: dict[str, Any] | None = None
) -> None:
    """The one way a server copy of an embedding is deleted: blanked (once, whoever
    races) and recorded."""
    now = utcnow()
    if not await FaceEnrollment.filter(id=e.id, embedding_enc__not_isnull=True).update(
        embedding_enc=None, embedding_deleted_at=now
    ):
        e.embedding_enc = None
        return
    e.embedding_enc, e.embedding_deleted_at = None, now
    await record(
        "embedding.deleted",
        actor_type="system",
        community_id=e.community_id,
        resident_id=e.resident_id,
        enrollment_id=e.id,
        reason=reason,
        details=details or {},
    )
