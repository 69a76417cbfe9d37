"""End-to-end sealing between the server and one terminal, so the broker never reads them.

Face templates (library_sync changes, server -> terminal) and household codes (code_entry
events, terminal -> server) travel sealed: AES-256-GCM under a key derived with HKDF-SHA256
from the terminal's own secret, one key per purpose. Whoever runs or taps the broker (or
a proxy in front of HTTP push) sees only ciphertext; each terminal can open only its own.

Why HKDF from the device secret and not X25519 + ECDH: both ends already share that secret
(the server provisions it and keeps it encrypted at rest), so a derived key adds no key
management and no handshake, works the same over MQTT and HTTP push, and follows every
rotation of the secret at once.

A library copied from a *peer* terminal (a dead terminal replaced, docs/device-protocol.md
section 5a) is sealed differently: the server must relay it without being able to read
it, so it cannot be under a key derived from a secret the server holds. Each terminal
makes an X25519 key pair of its own (the private half never leaves it) and reports the
public half in its signed state; the peer seals each chunk to that public key (ECIES:
an ephemeral X25519 key per chunk, HKDF-SHA256 over the shared secret, AES-256-GCM).

Sealed form: base64url (no padding) of nonce (12 random bytes) || ciphertext || tag. The
associated data binds a sealed value to its terminal and its place in the message (person
id and version, or event id and room), so it cannot be moved to another message.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
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


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64u(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SealError("not base64") from exc


def public_key_b64(private: X25519PrivateKey) -> str:
    """A terminal's transfer public key as it travels (base64url of the raw 32 bytes)."""
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return b64u(raw)


def _exchange(private: X25519PrivateKey, peer: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(peer))
    except ValueError as exc:  # a low-order point gives an all-zero secret
        raise SealError("unusable public key") from exc


def _transfer_key(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=epk + recipient,
        info=b"anxin-library-transfer-v1",
    ).derive(shared)


def seal_to_public_key(recipient_b64: str, plaintext: bytes, aad: str) -> tuple[str, str]:
    """(ephemeral public key, sealed) for the holder of `recipient_b64`'s private key only."""
    recipient = from_b64u(recipient_b64)
    if len(recipient) != 32:
        raise SealError("not an X25519 public key")
    eph = X25519PrivateKey.generate()
    epk = eph.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    shared = _exchange(eph, recipient)
    return b64u(epk), seal(_transfer_key(shared, epk, recipient), plaintext, aad)


def open_with_private_key(private: X25519PrivateKey, epk_b64: str, token: str, aad: str) -> bytes:
    epk = from_b64u(epk_b64)
    if len(epk) != 32:
        raise SealError("not an X25519 public key")
    recipient = from_b64u(public_key_b64(private))
    shared = _exchange(private, epk)
    return open_sealed(_transfer_key(shared, epk, recipient), token, aad)


def transfer_aad(
    transfer_id: str, from_device: str, to_device: str, version: int, chunk: int, chunks: int
) -> str:
    return f"transfer|{transfer_id}|{from_device}|{to_device}|{version}|{chunk}|{chunks}"


def library_aad(device_id: str, person_id: str, version: int) -> str:
    return f"library|{device_id}|{person_id}|{version}"


def code_aad(device_id: str, event_id: str, room: str) -> str:
    return f"code|{device_id}|{event_id}|{room}"
