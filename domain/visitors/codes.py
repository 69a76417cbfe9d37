"""Household door codes for relatives: room + code keyed at a panel.

Hashing: HMAC-SHA256 with a server key (derived from the data-at-rest keyring, so it is
never in the database) over room id, a per-room random salt and the code. Why not
argon2: a 6-8 digit code has at most 10^8 values, so any hash of it, argon2 included,
falls to an offline search in minutes once hash and salt leak; slowing every keypress
at the gate by ~50 ms buys nothing. What protects the code is (1) the key that a
database dump does not contain and (2) the online lockout below. HMAC verifies in
microseconds and compares in constant time.

Lockout: LOCK_AFTER wrong tries within LOCK_WINDOW_S, counted per panel and per room
(Redis or memory counters), lock that panel / room for the rest of the window and raise
one CODE_GUESSING alarm per burst (not one per panel and one per room). Every try is an
access event with its reason, never the code.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from anxin.clock import clock
from anxin.crypto import KeyRing
from anxin.errors import invalid, not_found
from anxin.runtime import Runtime
from auth.permissions import require_membership
from domain import audit
from domain.access.policy import Decision, device_accepts
from domain.alarms.service import raise_alarm
from domain.visitors.rooms import resolve_room
from models import AccessMethod, AlarmKind, Device, HouseholdCode, Membership, MembershipState

LOCK_AFTER = 5
LOCK_WINDOW_S = 15 * 60
CODE_LENGTH = (6, 8)
COMMON_CODES = frozenset(
    {
        "123456",
        "654321",
        "123123",
        "112233",
        "123321",
        "520520",
        "521521",
        "131420",
        "147258",
        "159357",
        "147852",
        "258369",
        "012345",
        "987654",
        "1234567",
        "12345678",
        "88888888",
        "11223344",
        "19880808",
        "20080808",
    }
)


def is_trivial(code: str) -> bool:
    """Codes a guesser tries first: one digit, two digits alternating, runs up or down,
    a repeated 2- or 3-digit block, the usual favourites."""
    if len(set(code)) <= 2 or code in COMMON_CODES:
        return True
    steps = {(int(b) - int(a)) % 10 for a, b in zip(code, code[1:], strict=False)}
    if steps in ({1}, {9}):
        return True
    return any(code == (code[:n] * len(code))[: len(code)] for n in (2, 3, 4))


def validate_code(code: str) -> str:
    low, high = CODE_LENGTH
    if not code.isascii() or not code.isdigit() or not low <= len(code) <= high:
        raise invalid(
            "code_format", f"密码须为{low}-{high}位数字", f"a code is {low}-{high} digits"
        )
    if is_trivial(code):
        raise invalid("code_trivial", "密码过于简单，请换一个", "that code is too easy to guess")
    return code


def _keyring(runtime: Runtime) -> KeyRing:
    return runtime.keyring


@lru_cache(maxsize=16)
def _derive(key: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"anxin-door-code", info=b"household code v1"
    ).derive(key)


def code_key(keyring: KeyRing, kid: str | None = None) -> tuple[str, bytes] | None:
    kid = kid or keyring.primary
    key = keyring.keys.get(kid)
    return None if key is None else (kid, _derive(key))


def code_hash(key: bytes, room_id: int, salt: str, code: str) -> str:
    return hmac.new(key, f"{room_id}:{salt}:{code}".encode(), hashlib.sha256).hexdigest()


async def set_code(runtime: Runtime, resident_id: int, room_id: int, code: str) -> HouseholdCode:
    membership = await require_membership(resident_id, room_id)
    code = validate_code(code)
    kid, key = code_key(_keyring(runtime))  # type: ignore[misc]
    salt = secrets.token_hex(8)
    row, _ = await HouseholdCode.update_or_create(
        room_id=room_id,
        defaults={
            "code_hash": code_hash(key, room_id, salt, code),
            "salt": salt,
            "key_id": kid,
            "set_by_id": resident_id,
        },
    )
    await audit.record(
        "door_code.set",
        actor_type="resident",
        actor_id=resident_id,
        community_id=membership.community_id,
        target_type="room",
        target_id=room_id,
    )
    return row


def new_code(length: int = CODE_LENGTH[0]) -> str:
    """A random code that passes `validate_code` (trivial ones are drawn again)."""
    rng = secrets.SystemRandom()
    while True:
        code = "".join(rng.choice("0123456789") for _ in range(length))
        if not is_trivial(code):
            return code


async def regenerate_code(runtime: Runtime, resident_id: int, room_id: int) -> str:
    """The one-tap change offered when a member leaves: a fresh random code replaces the
    old one at once (the old code stops at every panel); shown to this member only."""
    code = new_code()
    await set_code(runtime, resident_id, room_id, code)
    return code


async def clear_code(resident_id: int, room_id: int) -> None:
    membership = await require_membership(resident_id, room_id)
    deleted = await HouseholdCode.filter(room_id=room_id).delete()
    if not deleted:
        raise not_found("door code")
    await audit.record(
        "door_code.clear",
        actor_type="resident",
        actor_id=resident_id,
        community_id=membership.community_id,
        target_type="room",
        target_id=room_id,
    )


async def _failed(runtime: Runtime, device: Device, room_id: int | None, reason: str) -> None:
    """Count a wrong try per panel and per room; the try that locks raises the alarm.

    One burst, one alarm (docs/passes.md): the try that locks the panel usually locks the
    room too, and a second panel joining a burst against a room already locked adds no
    alarm. Each scope that took part in an alarmed burst is remembered for the window."""
    kv, window = runtime.kv, int(clock.time() // LOCK_WINDOW_S)
    scopes = [("panel", device.id)] + ([("room", room_id)] if room_id is not None else [])
    locked = []
    fails = 0
    for scope, ident in scopes:
        n = await kv.incr(f"codefail:{scope}:{ident}", LOCK_WINDOW_S)
        fails = max(fails, n)
        if n == LOCK_AFTER:
            locked.append((scope, ident))
    if not locked:
        return
    claims = [
        await kv.set(f"codeburst:{scope}:{ident}", "1", LOCK_WINDOW_S, only_new=True)
        for scope, ident in scopes
    ]
    if not all(claims):
        return  # part of a burst that has raised its alarm already
    scope, ident = locked[0]
    await raise_alarm(
        runtime,
        device.community_id,
        AlarmKind.CODE_GUESSING,
        device_id=device.id,
        event_key=f"code-guessing:{scope}:{ident}:{window}",
        details={
            "locked": [s for s, _ in locked],
            "room_id": room_id,
            "device": device.name,
            "failures": fails,
            "last_reason": reason,
        },
    )


async def try_code(runtime: Runtime, device: Device, room_text: str, code: str) -> Decision:
    """Decide a code keyed at a panel. Counts failures; never logs the code."""
    refusal = device_accepts(device, AccessMethod.CODE)
    if refusal is not None:
        return refusal
    kv = runtime.kv
    if await kv.get_int(f"codefail:panel:{device.id}") >= LOCK_AFTER:
        return Decision.deny("code_locked")
    room = await resolve_room(device, room_text)
    room_id = room.id if room else None
    if room_id is not None and await kv.get_int(f"codefail:room:{room_id}") >= LOCK_AFTER:
        return Decision.deny("code_locked", room_id=room_id)
    keyring = _keyring(runtime)
    stored = await HouseholdCode.get_or_none(room_id=room_id) if room_id else None
    found = code_key(keyring, stored.key_id) if stored else None
    kid_key = found[1] if found else code_key(keyring)[1]  # type: ignore[index]
    # Hash even when there is nothing to compare with: same time either way.
    candidate = code_hash(kid_key, room_id or 0, stored.salt if stored else "-", code[:16])
    if (
        room is None
        or stored is None
        or found is None
        or not hmac.compare_digest(candidate, stored.code_hash)
    ):
        reason = (
            "unknown_room" if room is None else "code_not_set" if stored is None else "code_wrong"
        )
        await _failed(runtime, device, room_id, reason)
        return Decision.deny(reason, room_id=room_id)
    if not await Membership.exists(room_id=room.id, state=MembershipState.APPROVED):
        return Decision.deny("no_household", room_id=room.id)
    return Decision(True, "household_code", room_id=room.id)
