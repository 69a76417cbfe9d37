"""check_token verifies EdDSA JWTs without PyJWT's generic path: it must decide every
token exactly as `jwt.decode(..., algorithms=["EdDSA"])` with the same options would."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.passes import tokens
from domain.passes.tokens import check_token

NOW = 1_800_000_000.0
DOOR = "ax-door"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**extra: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": "7",
        "sub": "42",
        "nbf": int(NOW) - 60,
        "exp": int(NOW) + 3600,
        "doors": [DOOR],
        "uses": 3,
        "kind": "visitor",
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def _pyjwt_claims(token: str, public: Any) -> dict[str, Any]:
    """What check_token called before: PyJWT's decode, its errors mapped to ours."""
    try:
        return jwt.decode(token, public, algorithms=["EdDSA"], options=tokens._OPTIONS)
    except jwt.InvalidSignatureError as exc:
        raise InvalidSignature from exc
    except jwt.PyJWTError as exc:
        raise tokens._Malformed(str(exc)) from exc


def _raw(header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes, key: Any) -> str:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    p = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{_b64(h)}.{_b64(p)}".encode()
    return f"{signing_input.decode()}.{_b64(key.sign(signing_input))}"


def test_check_token_decides_like_pyjwt(monkeypatch: pytest.MonkeyPatch) -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    public = key.public_key()
    good = jwt.encode(_claims(), key, algorithm="EdDSA", headers={"typ": None})
    body, _, sig = good.rpartition(".")
    cases: dict[str, str] = {
        "valid": good,
        "other community key": jwt.encode(
            _claims(iss="8"), other, algorithm="EdDSA", headers={"typ": None}
        ),
        "forged, same iss": jwt.encode(_claims(), other, algorithm="EdDSA"),
        "tampered payload": _b64(b'{"alg":"EdDSA"}')
        + "."
        + _b64(json.dumps(_claims(uses=99)).encode())
        + "."
        + sig,
        "signature cut": f"{body}.{sig[:20]}",
        "no signature": f"{body}.",
        "two segments": body,
        "one segment": "abc",
        "empty": "",
        "garbage": "!!.@@.##",
        "non-ascii": "通行证.令牌.签名",
        "header not json": f"{_b64(b'nope')}.{body.split('.')[1]}.{sig}",
        "header a list": _raw(b"[1]", _claims(), key),
        "alg HS256": jwt.encode(_claims(), "secret-key-long-enough-for-hs256!", algorithm="HS256"),
        "alg none": _raw({"alg": "none"}, _claims(), key),
        "no alg": _raw({}, _claims(), key),
        "typ JWT": jwt.encode(_claims(), key, algorithm="EdDSA"),
        "crit header": _raw({"alg": "EdDSA", "crit": ["exp"]}, _claims(), key),
        "payload a list": _raw({"alg": "EdDSA"}, b"[1, 2]", key),
        "payload not json": _raw({"alg": "EdDSA"}, b"{nope", key),
        "missing exp": _raw({"alg": "EdDSA"}, _claims(exp=None), key),
        "null nbf": _raw({"alg": "EdDSA"}, {**_claims(), "nbf": None}, key),
        "sub not a string": _raw({"alg": "EdDSA"}, _claims(sub=42), key),
        "jti not a string": _raw({"alg": "EdDSA"}, _claims(jti=5), key),
        "iat in the past": _raw({"alg": "EdDSA"}, _claims(iat=1), key),
        "iat in the future": _raw({"alg": "EdDSA"}, _claims(iat=4_000_000_000), key),
        "iat not a number": _raw({"alg": "EdDSA"}, _claims(iat="soon"), key),
    }
    got = {name: check_token(t, public, 7, DOOR, NOW) for name, t in cases.items()}
    monkeypatch.setattr(tokens, "_verified_claims", _pyjwt_claims)
    for name, token in cases.items():
        expected = check_token(token, public, 7, DOOR, NOW)
        assert (got[name].reason, got[name].pass_id) == (expected.reason, expected.pass_id), name
    assert got["valid"].ok and got["valid"].pass_id == 42
    assert got["other community key"].reason == "pass_other_community"
    assert got["tampered payload"].reason == got["forged, same iss"].reason == "pass_forged"
    assert got["alg none"].reason == got["crit header"].reason == "pass_invalid"


def test_signature_of_another_length_is_refused() -> None:
    """libsodium reads the signature from the front of signature + message: one longer or
    shorter than 64 bytes must be refused before, not shift what is verified."""
    key = Ed25519PrivateKey.generate()
    good = jwt.encode(_claims(), key, algorithm="EdDSA", headers={"typ": None})
    body, _, sig = good.rpartition(".")
    raw_sig = base64.urlsafe_b64decode(sig + "==")
    for bad in (raw_sig + b"\0", raw_sig[:63], raw_sig + body.encode()[:8]):
        assert check_token(f"{body}.{_b64(bad)}", key.public_key(), 7, DOOR, NOW).reason == (
            "pass_forged"
        )


def test_a_verified_token_is_remembered_only_for_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The signature cache skips a signature already verified with the same key; another
    key, a key set without that kid, or a retired kid gets no answer from it, and the
    claims (window, door) are still checked every time."""
    monkeypatch.setattr(tokens, "VERIFIED", tokens.VerifiedTokens(max_size=2))
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    token = jwt.encode(_claims(), key, algorithm="EdDSA", headers={"typ": None, "kid": "k1"})
    calls: list[bytes] = []
    real_verify = tokens._verify
    monkeypatch.setattr(tokens, "_verify", lambda k, s, m: (calls.append(k), real_verify(k, s, m)))

    assert check_token(token, {"k1": key.public_key()}, 7, DOOR, NOW).ok
    assert check_token(token, {"k1": key.public_key()}, 7, DOOR, NOW).ok
    assert len(calls) == 1  # the second check skipped the signature
    # Still checked every time: the window and the door.
    assert check_token(token, {"k1": key.public_key()}, 7, DOOR, NOW + 7200).reason == (
        "pass_expired"
    )
    assert check_token(token, {"k1": key.public_key()}, 7, "other-door", NOW).reason == (
        "pass_wrong_door"
    )
    # Its key retired (no longer in the set) or replaced under the same kid: verified anew.
    assert check_token(token, {"k2": key.public_key()}, 7, DOOR, NOW).reason == "pass_forged"
    assert check_token(token, {"k1": other.public_key()}, 7, DOOR, NOW).reason == "pass_forged"
    assert check_token(token, other.public_key(), 7, DOOR, NOW).reason == "pass_forged"
    assert len(calls) == 3
    # A forgery is never remembered; the oldest entry leaves past max_size.
    forged = jwt.encode(_claims(), other, algorithm="EdDSA", headers={"typ": None, "kid": "k1"})
    for _ in range(2):
        assert check_token(forged, {"k1": key.public_key()}, 7, DOOR, NOW).reason == "pass_forged"
    assert len(tokens.VERIFIED) == 1
    for sub in ("43", "44"):
        t = jwt.encode(_claims(sub=sub), key, algorithm="EdDSA", headers={"typ": None})
        assert check_token(t, key.public_key(), 7, DOOR, NOW).ok
    assert len(tokens.VERIFIED) == 2
    calls.clear()
    assert check_token(token, {"k1": key.public_key()}, 7, DOOR, NOW).ok
    assert len(calls) == 1  # evicted, so verified again
