"""Access tokens (short-lived JWT) and rotating refresh tokens (opaque, stored hashed).

A refresh token is used once: using it marks it spent and issues the next one of the
same family. Presenting a spent or revoked token means it was stolen or replayed, so the
whole family is revoked and the holder must log in again.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import jwt
from tortoise.transactions import in_transaction

from anxin.clock import clock, utcnow
from anxin.errors import Unauthenticated, unauthorized
from anxin.settings import MIN_JWT_SECRET_LENGTH, PUBLIC_SECRETS, InsecureConfiguration, Settings
from models import RefreshToken

ALGORITHM = "HS256"
ISSUER = "anxin"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


@dataclass(frozen=True)
class AccessClaims:
    subject_type: str
    subject_id: int
    jti: str
    extra: dict[str, Any]


def _signing_key(settings: Settings) -> str:
    """The JWT secret, never an empty or published one (the server refuses to start with
    those; this guards every other way of building settings)."""
    secret = settings.jwt_secret
    if len(secret) < MIN_JWT_SECRET_LENGTH or secret in PUBLIC_SECRETS:
        raise InsecureConfiguration("ANXIN_JWT_SECRET is missing, short or published")
    return secret


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_access_token(
    settings: Settings, subject_type: str, subject_id: int, extra: dict[str, Any] | None = None
) -> str:
    now = int(clock.time())
    payload = {
        "iss": ISSUER,
        "sub": f"{subject_type}:{subject_id}",
        "typ": "access",
        "iat": now,
        "exp": now + settings.access_token_ttl_s,
        "jti": secrets.token_hex(8),
        **(extra or {}),
    }
    return jwt.encode(payload, _signing_key(settings), algorithm=ALGORITHM)


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    """The claims of a valid, unexpired access token, else 401.

    The signature check and parsing of a token are done once per process (`_verified`
    keeps the result by the exact token string, which cannot change): a phone sends the
    same token with every request until it expires. Expiry is checked on every call, and
    what the token names (the account, its roles, memberships) is read by the caller on
    every request, so a blocked or deleted account is refused at once."""
    subject_type, subject_id, jti, exp, extra = _verified(_signing_key(settings), token)
    if exp <= clock.time():
        raise unauthorized("token_expired", "token expired", "登录已过期，请重新登录")
    return AccessClaims(subject_type, subject_id, jti, dict(extra))


_VerifiedToken = tuple[str, int, str, float, tuple[tuple[str, Any], ...]]


@lru_cache(maxsize=8192)
def _verified(key: str, token: str) -> _VerifiedToken:
    """Signature, issuer, type and subject of `token` under `key` (raises 401; a refused
    token is not cached, so a later valid one is never shadowed)."""
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            # PyJWT reads the wall clock; expiry is checked by the caller against our clock.
            options={"require": ["exp", "sub", "typ"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError as exc:
        raise unauthorized("token_invalid", "invalid token", "登录凭证无效") from exc
    exp = payload.get("exp", 0)
    if payload.get("typ") != "access" or not isinstance(exp, int | float):
        raise unauthorized("token_invalid", "invalid token", "登录凭证无效")
    kind, _, ident = str(payload["sub"]).partition(":")
    if kind not in ("resident", "staff") or not ident.isdigit():
        raise unauthorized("token_invalid", "invalid token", "登录凭证无效")
    extra = tuple(
        (k, v) for k, v in payload.items() if k not in {"iss", "sub", "typ", "iat", "exp", "jti"}
    )
    return kind, int(ident), str(payload.get("jti", "")), float(exp), extra


async def _new_refresh(settings: Settings, subject_type: str, subject_id: int, family: str) -> str:
    token = "rt_" + secrets.token_urlsafe(32)
    await RefreshToken.create(
        token_hash=_hash(token),
        family=family,
        subject_type=subject_type,
        subject_id=subject_id,
        expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl_s),
    )
    return token


async def issue_token_pair(
    settings: Settings, subject_type: str, subject_id: int, extra: dict[str, Any] | None = None
) -> TokenPair:
    refresh = await _new_refresh(settings, subject_type, subject_id, secrets.token_hex(16))
    return TokenPair(
        issue_access_token(settings, subject_type, subject_id, extra),
        refresh,
        settings.access_token_ttl_s,
    )


async def revoke_family(family: str, reason: str) -> int:
    return await RefreshToken.filter(family=family, revoked_at=None).update(
        revoked_at=utcnow(), revoked_reason=reason
    )


async def revoke_subject(subject_type: str, subject_id: int, reason: str) -> int:
    """Log a person out everywhere (blocked resident, deactivated staff)."""
    return await RefreshToken.filter(
        subject_type=subject_type, subject_id=subject_id, revoked_at=None
    ).update(revoked_at=utcnow(), revoked_reason=reason)


_REFRESH_INVALID = ("refresh_token_invalid", "invalid refresh token", "刷新凭证无效，请重新登录")


async def rotate_refresh_token(settings: Settings, token: str) -> tuple[str, int, str]:
    """Spend `token`; returns (subject_type, subject_id, next refresh token)."""
    if not isinstance(token, str) or not token.startswith("rt_") or len(token) > 100:
        raise unauthorized(*_REFRESH_INVALID)
    reused: str | None = None  # the family to revoke, once the transaction is over
    async with in_transaction():
        row = await RefreshToken.filter(token_hash=_hash(token)).select_for_update().first()
        if row is None:
            raise unauthorized(*_REFRESH_INVALID)
        if row.revoked_at is not None:
            raise unauthorized(*_REFRESH_INVALID)
        if row.used_at is not None:
            reused = row.family
        elif row.expires_at <= utcnow():
            raise unauthorized(
                "refresh_token_expired", "refresh token expired", "登录已过期，请重新登录"
            )
        elif await RefreshToken.filter(id=row.id, used_at=None).update(used_at=utcnow()) != 1:
            reused = row.family  # a concurrent rotation won the race: treat as reuse
        else:
            nxt = await _new_refresh(settings, row.subject_type, row.subject_id, row.family)
    if reused is not None:
        # Outside the transaction: raising inside it would roll the revocation back.
        await revoke_family(reused, "reuse_detected")
        raise Unauthenticated(
            "refresh_token_reused",
            "刷新凭证已被使用，为安全起见已退出所有会话，请重新登录",
            "refresh token reused; every session of this login was revoked",
        )
    return row.subject_type, row.subject_id, nxt


async def revoke_refresh_token(token: str) -> None:
    row = await RefreshToken.get_or_none(token_hash=_hash(token))
    if row is not None:
        await revoke_family(row.family, "logout")
