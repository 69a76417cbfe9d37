"""Offline visitor-pass check, as a terminal does it without the server.

Passes are EdDSA (Ed25519) JWTs signed by the community: the device holds only the public
key, so it can verify but never mint. Claims: iss = community id, sub = pass id, nbf, exp,
doors = device ids, ["*"], or ["@gates"] (every gate that serves the whole community: a
terminal installed as one, `community_gate`), uses = max uses, kind = "visitor" |
"delivery", plate (opt).
Time comes from anxin.clock (PyJWT's own exp/nbf checks use the wall clock, so they are off).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from anxin.clock import clock


@dataclass(frozen=True)
class PassVerdict:
    ok: bool
    reason: str | None = None  # bad_token, bad_signature, wrong_community, expired,
    # not_yet_valid, wrong_door, revoked, used_up, bad_claims
    pass_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    uses: int = 0  # uses counted on this device, including this one when ok


class PassVerifier:
    def __init__(
        self,
        public_key: Ed25519PublicKey | bytes | str | dict[str, tuple[Any, int | None]],
        community_id: str,
        device_id: str,
        leeway_s: float = 5.0,
        community_gate: bool = False,
    ) -> None:
        # kid -> (key, forget after epoch ms); one key given alone has kid "".
        self.keys: dict[str, tuple[Ed25519PublicKey, int | None]] = {}
        if isinstance(public_key, dict):
            self.set_keys(public_key)
        else:
            self.keys[""] = (_load(public_key), None)
        self.community_id = str(community_id)
        self.device_id = device_id
        self.community_gate = community_gate
        self.leeway_s = leeway_s
        self.revoked: dict[str, int | None] = {}  # pass id -> forget after (epoch ms)
        self.uses: dict[str, int] = {}

    @property
    def public_key(self) -> Ed25519PublicKey:
        return next(iter(self.keys.values()))[0]

    def set_keys(self, keys: dict[str, tuple[Any, int | None]]) -> None:
        self.keys = {kid: (_load(key), until) for kid, (key, until) in keys.items()}

    def _key_for(self, token: str) -> Ed25519PublicKey | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
        except jwt.PyJWTError:
            return self.public_key
        found = self.keys.get(kid if isinstance(kid, str) else "")
        if found is None or (found[1] is not None and found[1] < clock.time() * 1000):
            return None
        return found[0]

    def revoke(self, pass_ids: list[str], until_ms: int | None = None) -> None:
        for pid in pass_ids:
            self.revoked[pid] = until_ms

    def check(self, token: str) -> PassVerdict:
        """Verify without counting a use."""
        key = self._key_for(token)
        if key is None:
            return PassVerdict(False, "bad_signature")  # a key we do not hold (any more)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iss": False,
                    "verify_aud": False,
                    "require": ["iss", "sub", "exp", "nbf"],
                },
            )
        except jwt.InvalidSignatureError:
            return PassVerdict(False, "bad_signature")
        except jwt.MissingRequiredClaimError:
            return PassVerdict(False, "bad_claims")
        except jwt.PyJWTError:
            return PassVerdict(False, "bad_token")
        pid = claims.get("sub")
        doors, uses, exp, nbf = (
            claims.get("doors"),
            claims.get("uses", 1),
            claims.get("exp"),
            claims.get("nbf"),
        )
        if (
            not isinstance(pid, str)
            or not isinstance(doors, list)
            or not isinstance(uses, int)
            or isinstance(uses, bool)
            or not isinstance(exp, int | float)
            or not isinstance(nbf, int | float)
        ):
            return PassVerdict(False, "bad_claims", pid if isinstance(pid, str) else None)
        now = clock.time()
        self._forget_revocations(now)
        if str(claims.get("iss")) != self.community_id:
            return PassVerdict(False, "wrong_community", pid, claims)
        if now > exp + self.leeway_s:
            return PassVerdict(False, "expired", pid, claims)
        if now < nbf - self.leeway_s:
            return PassVerdict(False, "not_yet_valid", pid, claims)
        if (
            "*" not in doors
            and self.device_id not in doors
            and not (self.community_gate and "@gates" in doors)
        ):
            return PassVerdict(False, "wrong_door", pid, claims)
        if pid in self.revoked:
            return PassVerdict(False, "revoked", pid, claims)
        used = self.uses.get(pid, 0)
        if used >= uses:
            return PassVerdict(False, "used_up", pid, claims, used)
        return PassVerdict(True, None, pid, claims, used + 1)

    def use(self, token: str) -> PassVerdict:
        """Verify and, when valid, count the use locally."""
        v = self.check(token)
        if v.ok and v.pass_id:
            self.uses[v.pass_id] = v.uses
        return v

    def _forget_revocations(self, now: float) -> None:
        stale = [p for p, until in self.revoked.items() if until is not None and until < now * 1000]
        for p in stale:
            del self.revoked[p]


def _load(public_key: Ed25519PublicKey | bytes | str) -> Ed25519PublicKey:
    if isinstance(public_key, str):
        public_key = public_key.encode()
    if isinstance(public_key, bytes):
        loaded = load_pem_public_key(public_key)
        if not isinstance(loaded, Ed25519PublicKey):
            raise ValueError("pass key must be an Ed25519 public key")
        return loaded
    return public_key
