"""A resident deletes their account: every household ends, everything they hold in every
community ends with it (a departure per community, domain/households/leaving.py), their
faces are deleted at once, consents withdrawn, every login revoked, and the personal
fields of the account erased. One transaction; the gates are told after the commit (or by
the job `finish_departures` if the process dies first).

Logs stay (access events, audit, the face processing record): they are the community's
security record and the record of what was done with the person's data, kept for their
retention period; they name an id whose account no longer holds a name or phone.
"""

from __future__ import annotations

from typing import Any

from tortoise.transactions import in_transaction

from anxin.clock import utcnow
from anxin.errors import not_found
from anxin.runtime import Runtime
from auth.permissions import AuditActor
from auth.tokens import revoke_subject
from domain import audit
from domain.faces.records import record
from domain.households import leaving
from domain.households import service as households
from models import (
    Departure,
    DepartureKind,
    EnrollmentState,
    FaceConsent,
    FaceEnrollment,
    Membership,
    MembershipState,
    NotificationPreference,
    Resident,
    WeChatSubscription,
)

# Memberships an account deletion ends (every one that still means something).
_OPEN = [MembershipState.APPROVED, MembershipState.PENDING]
_SUSPENDED = getattr(MembershipState, "SUSPENDED", None)  # a block (where blocks suspend)
if _SUSPENDED is not None:
    _OPEN.append(_SUSPENDED)


async def delete_account(runtime: Runtime, resident: Resident) -> list[Departure]:
    rid, now = resident.id, utcnow()
    actor: AuditActor = {"actor_type": "resident", "actor_id": rid}
    departures: list[Departure] = []
    async with in_transaction():
        won = await Resident.filter(id=rid, deleted_at=None).update(deleted_at=now)
        if not won:
            raise not_found("resident")  # deleted already (a second tap, another device)
        memberships = await Membership.filter(resident_id=rid, state__in=_OPEN)
        rooms: dict[int, list[int]] = {}
        for m in memberships:
            if m.state != MembershipState.PENDING:
                rooms.setdefault(m.community_id, []).append(m.room_id)
        await Membership.filter(id__in=[m.id for m in memberships]).update(
            state=MembershipState.ENDED,
            ended_at=now,
            move_out=now.date(),
            decision_reason="account deleted",
            updated_at=now,
        )
        consents = await FaceConsent.filter(resident_id=rid, withdrawn_at=None)
        await FaceConsent.filter(id__in=[c.id for c in consents]).update(
            withdrawn_at=now, withdrawn_by_type="resident", withdrawn_by_id=rid
        )
        for c in consents:
            await record(
                "consent.withdrawn",
                actor_type="resident",
                actor_id=rid,
                community_id=c.community_id,
                resident_id=rid,
                reason=c.purpose.value,
                details={"consent_id": c.id, "why": "account_deleted"},
            )
        # Communities they live in, and those where a face still waits for its deletion.
        with_faces: list[Any] = await FaceEnrollment.filter(
            resident_id=rid, state__in=[EnrollmentState.PENDING, EnrollmentState.APPROVED]
        ).values_list("community_id", flat=True)
        for cid in sorted(set(rooms) | set(with_faces)):
            departures.append(
                await leaving.record_departure(
                    runtime,
                    leaving.Leaving(
                        DepartureKind.ACCOUNT_DELETED,
                        rid,
                        cid,
                        tuple(rooms.get(cid, ())),
                        "account deleted",
                        actor,
                    ),
                )
            )
        # Erased last: the members who stay were told who left, by name.
        await Resident.filter(id=rid).update(
            openid=None, unionid=None, name="", phone=None, birth_date=None, updated_at=now
        )
        await revoke_subject("resident", rid, "account_deleted")
        await NotificationPreference.filter(subject_type="resident", subject_id=rid).delete()
        await WeChatSubscription.filter(resident_id=rid).delete()
        await audit.record(
            "resident.account_deleted",
            **actor,
            target_type="resident",
            target_id=rid,
            details={"departures": [d.id for d in departures]},
        )
    for d in departures:
        await finish_soon(runtime, d)
    return departures


async def finish_soon(runtime: Runtime, departure: Departure) -> None:
    await households.finish_soon(runtime, departure)
