"""Pass tokens: compact EdDSA (Ed25519) JWTs signed with the community's key.

Claims are exactly what a gate needs to decide offline (device_bridge/simulator/passes.py
is the reference verifier): iss = community id, sub = pass id, nbf, exp (epoch seconds),
doors = device uids, uses = max uses, kind, and plate when the pass names a vehicle. The
header is only {"alg": "EdDSA"} (no "typ") to keep the QR small: ~260 characters for one
door. Ed25519 signatures are deterministic, so the same row always mints the same token.

The key pair is made on first use; the private half is stored encrypted with the keyring,
the associated data binding it to its community (copied to another row it won't decrypt).
A rotation makes a new key with an id (`kid` in the header of every token it signs); the
old key stays accepted, and keeps re-minting its own passes' tokens, until the last of
them expires.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jwt
import nacl.bindings
import nacl.exceptions
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from anxin.crypto import KeyRing
from anxin.errors import not_found
from models import Community, PassKeyRetired, VisitorPass

LEEWAY_S = 5.0  # same as the device verifier: small clock differences are tolerated
# A pass names its doors, at most this many, so that its QR stays scannable. A pass for
# more doors than that is one for all of the community's gates (the doors that serve
# everybody), written as GATES: a gate installed as such accepts it offline.
TOKEN_MAX_DOORS = 8
GATES = "@gates"


def covers(doors: list[Any], device_uid: str, community_gate: bool) -> bool:
    """Whether a pass's `doors` claim includes this device (`community_gate`: it serves the
    whole community, no building or unit)."""
    return "*" in doors or device_uid in doors or (community_gate and GATES in doors)


# Device verdicts (simulator/firmware) and server checks share these reason codes.
DEVICE_REASONS = {
    "bad_token": "pass_invalid",
    "bad_claims": "pass_invalid",
    "bad_signature": "pass_forged",
    "wrong_community": "pass_other_community",
    "expired": "pass_expired",
    "not_yet_valid": "pass_not_yet_valid",
    "wrong_door": "pass_wrong_door",
    "revoked": "pass_revoked",
    "used_up": "pass_used_up",
}


def key_ad(community_id: int) -> bytes:
    return f"community-pass-key:{community_id}".encode()


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@dataclass
class CommunityKey:
    private: Ed25519PrivateKey
    public: Ed25519PublicKey
    public_pem: str
    kid: str = ""  # "" = the community's first key (tokens carry no kid)
    raw: bytes = field(init=False)  # the public key's 32 bytes, as the verifier takes it

    def __post_init__(self) -> None:
        self.raw = raw_public(self.public)


def _raw(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


class PassKeys:
    """Per-process cache of community pass keys. A rotation (`rotate`) makes a new signing
    key and retires the old one, which still verifies and re-mints its passes' tokens
    until the last of them expires. Other processes drop their cache on the bus message
    "pass_keys.changed" (a cache invalidation) and after CACHE_S at the latest."""

    CACHE_S = 30.0

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        self._cache: dict[int, tuple[float, CommunityKey]] = {}
        self._retired: dict[tuple[int, str], CommunityKey] = {}
        # Retired keys still accepted, by community: (cached until, [(kid, accept until)]).
        # A key is only ever retired by `rotate`, which drops this entry (and the bus
        # message drops it in other processes), so a check reads no key rows.
        self._accepting: dict[int, tuple[float, list[tuple[str, datetime]]]] = {}

    def drop(self, community_id: int) -> None:
        self._cache.pop(community_id, None)
        self._accepting.pop(community_id, None)

    async def get(self, community_id: int) -> CommunityKey:
        """The key that signs new passes."""
        cached = self._cache.get(community_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        community = await Community.get_or_none(id=community_id)
        if community is None:
            raise not_found("community")
        if community.pass_private_key_enc is None:
            private = Ed25519PrivateKey.generate()
            # Two workers may race on the first pass: the conditional update picks one key.
            await Community.filter(id=community_id, pass_private_key_enc=None).update(
                pass_private_key_enc=self.keyring.encrypt(_raw(private), key_ad(community_id)),
                pass_public_key=public_pem(private.public_key()),
            )
            await community.refresh_from_db()
        assert community.pass_private_key_enc is not None  # just written above when missing
        raw = self.keyring.decrypt(bytes(community.pass_private_key_enc), key_ad(community_id))
        private = Ed25519PrivateKey.from_private_bytes(raw)
        key = CommunityKey(
            private, private.public_key(), public_pem(private.public_key()), community.pass_key_id
        )
        self._cache[community_id] = (time.monotonic() + self.CACHE_S, key)
        return key

    async def signer(self, community_id: int, kid: str) -> CommunityKey:
        """The key a pass was signed with (its token is re-minted with it, unchanged)."""
        current = await self.get(community_id)
        if kid == current.kid:
            return current
        found = self._retired.get((community_id, kid))
        if found is not None:
            return found
        row = await PassKeyRetired.get_or_none(community_id=community_id, kid=kid)
        if row is None or row.private_enc is None:
            return current  # its passes are over: nothing left to re-mint
        private = Ed25519PrivateKey.from_private_bytes(
            self.keyring.decrypt(bytes(row.private_enc), key_ad(community_id))
        )
        key = CommunityKey(private, private.public_key(), row.public_pem, kid)
        self._retired[(community_id, kid)] = key
        return key

    async def accepted(self, community_id: int, now: datetime) -> dict[str, CommunityKey]:
        """Every key a gate accepts now: the current one and retired ones whose passes
        have not all expired, by kid."""
        current = await self.get(community_id)
        keys = {current.kid: current}
        cached = self._accepting.get(community_id)
        if cached is None or cached[0] <= time.monotonic():
            rows = await PassKeyRetired.filter(community_id=community_id).values_list(
                "kid", "accept_until"
            )
            cached = (time.monotonic() + self.CACHE_S, [(k, u) for k, u in rows])
            self._accepting[community_id] = cached
        for kid, until in cached[1]:
            if until > now and kid not in keys:
                keys[kid] = await self.signer(community_id, kid)
        return keys

    async def rotate(self, community_id: int, accept_old_until: datetime) -> CommunityKey:
        """A new signing key (call inside a transaction); the old one is retired and
        accepted until `accept_old_until`. Returns the new key."""
        old = await self.get(community_id)
        await PassKeyRetired.create(
            community_id=community_id,
            kid=old.kid,
            public_pem=old.public_pem,
            private_enc=self.keyring.encrypt(_raw(old.private), key_ad(community_id)),
            accept_until=accept_old_until,
        )
        private = Ed25519PrivateKey.generate()
        kid = "k" + secrets.token_hex(4)
        await Community.filter(id=community_id).update(
            pass_private_key_enc=self.keyring.encrypt(_raw(private), key_ad(community_id)),
            pass_public_key=public_pem(private.public_key()),
            pass_key_id=kid,
        )
        self.drop(community_id)
        return CommunityKey(private, private.public_key(), public_pem(private.public_key()), kid)


def claims_of(p: VisitorPass) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": str(p.community_id),
        "sub": str(p.id),
        "nbf": int(p.valid_from.timestamp()),
        "exp": int(p.valid_until.timestamp()),
        "doors": list(p.doors),
        "uses": p.max_uses,
        "kind": p.kind.value,
    }
    if p.plate:
        claims["plate"] = p.plate
    return claims


def mint(key: CommunityKey, p: VisitorPass) -> str:
    headers: dict[str, Any] = {"typ": None}
    if key.kid:
        headers["kid"] = key.kid  # which key: gates hold the current and retired ones
    return jwt.encode(claims_of(p), key.private, algorithm="EdDSA", headers=headers)


@dataclass
class TokenCheck:
    reason: str | None  # None: valid for this door now (use counts are checked elsewhere)
    pass_id: int | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reason is None


_OPTIONS = {
    "verify_exp": False,  # times are checked against the service clock below
    "verify_nbf": False,
    "verify_iss": False,
    "verify_aud": False,
    "require": ["iss", "sub", "exp", "nbf"],
}
REQUIRED_CLAIMS = ("iss", "sub", "exp", "nbf")


def _pass_id(sub: Any) -> int | None:
    return int(sub) if isinstance(sub, str) and sub.isdigit() and len(sub) < 10 else None


class _Malformed(Exception):
    """Not a well-formed EdDSA JWS/JWT of ours (the reason is pass_invalid)."""


def _b64url(segment: bytes) -> bytes:
    # As PyJWT's base64url_decode: pad, then the standard library's (lenient) decoder.
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


PublicKey = Ed25519PublicKey | bytes  # bytes: the raw 32-byte key
PublicKeys = PublicKey | Mapping[str, PublicKey]


def raw_public(key: PublicKey) -> bytes:
    if isinstance(key, bytes):
        return key
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _verify(public_key: bytes, signature: bytes, signing_input: bytes) -> None:
    """Ed25519 verification through libsodium (PyNaCl): about twice as fast here as
    OpenSSL's through cryptography, and as strict or stricter (it also refuses small-order
    keys and points). Raises InvalidSignature."""
    if len(signature) != 64 or len(public_key) != 32:
        # crypto_sign_open reads the signature from the front of signature + message: a
        # signature of another length would shift the message it checks.
        raise InvalidSignature("length")
    try:
        nacl.bindings.crypto_sign_open(signature + signing_input, public_key)
    except nacl.exceptions.BadSignatureError as exc:
        raise InvalidSignature(str(exc)) from exc


class VerifiedTokens:
    """Tokens whose signature already verified, with the key that verified them and their
    claims: an Ed25519 signature is valid or not for a given key forever, so a token
    scanned again (a visitor's second gate, a pass used on several days) skips the
    signature. Whether that key is still accepted is decided anew at every check (the
    caller's key set, which drops a retired key when its time is over), and the claims
    (window, door) and the pass row (revoked, used up) are checked every time too: the
    cache holds no decision. Only valid signatures enter, so forgeries cannot fill it;
    the oldest entries leave first past `max_size` (0 turns it off: the benchmark's cold
    figure)."""

    def __init__(self, max_size: int = 16_384) -> None:
        self.max_size = max_size
        # token -> (kid in its header, raw key that verified it, its claims)
        self._entries: dict[str, tuple[str, bytes, dict[str, Any]]] = {}

    def get(self, token: str, public_key: PublicKeys) -> dict[str, Any] | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        kid, verified_by, claims = entry
        key = public_key.get(kid) if isinstance(public_key, Mapping) else public_key
        if key is None or raw_public(key) != verified_by:
            return None  # that key is no longer accepted (or another one is asked for)
        return dict(claims)  # the caller's own top-level copy

    def put(self, token: str, kid: str, public_key: bytes, claims: dict[str, Any]) -> None:
        if self.max_size <= 0:
            return
        while len(self._entries) >= self.max_size:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = (kid, public_key, dict(claims))

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


VERIFIED = VerifiedTokens()


def _verified_claims(token: str, public_key: PublicKeys) -> dict[str, Any]:
    """`jwt.decode(token, public_key, algorithms=["EdDSA"], options=_OPTIONS)`, without
    PyJWT's generic machinery (a third of its cost per token): the same checks in the
    same order for a compact JWS. Raises _Malformed, or InvalidSignature when the
    signature does not verify (a forgery or another community's key). A token verified
    before with the same key is answered from `VERIFIED`."""
    known = VERIFIED.get(token, public_key)
    if known is not None:
        return known
    try:
        raw = token.encode("utf-8")
        signing_input, signature_segment = raw.rsplit(b".", 1)
        header_segment, payload_segment = signing_input.split(b".", 1)
        header = json.loads(_b64url(header_segment))
        if not isinstance(header, dict):
            raise _Malformed("header")
        # Ours is exactly {"alg": "EdDSA"}: no detached payload (b64) and no critical
        # extensions (crit), which PyJWT would honour or refuse; refuse them here.
        if header.get("alg") != "EdDSA" or "b64" in header or "crit" in header:
            raise _Malformed("header")
        kid = header.get("kid", "")
        if not isinstance(kid, str) or len(kid) > 16:
            raise _Malformed("header")
    except (ValueError, RecursionError) as exc:  # split, base64 and JSON errors
        raise _Malformed(str(exc)) from exc
    if isinstance(public_key, Mapping):  # a rotated community: pick the key by kid
        chosen = public_key.get(kid)
        if chosen is None:
            raise InvalidSignature("no such key")
        public_key = chosen
    key = raw_public(public_key)
    try:
        payload = _b64url(payload_segment)
        signature = _b64url(signature_segment)
    except ValueError as exc:
        raise _Malformed(str(exc)) from exc
    _verify(key, signature, signing_input)  # raises InvalidSignature
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise _Malformed("payload") from exc
    if not isinstance(claims, dict):
        raise _Malformed("payload")
    for name in REQUIRED_CLAIMS:
        if claims.get(name) is None:
            raise _Malformed(f"missing {name}")
    # PyJWT's checks of registered claims that stay on with _OPTIONS (ours carry none).
    if "iat" in claims:
        try:
            iat = int(claims["iat"])
        except (ValueError, TypeError, OverflowError) as exc:
            raise _Malformed("iat") from exc
        if iat > time.time():
            raise _Malformed("iat")
    if "sub" in claims and not isinstance(claims["sub"], str):
        raise _Malformed("sub")
    if "jti" in claims and not isinstance(claims["jti"], str):
        raise _Malformed("jti")
    VERIFIED.put(token, kid, key, claims)
    return claims


def check_token(
    token: str,
    public_key: PublicKeys,
    community_id: int,
    device_uid: str,
    now: float,
    community_gate: bool = False,
) -> TokenCheck:
    """The same checks a gate makes offline, without the database: pure and fast."""
    try:
        claims = _verified_claims(token, public_key)
    except InvalidSignature:
        # Signed by another community's key, or forged: say which, from the unverified iss.
        try:
            iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            iss = None
        if iss is not None and str(iss) != str(community_id):
            return TokenCheck("pass_other_community")
        return TokenCheck("pass_forged")
    except _Malformed:
        return TokenCheck("pass_invalid")
    pid = _pass_id(claims.get("sub"))
    doors, exp, nbf, uses = (
        claims.get("doors"),
        claims.get("exp"),
        claims.get("nbf"),
        claims.get("uses"),
    )
    if (
        pid is None
        or not isinstance(doors, list)
        or not isinstance(uses, int)
        or not isinstance(exp, int | float)
        or not isinstance(nbf, int | float)
    ):
        return TokenCheck("pass_invalid", pid)
    if str(claims.get("iss")) != str(community_id):
        return TokenCheck("pass_other_community", pid, claims)
    if now > exp + LEEWAY_S:
        return TokenCheck("pass_expired", pid, claims)
    if now < nbf - LEEWAY_S:
        return TokenCheck("pass_not_yet_valid", pid, claims)
    if not covers(doors, device_uid, community_gate):
        return TokenCheck("pass_wrong_door", pid, claims)
    return TokenCheck(None, pid, claims)
