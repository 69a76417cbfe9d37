"""What a person leaves behind: move-out, leaving a household, a block in a community and
account deletion end everything the person holds there, at once and for good.

`record_departure` runs inside the caller's transaction, the same one that ends the
membership (or writes the block, or deletes the account), so either all of it happens
or none of it does:

* their passes are revoked, with one revocation owed to every QR gate (offline gates get
  it when they come back);
* their vehicles are de-registered (all of a household's when its last member leaves);
* their cards are disabled, and the deadline for deleting their face is set (when they
  no longer live in the community; at once for a block or an account deletion);
* the household code goes when the last member leaves; otherwise the members who stay
  are told, with a one-tap change of the code offered;
* a `Departure` row records all of it.

After the commit `finish` tells the world outside the database: revocations to the online
gates, faces deleted when due now (library removal to every terminal), cache
invalidations on the bus. A crash between the commit and the end of `finish` leaves the
row unfinished; the job `finish_departures` completes it. The bus only invalidates caches:
nothing that must happen depends on a message arriving.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from anxin.clock import utcnow
from anxin.runtime import Runtime
from anxin.scheduler import JobContext, registry
from domain import audit
from domain.faces.service import purge_due, schedule_purge
from domain.passes.service import push_revocations, resend_owed_revocations, stop_passes
from models import (
    AccessCard,
    Departure,
    DepartureKind,
    HouseholdCode,
    Membership,
    MembershipState,
    PassState,
    Resident,
    Vehicle,
    VisitorPass,
)
from notifications.catalog import EventType
from notifications.outbox import emit
from notifications.views import room_label

log = logging.getLogger(__name__)

# Bus channel (cache invalidation only): {departure_id, kind, resident_id, community_id}.
DEPARTED = "resident.departed"
FINISH_JOB = "finish_departures"
FINISH_AFTER_S = 10  # an unfinished departure older than this was interrupted
# Kinds that end the person's whole presence in the community, whatever flats they hold.
COMMUNITY_WIDE = (DepartureKind.BLOCKED, DepartureKind.ACCOUNT_DELETED)


@dataclass(frozen=True)
class Leaving:
    kind: DepartureKind
    resident_id: int
    community_id: int
    room_ids: tuple[int, ...]  # the households left (for a block: the ones suspended)
    reason: str
    actor: Mapping[str, Any]  # {"actor_type": ..., "actor_id": ...}


async def _still_lives_here(resident_id: int, community_id: int) -> bool:
    return await Membership.exists(
        resident_id=resident_id, community_id=community_id, state=MembershipState.APPROVED
    )


async def _empty(room_ids: tuple[int, ...]) -> list[int]:
    """Households of `room_ids` with no approved member left."""
    lived = set(
        await Membership.filter(room_id__in=list(room_ids), state=MembershipState.APPROVED)
        .distinct()
        .values_list("room_id", flat=True)
    )
    return [r for r in room_ids if r not in lived]


async def record_departure(runtime: Runtime, leaving: Leaving) -> Departure:
    """End everything; call inside the transaction that ends the membership (or writes the
    block, or deletes the account), after that change. Touches the database only."""
    rid, cid, rooms = leaving.resident_id, leaving.community_id, leaving.room_ids
    now = utcnow()
    wide = leaving.kind in COMMUNITY_WIDE
    left_community = wide or not await _still_lives_here(rid, cid)
    empty = await _empty(rooms)

    # Passes: theirs (only those of the flats left while they still live here), and every
    # pass of a household nobody lives in any more.
    theirs = VisitorPass.filter(community_id=cid, state=PassState.ACTIVE, created_by_id=rid)
    if not left_community:
        theirs = theirs.filter(room_id__in=list(rooms))
    own: list[Any] = await theirs.values_list("id", flat=True)
    pass_ids = {int(i) for i in own}
    if empty:
        orphaned: list[Any] = await VisitorPass.filter(
            room_id__in=empty, state=PassState.ACTIVE
        ).values_list("id", flat=True)
        pass_ids |= {int(i) for i in orphaned}
    stopped = await stop_passes(sorted(pass_ids), f"system:{leaving.kind.value}")

    # Vehicles: the ones they registered; all of an empty household's.
    cars = Vehicle.filter(community_id=cid, added_by_id=rid)
    if not left_community:
        cars = cars.filter(room_id__in=list(rooms))
    vehicles = {v["id"]: v["plate"] for v in await cars.values("id", "plate")}
    if empty:
        vehicles |= {
            v["id"]: v["plate"]
            for v in await Vehicle.filter(room_id__in=empty).values("id", "plate")
        }
    if vehicles:
        await Vehicle.filter(id__in=list(vehicles)).delete()

    cards: list[str] = []
    faces: list[int] = []
    if left_community:
        card_nos: list[Any] = await AccessCard.filter(
            community_id=cid, resident_id=rid, active=True
        ).values_list("card_no", flat=True)
        cards = [str(c) for c in card_nos]
        await AccessCard.filter(community_id=cid, resident_id=rid).update(active=False)
        grace = runtime.settings.face_move_out_grace_days
        due = now if wide or grace <= 0 else now + timedelta(days=grace)
        faces = await schedule_purge(rid, cid, due, leaving.kind.value)

    # Household codes: the last member out takes the code with them; members who stay
    # are offered a new one in one tap (they may know the leaver knows it).
    codes_cleared = [r for r in empty if await HouseholdCode.filter(room_id=r).delete()]
    remaining = [r for r in rooms if r not in empty]
    who = await Resident.filter(id=rid).values_list("name", flat=True)
    for room_id in remaining:
        has_code = await HouseholdCode.exists(room_id=room_id)
        await emit(
            EventType.HOUSEHOLD_MEMBER_LEFT,
            community_id=cid,
            rooms=[room_id],
            payload={
                **await room_label(room_id),
                "room_id": room_id,
                "name": (who[0] if who else "") or "-",
                "code_set": has_code,
                "change_code": (
                    {"method": "POST", "url": f"/api/v1/households/{room_id}/door-code/new"}
                    if has_code
                    else None
                ),
            },
            dedupe_key=f"member_left:{leaving.kind.value}:{rid}:{room_id}:{now.timestamp()}",
        )

    summary = {
        "passes_revoked": stopped,
        "vehicles_removed": sorted(vehicles.values()),
        "cards_disabled": cards,
        "faces_due": faces,
        "codes_cleared": codes_cleared,
        "households_told": remaining,
    }
    departure = await Departure.create(
        kind=leaving.kind,
        resident_id=rid,
        community_id=cid,
        room_ids=list(rooms),
        reason=leaving.reason[:200],
        actor_type=str(leaving.actor.get("actor_type", "system")),
        actor_id=leaving.actor.get("actor_id"),
        left_community=left_community,
        summary=summary,
    )
    await audit.record(
        "resident.departed",
        **leaving.actor,
        community_id=cid,
        target_type="resident",
        target_id=rid,
        details={"departure_id": departure.id, "kind": leaving.kind.value, **summary},
    )
    return departure


async def finish(runtime: Runtime, departure: Departure) -> Departure:
    """After the commit: tell gates, terminals and caches; idempotent, so the job may run
    it again for a departure a crash left unfinished."""
    await push_revocations(runtime, departure.community_id)
    if departure.left_community:
        reason = "blocked" if departure.kind == DepartureKind.BLOCKED else departure.kind.value
        await purge_due(
            runtime,
            departure.resident_id,
            departure.community_id,
            reason,
            departure.actor_type,
            departure.actor_id,
        )
    await runtime.bus.publish(
        DEPARTED,
        {
            "departure_id": departure.id,
            "kind": departure.kind.value,
            "resident_id": departure.resident_id,
            "community_id": departure.community_id,
        },
    )
    await Departure.filter(id=departure.id, finished_at=None).update(finished_at=utcnow())
    await departure.refresh_from_db()
    return departure


async def finish_departures(runtime: Runtime, older_than_s: float = FINISH_AFTER_S) -> int:
    """Scheduled: finish what a crash interrupted, and resend revocations online gates
    have not confirmed. Returns how many departures it finished."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    done = 0
    for d in await Departure.filter(finished_at=None, created_at__lte=cutoff).order_by("id"):
        await Departure.filter(id=d.id).update(attempts=d.attempts + 1)
        try:
            await finish(runtime, d)
            done += 1
        except Exception as exc:  # one stuck departure must not stop the others
            log.exception("departure %s not finished", d.id)
            await Departure.filter(id=d.id).update(last_error=str(exc)[:200])
    await resend_owed_revocations(runtime)
    return done


def register_jobs() -> None:
    async def job(ctx: JobContext) -> int:
        return await finish_departures(ctx.runtime)

    registry.add_job(FINISH_JOB, job, seconds=30, replace=True)


async def block_departure(
    runtime: Runtime, resident_id: int, community_id: int, reason: str, actor: Mapping[str, Any]
) -> Departure:
    """A block in a community, inside the block's transaction: everything the person holds
    there ends as for a move-out, and the face is due for deletion now."""
    states = [MembershipState.APPROVED]
    suspended = getattr(MembershipState, "SUSPENDED", None)  # blocks that suspend homes
    if suspended is not None:
        states.append(suspended)
    rooms: list[Any] = await Membership.filter(
        resident_id=resident_id, community_id=community_id, state__in=states
    ).values_list("room_id", flat=True)
    return await record_departure(
        runtime,
        Leaving(
            DepartureKind.BLOCKED,
            resident_id,
            community_id,
            tuple(sorted(set(rooms))),
            reason,
            actor,
        ),
    )
