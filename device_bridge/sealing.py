"""End-to-end sealing between the server and one terminal, so the broker never reads them.

Face templates (library_sync changes, server -> terminal) and household codes (code_entry
events, terminal -> server) travel sealed: AES-256-GCM under a key derived with HKDF-SHA256
from the terminal's own secret, one key per purpose. Whoever runs or taps the broker (or
a proxy in front of HTTP push) sees only ciphertext; each terminal can open only its own.

Why HKDF from the device secret and not X25519 + ECDH: both ends already share that secret
(the server provisions it and keeps it encrypted at rest), so a derived key adds no key
management and no handshake, works the same over MQTT and HTTP push, and follows every
rotation of the secret at once. A per-terminal key pair would protect nothing more
against the broker operator; it is what a terminal needs to receive a library from a
*peer* terminal (issue 17: replacing a dead terminal), and can be added for that.

Sealed form: base64url (no padding) of nonce (12 random bytes) || ciphertext || tag. The
associated data binds a sealed value to its terminal and its place in the message (person
id and version, or event id and room), so it cannot be moved to another message.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

LIBRARY = "library"  # face templates to a terminal
CODE = "code"  # household codes from a terminal
NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed value that does not open: wrong key, tampered, moved or malformed."""


def derive_key(secret: str | bytes, purpose: str) -> bytes:
    if isinstance(secret, str):
        secret = secret.encode()
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"anxin-device-seal",
        info=f"anxin-{purpose}-v1".encode(),
    )
    return hkdf.derive(secret)


def seal(key: bytes, plaintext: bytes, aad: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = nonce + AESGCM(key).encrypt(nonce, plaintext, aad.encode())
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()


def open_sealed(key: bytes, token: str, aad: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SealError("not base64") from exc
    if len(raw) < NONCE_BYTES + 16:
        raise SealError("too short")
    try:
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode())
    except InvalidTag as exc:
        raise SealError("does not open") from exc


def library_aad(device_id: str, person_id: str, version: int) -> str:
    return f"library|{device_id}|{person_id}|{version}"


def code_aad(device_id: str, event_id: str, room: str) -> str:
    return f"code|{device_id}|{event_id}|{room}"
