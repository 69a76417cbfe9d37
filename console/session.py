"""Console sessions: an opaque cookie, the session itself kept server-side.

The cookie (`HttpOnly`, `SameSite=Strict`, `Path=/console`, `Secure` in production)
holds a random id; the KV store (Redis or memory) keeps the staff id and the session's
CSRF token under the id's SHA-256, so a leaked store reveals no usable cookie. Rights are
read from the database on every request (`load_principal`), so a disabled account or a
removed role counts at once; sign-out deletes the session.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from anxin.runtime import Runtime
from domain.staff.service import staff_epoch

COOKIE = "anxin_console"
PRE_COOKIE = "anxin_console_pre"  # CSRF token of the sign-in form, before a session exists
SESSION_TTL_S = 8 * 3600  # one shift; every request renews it
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass
class Session:
    sid_hash: str
    staff_id: int
    csrf: str
    epoch: int = 0  # the account's epoch at sign-in: a reset or a disable moves it on


def _key(sid_hash: str) -> str:
    return f"console:session:{sid_hash}"


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


async def create(runtime: Runtime, staff_id: int) -> tuple[str, Session]:
    sid = secrets.token_urlsafe(32)
    epoch = await staff_epoch(runtime.kv, staff_id)
    session = Session(_hash(sid), staff_id, secrets.token_urlsafe(32), epoch)
    await _store(runtime, session)
    return sid, session


async def _store(runtime: Runtime, session: Session) -> None:
    value = json.dumps({"staff_id": session.staff_id, "csrf": session.csrf, "epoch": session.epoch})
    await runtime.kv.set(_key(session.sid_hash), value, SESSION_TTL_S)


async def load(runtime: Runtime, request: Request) -> Session | None:
    sid = request.cookies.get(COOKIE, "")
    if not sid or len(sid) > 128:
        return None
    sid_hash = _hash(sid)
    raw = await runtime.kv.get(_key(sid_hash))
    if raw is None:
        return None
    data = json.loads(raw)
    session = Session(sid_hash, int(data["staff_id"]), str(data["csrf"]), int(data["epoch"]))
    if session.epoch != await staff_epoch(runtime.kv, session.staff_id):
        await destroy(runtime, session)  # password reset or account disabled since
        return None
    await _store(runtime, session)  # sliding expiry
    return session


async def destroy(runtime: Runtime, session: Session) -> None:
    await runtime.kv.delete(_key(session.sid_hash))


def set_cookie(response: Response, name: str, value: str, secure: bool, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def token_matches(expected: str, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(expected, given or "")
