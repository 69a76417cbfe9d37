"""HTTP Digest, server side (RFC 2617, qop=auth, MD5 as GA/T 1400.4 uses it).

Nonces are stateless: `<unix time>.<HMAC of it>`, valid for `NONCE_TTL_S`, so any worker
can check one another issued. The client side is httpx's `DigestAuth`, an independent
implementation, which keeps both ends honest in the tests.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable

NONCE_TTL_S = 300
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 -- RFC 2617 is MD5


def make_nonce(secret: bytes, now: float | None = None) -> str:
    stamp = str(int(time.time() if now is None else now))
    mac = hmac.new(secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{stamp}.{mac}"


def nonce_fresh(nonce: str, secret: bytes, now: float | None = None) -> bool:
    stamp, _, mac = nonce.partition(".")
    if not stamp.isdigit():
        return False
    good = hmac.new(secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]
    age = (time.time() if now is None else now) - int(stamp)
    return hmac.compare_digest(mac, good) and -5 <= age <= NONCE_TTL_S


def challenge(realm: str, secret: bytes) -> str:
    """The WWW-Authenticate header of a 401."""
    return (
        f'Digest realm="{realm}", qop="auth", algorithm=MD5, '
        f'nonce="{make_nonce(secret)}", opaque="{secrets.token_hex(8)}"'
    )


def parse(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "digest":
        return {}
    return {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _PARAM.finditer(rest)
    }


def response_for(
    username: str, realm: str, password: str, method: str, uri: str, p: dict[str, str]
) -> str:
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    return _md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}")


def verify(
    header: str,
    *,
    method: str,
    path: str,
    realm: str,
    secret: bytes,
    password_of: Callable[[str], str | None],
) -> str | None:
    """The authenticated username, or None (wrong password, stale nonce, other realm, a
    digest computed for another request)."""
    p = parse(header)
    needed = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")
    if any(k not in p for k in needed) or p["qop"] != "auth" or p["realm"] != realm:
        return None
    if p["uri"].split("?", 1)[0] != path or not nonce_fresh(p["nonce"], secret):
        return None
    password = password_of(p["username"])
    if password is None:
        return None
    expected = response_for(p["username"], realm, password, method, p["uri"], p)
    return p["username"] if hmac.compare_digest(expected, p["response"]) else None
