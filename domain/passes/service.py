"""Visitor and delivery passes: create, verify and count uses, revoke, reconcile.

Uses are counted once, in `VisitorPass.uses` (every use the server knows of):
* a gate that asks the server (qr_scan "unchecked") gets a use only through one
  conditional UPDATE (`uses < max_uses AND state = active`), safe under concurrency;
* a gate that decided offline reports `pass_used` with its own count; the delta against
  the count it reported before is added under a row lock (`device_uses`). The qr_scan
  "accepted" event of the same use only writes the access event, so nothing is counted
  twice even though the bridge handles both events concurrently.
Once a pass is used up it becomes `exhausted` and a `revoke_pass` goes to every gate, so
gates that verify by themselves stop too; a pass found used more often than allowed (or
after its revocation) raises a staff alarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from tortoise.expressions import F, Q, Subquery
from tortoise.transactions import in_transaction

from anxin.batching import Batcher
from anxin.bus import run_subscriber
from anxin.channels import PASS_KEYS_CHANGED
from anxin.clock import clock, utcnow
from anxin.errors import forbidden, invalid, not_found, too_many
from anxin.runtime import Key, Runtime
from anxin.timefmt import from_person, local_iso
from auth.permissions import (
    Action,
    AuditActor,
    Principal,
    authorize,
    resident_principal_with,
)
from domain import audit
from domain.access.policy import Decision, serves_room
from domain.alarms.service import raise_alarm
from domain.community.zone import community_timezone
from domain.passes.plates import parse_plate
from domain.passes.tokens import (
    GATES,
    TOKEN_MAX_DOORS,
    CommunityKey,
    PassKeys,
    check_token,
    mint,
)
from domain.ports import DEVICES
from models import (
    AlarmKind,
    Device,
    DeviceStatus,
    Membership,
    MembershipState,
    PassKeyRetired,
    PassKind,
    PassRevocation,
    PassState,
    Resident,
    VisitorPass,
    bulk,
)
from models.bulk import in_transaction as in_caller_transaction

log = logging.getLogger(__name__)

# Bounds (seconds / counts). A visitor pass lasts at most a week; a delivery pass two hours.
VISITOR_DEFAULT_S = 24 * 3600
VISITOR_MAX_S = 7 * 24 * 3600
VISITOR_USES = (1, 1, 20)  # default, min, max
DELIVERY_DEFAULT_S = 30 * 60
DELIVERY_MAX_S = 2 * 3600
DELIVERY_USES = (3, 1, 10)
MAX_START_AHEAD_S = 30 * 24 * 3600
PAST_START_GRACE_S = 5 * 60
CREATE_LIMIT_PER_HOUR = 30
REVOKE_CHUNK = 1000


class PassService:
    """Per-process state: the community key cache and revocation deliveries in flight
    (`runtime.get(PASSES)`)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.keys = PassKeys(runtime.keyring)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sub: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        # Another process rotated a key: drop the cached one (a cache invalidation only;
        # the cache also expires on its own after PassKeys.CACHE_S).
        self._sub = asyncio.create_task(
            run_subscriber(self.runtime.bus, PASS_KEYS_CHANGED, self._on_keys)
        )

    async def _on_keys(self, _: str, msg: dict[str, Any]) -> None:
        self.keys.drop(int(msg["community_id"]))

    async def stop(self) -> None:
        tasks = list(self._tasks) + ([self._sub] if self._sub else [])
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def settle(self) -> None:
        """Wait for background deliveries (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


PASSES: Key[PassService] = Key("passes")


def pass_service(runtime: Runtime) -> PassService:
    return runtime.get(PASSES)


# ------------------------------------------------------------------ creating


@dataclass
class PassRequest:
    kind: PassKind = PassKind.VISITOR
    room_id: int | None = None
    visitor_name: str = ""
    visitor_phone: str = ""
    # Without a UTC offset, or as a bare date, read in the community's zone.
    valid_from: datetime | date | None = None
    valid_until: datetime | date | None = None
    max_uses: int | None = None
    door_ids: list[int] | None = None
    plate: str | None = None


@dataclass(frozen=True)
class Household:
    """The room a resident acts for, as pass creation needs it."""

    room_id: int
    community_id: int
    unit_id: int
    building_id: int


@dataclass(frozen=True)
class Homes:
    """A resident's approved households (in membership order), read now, and the active
    doors of their communities (community id -> doors), as pass creation needs them."""

    households: list[Household]
    doors: dict[int, list[Device]]


_HOMES_SQL: str | None = None


def _homes_sql() -> str:
    """The approved memberships (id: the membership's) with their rooms and, on the same
    rows, their communities' active doors (columns `d__...`; none: NULLs)."""
    global _HOMES_SQL
    if _HOMES_SQL is None:
        doors = ", ".join(f'd."{c}" AS "d__{c}"' for c in sorted(Device._meta.db_fields))
        _HOMES_SQL = (
            'SELECT m."id", m."room_id", r."community_id", r."unit_id", r."building_id", '
            f'{doors} FROM "membership" m JOIN "room" r ON r."id" = m."room_id" '
            'LEFT JOIN "device" d ON d."community_id" = r."community_id" AND d."status" = ? '
            'WHERE m."resident_id" = ? AND m."state" = ?'
        )
    return _HOMES_SQL


def _homes_values(resident_id: int) -> list[Any]:
    return [DeviceStatus.ACTIVE.value, resident_id, MembershipState.APPROVED.value]


def _homes(rows: list[dict[str, Any]]) -> Homes:
    households: dict[int, Household] = {}
    doors: dict[int, dict[int, Device]] = {}
    for r in sorted(rows, key=lambda r: int(r["id"])):
        cid = r["community_id"]
        households.setdefault(r["id"], Household(r["room_id"], cid, r["unit_id"], r["building_id"]))
        found = doors.setdefault(cid, {})
        if r["d__id"] is not None and r["d__id"] not in found:
            fields = {c: r[f"d__{c}"] for c in Device._meta.db_fields}
            found[r["d__id"]] = Device._init_from_db(**fields)
    return Homes(list(households.values()), {c: list(d.values()) for c, d in doors.items()})


async def read_homes(resident_id: int) -> Homes:
    """The resident's `Homes`, read now in one prepared statement (the ORM built two
    queries per pass)."""
    return _homes(await bulk.select(Membership, _homes_sql(), _homes_values(resident_id)))


async def caller_homes(resident_id: int) -> tuple[Principal, Homes]:
    """`load_principal` for the resident and their `Homes`, in one statement."""
    principal, _, rows = await resident_principal_with(
        resident_id, rows=_homes_sql(), row_values=_homes_values(resident_id)
    )
    return principal, _homes(rows)


def household_for(homes: Homes, room_id: int | None) -> Household:
    """The approved household a resident acts for (their only one, or the named one)."""
    households = homes.households
    if room_id is not None:
        for h in households:
            if h.room_id == room_id:
                return h
        raise not_found("household")
    if not households:
        raise forbidden("no approved household", "您还没有已审核通过的房屋")
    if len({h.room_id for h in households}) > 1:
        raise invalid("room_required", "请选择房屋", "choose which household (room_id)")
    return households[0]


def pass_doors(room: Household, devices: list[Device], door_ids: list[int] | None) -> list[Device]:
    """Of `devices` (the active doors of the room's community), those that take QR passes
    and serve the household; by default its main gates (no building or unit: they serve
    everybody)."""
    eligible = [
        d
        for d in devices
        if "qr" in (d.methods or []) and serves_room(d, room.unit_id, room.building_id)
    ]
    gates = [d for d in eligible if d.unit_id is None and d.building_id is None]
    if door_ids:
        wanted = set(door_ids)
        chosen = [d for d in eligible if d.id in wanted]
        if len(chosen) != len(wanted):
            raise not_found("door")
    else:
        chosen = gates
    if not chosen:
        raise invalid(
            "no_pass_doors", "没有可使用通行证的门", "no door of this household takes passes"
        )
    if len(chosen) > TOKEN_MAX_DOORS and {d.id for d in chosen} != {d.id for d in gates}:
        # Named one by one, they would not fit a scannable QR.
        raise invalid(
            "pass_too_many_doors",
            f"最多选择{TOKEN_MAX_DOORS}个门，或使用全部大门",
            f"choose at most {TOKEN_MAX_DOORS} doors, or all main gates",
            {"max": TOKEN_MAX_DOORS},
        )
    return sorted(chosen, key=lambda d: d.id)


def doors_claim(doors: list[Device]) -> list[str]:
    """What the pass (row and token) names: the doors' uids, or GATES when they are more
    than a QR holds (pass_doors allows that only for all of the community's gates)."""
    if len(doors) > TOKEN_MAX_DOORS:
        return [GATES]
    return [d.device_uid for d in doors]


def _window(req: PassRequest, now: datetime, tz: str) -> tuple[datetime, datetime]:
    default_s, max_s = (
        (DELIVERY_DEFAULT_S, DELIVERY_MAX_S)
        if req.kind == PassKind.DELIVERY
        else (VISITOR_DEFAULT_S, VISITOR_MAX_S)
    )
    start = from_person(req.valid_from, tz) if req.valid_from is not None else now
    if req.valid_from is not None and not isinstance(req.valid_from, datetime):
        start = max(start, now)  # "from today": from now, not from a midnight gone by
    end = from_person(req.valid_until, tz, end_of_day=True) if req.valid_until is not None else None
    if start < now - timedelta(seconds=PAST_START_GRACE_S):
        raise invalid("pass_start_in_past", "生效时间不能早于现在", "valid_from is in the past")
    if start > now + timedelta(seconds=MAX_START_AHEAD_S):
        raise invalid(
            "pass_start_too_far", "生效时间最多提前30天", "valid_from at most 30 days ahead"
        )
    end = end or start + timedelta(seconds=default_s)
    if end <= start:
        raise invalid(
            "pass_window_invalid", "失效时间须晚于生效时间", "valid_until must follow valid_from"
        )
    if (end - start).total_seconds() > max_s:
        raise invalid(
            "pass_too_long",
            f"有效期最长{max_s // 3600}小时",
            f"a {req.kind.value} pass lasts at most {max_s // 3600} h",
            {"max_s": max_s},
        )
    return start, end


async def create_pass(
    runtime: Runtime, resident: Resident, req: PassRequest, known: Homes | None = None
) -> tuple[VisitorPass, str]:
    """`known`: the resident's `Homes` if read with their row (`caller_homes`)."""
    found = known if known is not None else await read_homes(resident.id)
    room = household_for(found, req.room_id)
    now = utcnow()
    start, end = _window(req, now, await community_tz(room.community_id))
    default, low, high = DELIVERY_USES if req.kind == PassKind.DELIVERY else VISITOR_USES
    uses = req.max_uses if req.max_uses is not None else default
    if not low <= uses <= high:
        raise invalid(
            "pass_uses_invalid", f"使用次数须为{low}-{high}次", f"uses must be {low}-{high}"
        )
    plate = parse_plate(req.plate) if req.plate else ""
    doors = pass_doors(room, found.doors.get(room.community_id, []), req.door_ids)
    hour = int(clock.time() // 3600)
    if await runtime.kv.incr(f"pass:create:{resident.id}:{hour}", 3600) > CREATE_LIMIT_PER_HOUR:
        raise too_many(retry_after=3600 - int(clock.time() % 3600))
    p = VisitorPass(
        community_id=room.community_id,
        room_id=room.room_id,
        created_by_id=resident.id,
        kind=req.kind,
        visitor_name=req.visitor_name,
        visitor_phone=req.visitor_phone,
        plate=plate,
        valid_from=start,
        valid_until=end,
        max_uses=uses,
        doors=doors_claim(doors),
        share_token=secrets.token_urlsafe(24),
        key_id=(await pass_service(runtime).keys.get(room.community_id)).kid,
    )
    await audit.create_recorded(
        p,
        "pass.create",
        actor_type="resident",
        actor_id=resident.id,
        community_id=room.community_id,
        target_type="pass",
        details={"kind": p.kind.value, "uses": uses, "doors": p.doors},
    )
    return p, await token_for(runtime, p)


async def token_for(runtime: Runtime, p: VisitorPass) -> str:
    key: CommunityKey = await pass_service(runtime).keys.signer(p.community_id, p.key_id)
    return mint(key, p)


# ------------------------------------------------------------------ reading


@functools.cache
def _my_passes_sql(before: bool) -> str:
    """`my_passes`'s statement (built once: table and column names are known only after
    the models are initialised)."""
    return (
        f'SELECT {bulk.columns(VisitorPass)} FROM "{VisitorPass._meta.db_table}" '
        f'WHERE "room_id" IN (SELECT "room_id" FROM "{Membership._meta.db_table}" '
        'WHERE "resident_id" = ? AND "state" = ?)'
        + (' AND "id" < ?' if before else "")
        + ' ORDER BY "id" DESC LIMIT ?'
    )


async def _visible_to(resident_id: int) -> Q:
    """Passes a resident may see and cancel: every pass of a household they are an approved
    member of now (their own and the other members'). A pass they made for a household
    they have left is gone for them (not found): a moved-out person cannot fetch its token.
    The memberships are read by the same statement as the passes (a subquery)."""
    rooms = Membership.filter(resident_id=resident_id, state=MembershipState.APPROVED)
    return Q(room_id__in=Subquery(rooms.values("room_id")))


async def my_pass(resident_id: int, pass_id: int) -> VisitorPass:
    p = await VisitorPass.filter(await _visible_to(resident_id), id=pass_id).first()
    if p is None:
        raise not_found("pass")
    return p


async def my_passes(
    resident_id: int, limit: int = 100, before: int | None = None
) -> list[VisitorPass]:
    """Newest first; `before` an id: the passes older than it (keyset paging). The passes
    of the households the resident is an approved member of now (as `_visible_to`), read
    with the memberships in one prepared statement: the ORM spent more CPU building this
    query (the subquery is copied per request) than the rest of the request."""
    sql = _my_passes_sql(before is not None)
    values: list[Any] = [resident_id, MembershipState.APPROVED.value]
    if before is not None:
        values.append(before)
    rows = await bulk.select(VisitorPass, sql, [*values, limit])
    return [VisitorPass._init_from_db(**row) for row in rows]


async def caller_passes(
    resident_id: int, limit: int = 100, before: int | None = None
) -> tuple[Principal, list[VisitorPass]]:
    """`load_principal` for the resident and `my_passes`, in one statement."""
    values: list[Any] = [resident_id, MembershipState.APPROVED.value]
    if before is not None:
        values.append(before)
    principal, _, rows = await resident_principal_with(
        resident_id, rows=_my_passes_sql(before is not None), row_values=[*values, limit]
    )
    return principal, [VisitorPass._init_from_db(**row) for row in rows]


async def community_passes(
    principal: Principal,
    community_id: int,
    *,
    state: PassState | None = None,
    limit: int,
    before: int | None = None,
) -> list[VisitorPass]:
    """Newest first; `before` an id: the passes older than it (keyset paging)."""
    authorize(principal, Action.VISITOR_REGISTER_READ, community_id)
    query = VisitorPass.filter(community_id=community_id)
    if state is not None:
        query = query.filter(state=state)
    if before is not None:
        query = query.filter(id__lt=before)
    return await query.order_by("-id").limit(limit)


def effective_state(p: VisitorPass, now: datetime | None = None) -> PassState:
    if p.state == PassState.ACTIVE and p.valid_until < (now or utcnow()):
        return PassState.EXPIRED
    return p.state


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else ("*" * len(phone))


def pass_out(p: VisitorPass, tz: str, token: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": p.id,
        "kind": p.kind.value,
        "community_id": p.community_id,
        "room_id": p.room_id,
        "visitor_name": p.visitor_name,
        "visitor_phone": p.visitor_phone,
        "plate": p.plate,
        "valid_from": local_iso(p.valid_from, tz),
        "valid_until": local_iso(p.valid_until, tz),
        "max_uses": p.max_uses,
        "uses": p.uses,
        "doors": p.doors,
        "state": effective_state(p).value,
        "share_url": f"/p/{p.share_token}",
        "qr_png_url": f"/api/v1/passes/{p.id}/qr?format=png",
    }
    if token is not None:
        out["token"] = token
        out["token_chars"] = len(token)
    return out


async def community_tz(community_id: int) -> str:
    return await community_timezone(community_id)


# ------------------------------------------------------------------ revoking


async def revoke(runtime: Runtime, p: VisitorPass, by: str, actor: AuditActor) -> VisitorPass:
    """Cancel a pass and tell every gate; revoking twice is harmless."""
    won = await VisitorPass.filter(id=p.id, state=PassState.ACTIVE).update(
        state=PassState.REVOKED, revoked_at=utcnow(), revoked_by=by
    )
    await p.refresh_from_db()
    if won:
        await audit.record(
            "pass.revoke",
            **actor,
            community_id=p.community_id,
            target_type="pass",
            target_id=p.id,
        )
        await revoke_everywhere(runtime, p)
    return p


async def resident_revoke(runtime: Runtime, resident: Resident, pass_id: int) -> VisitorPass:
    p = await my_pass(resident.id, pass_id)
    return await revoke(
        runtime, p, f"resident:{resident.id}", {"actor_type": "resident", "actor_id": resident.id}
    )


async def staff_revoke(runtime: Runtime, principal: Principal, pass_id: int) -> VisitorPass:
    p = await VisitorPass.get_or_none(id=pass_id)
    if p is None:
        raise not_found("pass")
    authorize(principal, Action.PASS_REVOKE, p.community_id)
    return await revoke(runtime, p, f"staff:{principal.id}", principal.audit_actor())


async def qr_devices(community_id: int) -> list[Device]:
    devices = await Device.filter(community_id=community_id, status=DeviceStatus.ACTIVE)
    return [d for d in devices if "qr" in (d.methods or [])]


async def revoke_everywhere(runtime: Runtime, p: VisitorPass) -> None:
    """One revocation row per QR gate of the community, then deliver in the background:
    a gate that is offline gets it when it comes back (`on_device_online`)."""
    devices = await qr_devices(p.community_id)
    for d in devices:
        await PassRevocation.get_or_create(
            visitor_pass_id=p.id, device_id=d.id, defaults={"until": p.valid_until}
        )
    svc = pass_service(runtime)
    for d in devices:
        if d.online:
            svc.spawn(deliver_revocations(runtime, d))


async def stop_passes(pass_ids: list[int], by: str) -> list[int]:
    """Revoke these passes (those still active) and record one revocation per QR gate of
    their community, all in the caller's transaction: once it commits, the stop is durable
    and every gate, offline ones included, is owed it (`push_revocations`, and
    `on_device_online` for gates that come back). Returns the passes it revoked."""
    if not pass_ids:
        return []
    now = utcnow()
    active = await VisitorPass.filter(id__in=pass_ids, state=PassState.ACTIVE).values(
        "id", "community_id", "valid_until"
    )
    stopped = []
    rows = []
    devices: dict[int, list[Device]] = {}
    for p in active:
        # Conditional: a pass used up or cancelled meanwhile keeps that outcome.
        if not await VisitorPass.filter(id=p["id"], state=PassState.ACTIVE).update(
            state=PassState.REVOKED, revoked_at=now, revoked_by=by
        ):
            continue
        stopped.append(p["id"])
        cid = p["community_id"]
        if cid not in devices:
            devices[cid] = await qr_devices(cid)
        rows += [
            PassRevocation(visitor_pass_id=p["id"], device_id=d.id, until=p["valid_until"])
            for d in devices[cid]
        ]
    if rows:
        await PassRevocation.bulk_create(rows, ignore_conflicts=True)
    return stopped


async def push_revocations(runtime: Runtime, community_id: int) -> int:
    """Send every revocation still owed to the community's online QR gates (background);
    offline gates get theirs when they come back. Returns how many gates were started."""
    owed = set(
        await PassRevocation.filter(acked_at=None, until__gt=utcnow()).values_list(
            "device_id", flat=True
        )
    )
    started = 0
    for d in await qr_devices(community_id):
        if d.online and d.id in owed:
            pass_service(runtime).spawn(deliver_revocations(runtime, d))
            started += 1
    return started


async def resend_owed_revocations(runtime: Runtime, older_than_s: float = 30.0) -> int:
    """Scheduled safety net: revocations an online gate has not confirmed (the process that
    pushed them died, or the gate never answered) are sent again."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    device_ids = set(
        await PassRevocation.filter(
            acked_at=None, until__gt=utcnow(), created_at__lt=cutoff
        ).values_list("device_id", flat=True)
    )
    devices = await Device.filter(id__in=list(device_ids), online=True, status=DeviceStatus.ACTIVE)
    for d in devices:
        pass_service(runtime).spawn(deliver_revocations(runtime, d))
    return len(devices)


async def deliver_revocations(runtime: Runtime, device: Device) -> int:
    """Send every unacknowledged, unexpired revocation for `device`; returns how many the
    device confirmed."""
    if not runtime.has(DEVICES):
        return 0  # a process without devices: the one that has them sends on reconnect
    devices = runtime.get(DEVICES)
    rows = await PassRevocation.filter(
        device_id=device.id, acked_at=None, until__gt=utcnow()
    ).order_by("id")
    done = 0
    for i in range(0, len(rows), REVOKE_CHUNK):
        chunk = rows[i : i + REVOKE_CHUNK]
        until = max(r.until for r in chunk)
        outcome = await devices.send(
            device,
            "revoke_pass",
            {
                "pass_ids": [str(r.visitor_pass_id) for r in chunk],
                "until": int(until.timestamp() * 1000),
            },
            reason="pass_revoked",
        )
        if not outcome.ok:
            log.info("revocations to %s not confirmed: %s", device.device_uid, outcome.status)
            break
        await PassRevocation.filter(id__in=[r.id for r in chunk]).update(acked_at=utcnow())
        done += len(chunk)
    return done


# ------------------------------------------------------------------ key rotation


async def key_set(runtime: Runtime, community_id: int) -> list[dict[str, Any]]:
    """The public keys gates accept now, with how long (what `config.pass_keys` carries
    and the pass-key route shows)."""
    keys = await pass_service(runtime).keys.accepted(community_id, utcnow())
    until = dict(
        await PassKeyRetired.filter(community_id=community_id).values_list("kid", "accept_until")
    )
    return [
        {
            "kid": kid,
            "public_key_pem": k.public_pem,
            "until": int(until[kid].timestamp() * 1000) if kid in until else None,
        }
        for kid, k in keys.items()
    ]


async def rotate_key(runtime: Runtime, principal: Principal, community_id: int) -> dict[str, Any]:
    """New passes are signed with a new key; the old one is accepted (and re-mints its
    passes' tokens) until the last pass it signed expires. Every QR gate is sent the new
    key set now, offline ones when they come back."""
    authorize(principal, Action.COMMUNITY_MANAGE, community_id)
    svc = pass_service(runtime)
    old = await svc.keys.get(community_id)
    async with in_transaction():
        last = (
            await VisitorPass.filter(
                community_id=community_id,
                key_id=old.kid,
                state=PassState.ACTIVE,
                valid_until__gt=utcnow(),
            )
            .order_by("-valid_until")
            .first()
        )
        new = await svc.keys.rotate(community_id, last.valid_until if last else utcnow())
        await audit.record(
            "pass_key.rotated",
            **principal.audit_actor(),
            community_id=community_id,
            target_type="community",
            target_id=community_id,
            details={"old": old.kid, "new": new.kid},
        )
    await runtime.bus.publish(PASS_KEYS_CHANGED, {"community_id": community_id})
    for d in await qr_devices(community_id):
        if d.online:
            svc.spawn(push_keys(runtime, d))
    return {"kid": new.kid, "keys": await key_set(runtime, community_id)}


async def push_keys(runtime: Runtime, device: Device) -> bool:
    """Send the accepted public keys to a gate that checks passes by itself."""
    if not runtime.has(DEVICES):
        return False  # a process without devices: the one that has them sends on reconnect
    keys = await key_set(runtime, device.community_id)
    outcome = await runtime.get(DEVICES).send(
        device, "config", {"pass_keys": keys}, reason="pass_keys"
    )
    return bool(outcome.ok)


async def on_device_online(runtime: Runtime, device: Device) -> None:
    """A gate (re)connected: make sure it knows every pass stopped while it was away, and
    the keys of a community whose key was rotated."""
    if "qr" not in (device.methods or []) or device.status != DeviceStatus.ACTIVE:
        return
    if await PassKeyRetired.exists(community_id=device.community_id):
        pass_service(runtime).spawn(push_keys(runtime, device))
    stopped = await VisitorPass.filter(
        community_id=device.community_id,
        state__in=[PassState.REVOKED, PassState.EXHAUSTED],
        valid_until__gt=utcnow(),
    ).values("id", "valid_until")
    for row in stopped:
        await PassRevocation.get_or_create(
            visitor_pass_id=row["id"], device_id=device.id, defaults={"until": row["valid_until"]}
        )
    if await PassRevocation.filter(device_id=device.id, acked_at=None).exists():
        pass_service(runtime).spawn(deliver_revocations(runtime, device))


# ------------------------------------------------------------------ using


def grant_reason(p: VisitorPass) -> str:
    return "delivery_pass" if p.kind == PassKind.DELIVERY else "visitor_pass"


def stopped_reason(p: VisitorPass) -> str:
    if p.state == PassState.REVOKED:
        return "pass_revoked"
    if p.state == PassState.EXPIRED or p.valid_until < utcnow():
        return "pass_expired"
    return "pass_used_up"


async def check_at_gate(
    runtime: Runtime, device: Device, token: str
) -> tuple[Decision, VisitorPass | None]:
    """Verify a token for this gate now, without counting a use."""
    keys = await pass_service(runtime).keys.accepted(device.community_id, utcnow())
    public = {kid: k.raw for kid, k in keys.items()}
    verify = public[""] if list(public) == [""] else public  # never rotated: one key
    tc = check_token(
        token,
        verify,
        device.community_id,
        device.device_uid,
        clock.time(),
        community_gate=device.building_id is None and device.unit_id is None,
    )
    if tc.pass_id is None or tc.reason in ("pass_forged", "pass_other_community"):
        return Decision.deny(tc.reason or "pass_invalid"), None
    p = await _pass_row(tc.pass_id, device.community_id)
    if p is None:
        return Decision.deny("pass_unknown"), None
    if not tc.ok:
        return Decision.deny(tc.reason or "pass_invalid", pass_id=p.id, room_id=p.room_id), p
    if p.state != PassState.ACTIVE:
        return Decision.deny(stopped_reason(p), pass_id=p.id, room_id=p.room_id), p
    return Decision(True, grant_reason(p), pass_id=p.id, room_id=p.room_id), p


async def _pass_row(pass_id: int, community_id: int) -> VisitorPass | None:
    """The pass as it is now (no cache: a revocation refuses at once). Checks made at the
    same moment by many gates read their passes in one query."""
    if in_caller_transaction(VisitorPass):
        return await VisitorPass.get_or_none(id=pass_id, community_id=community_id)
    return await _PASS_ROWS.submit((pass_id, community_id))


async def _read_pass_rows(items: list[tuple[int, int]]) -> list[VisitorPass | None]:
    ids = sorted({i for i, _ in items})
    rows = await bulk.select(
        VisitorPass,
        f'SELECT {_pass_columns()} FROM "{VisitorPass._meta.db_table}" '
        f'WHERE "id" IN ({bulk.marks(len(ids))})',
        ids,
    )
    by_id = {r["id"]: r for r in rows}
    out: list[VisitorPass | None] = []
    for pass_id, community_id in items:
        row = by_id.get(pass_id)
        if row is None or row["community_id"] != community_id:
            out.append(None)
        else:
            # Each caller gets its own model (its JSON fields decoded afresh: the database
            # sends JSON as text): a use taken by one must not show in another's.
            out.append(VisitorPass._init_from_db(**row))
    return out


@functools.cache
def _pass_columns() -> str:
    return bulk.columns(VisitorPass)


_PASS_ROWS: Batcher[tuple[int, int], VisitorPass | None] = Batcher(_read_pass_rows)


async def use_online(
    runtime: Runtime, device: Device, token: str
) -> tuple[Decision, VisitorPass | None]:
    """The server decides (gate asked, or a barrier read a plate): verify, then take one
    use with a conditional UPDATE so two gates cannot both take the last one."""
    decision, p = await check_at_gate(runtime, device, token)
    if not decision.granted or p is None:
        return decision, p
    return await take_use(runtime, p)


async def take_use(runtime: Runtime, p: VisitorPass) -> tuple[Decision, VisitorPass]:
    if in_caller_transaction(VisitorPass):
        won = await VisitorPass.filter(
            id=p.id, state=PassState.ACTIVE, uses__lt=F("max_uses")
        ).update(uses=F("uses") + 1)
        await p.refresh_from_db()
    else:
        # Group commit: the uses of every scan in flight, one conditional UPDATE.
        uses = await _USES.submit(p.id)
        won = uses is not None
        if uses is not None:
            p.uses = uses
        else:
            await p.refresh_from_db()  # why not: used up, revoked, expired (rare)
    if not won:
        return Decision.deny(stopped_reason(p), pass_id=p.id, room_id=p.room_id), p
    if p.uses >= p.max_uses:
        await mark_exhausted(runtime, p)
    return Decision(True, grant_reason(p), pass_id=p.id, room_id=p.room_id), p


async def _take_uses(pass_ids: list[int]) -> list[int | None]:
    """One conditional UPDATE for a batch of uses: each pass's count after its use, None
    where the pass had none left (or stopped). Two scans of one pass in a batch take two
    uses, in two statements, so the second sees the first's count."""
    table = VisitorPass._meta.db_table
    out: list[int | None] = [None] * len(pass_ids)
    todo = list(range(len(pass_ids)))
    while todo:
        first: dict[int, int] = {}
        later: list[int] = []
        for i in todo:
            if pass_ids[i] in first:
                later.append(i)
            else:
                first[pass_ids[i]] = i
        rows = await bulk.select(
            VisitorPass,
            f'UPDATE "{table}" SET "uses" = "uses" + 1 WHERE "id" IN ({bulk.marks(len(first))})'
            ' AND "state" = ? AND "uses" < "max_uses" RETURNING "id", "uses"',
            [*first, PassState.ACTIVE.value],
        )
        for r in rows:
            out[first[r["id"]]] = int(r["uses"])
        todo = later
    return out


_USES: Batcher[int, int | None] = Batcher(_take_uses)


async def mark_exhausted(runtime: Runtime, p: VisitorPass) -> None:
    won = await VisitorPass.filter(id=p.id, state=PassState.ACTIVE).update(
        state=PassState.EXHAUSTED, revoked_at=utcnow(), revoked_by="system"
    )
    if won:
        await p.refresh_from_db()
        await revoke_everywhere(runtime, p)


async def reconcile_device_count(
    runtime: Runtime,
    device: Device,
    pass_id: int,
    device_count: int,
    used_at: datetime,
    event_key: str,
) -> VisitorPass | None:
    """A gate reports how often it let this pass in by itself: add what is new, and stop
    the pass everywhere (with an alarm) when it was used more than allowed."""
    async with in_transaction():
        p = (
            await VisitorPass.filter(id=pass_id, community_id=device.community_id)
            .select_for_update()
            .first()
        )
        if p is None:
            return None
        counts = dict(p.device_uses or {})
        before = int(counts.get(device.device_uid, 0))
        delta = max(0, device_count - before)
        if delta:
            counts[device.device_uid] = device_count
            p.device_uses = counts
            p.uses += delta
            await p.save(update_fields=["device_uses", "uses"])
    after_revocation = (
        p.state == PassState.REVOKED and p.revoked_at is not None and used_at > p.revoked_at
    )
    if p.uses > p.max_uses or after_revocation:
        await raise_alarm(
            runtime,
            p.community_id,
            AlarmKind.PASS_OVERUSED,
            device_id=device.id,
            event_key=f"pass-overuse:{p.id}",
            details={
                "pass_id": p.id,
                "uses": p.uses,
                "max_uses": p.max_uses,
                "device": device.name,
                "after_revocation": after_revocation,
                "event": event_key,
            },
        )
    if p.uses >= p.max_uses:
        await mark_exhausted(runtime, p)
    return p


async def expire_passes(now: datetime | None = None) -> int:
    """Active passes past their end become expired (the scheduler runs this)."""
    return await VisitorPass.filter(state=PassState.ACTIVE, valid_until__lt=now or utcnow()).update(
        state=PassState.EXPIRED
    )


async def pass_by_share_token(share_token: str) -> VisitorPass:
    if not share_token or len(share_token) > 64:
        raise not_found("pass")
    p = await VisitorPass.get_or_none(share_token=share_token)
    if p is None:
        raise not_found("pass")
    return p
