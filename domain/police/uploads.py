"""What goes to the police platform under an agreement, and the record of every upload.

Collection reads the community's own records (access log, visitor passes, memberships,
vehicles, devices) after a per-source cursor and queues one `PoliceUpload` row per
object, but only for the categories the agreement allows. The row is the durable outbox
and, once sent, the record: what, when, under which agreement, with which result.

A row is unique per (agreement, source row), so collecting twice (overlapping windows,
two link processes, a restart) never queues an object twice. The cursor stays a few
seconds behind the clock so rows committed late by a slow transaction are still seen;
the overlap costs nothing because of that uniqueness.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import Q

from anxin.clock import utcnow
from auth.permissions import Action, Principal, authorize
from domain.police.coding import (
    OBJECT_FACE,
    OBJECT_MOTOR_VEHICLE,
    TYPE_APE,
    TYPE_CAR,
    TYPE_DOOR_DEVICE,
    TYPE_PERSON,
    TYPE_VISITOR,
    code20,
    image_id,
    object_id,
    viid_time,
)
from models import (
    AccessEvent,
    AccessMethod,
    Community,
    Device,
    DeviceKind,
    Membership,
    MembershipState,
    PassKind,
    PoliceAgreement,
    PoliceLinkState,
    PoliceUpload,
    ShareCategory,
    UploadState,
    Vehicle,
    VisitorPass,
)

SETTLE = timedelta(seconds=10)  # a transaction committing later than this may be missed
SCAN_LIMIT = 5000
MAX_ATTEMPTS = 8  # a refused object is retried this often, then recorded as failed
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Devices that capture images (APEs) and devices that are doors.
CAPTURE_KINDS = (DeviceKind.FACE_GATE, DeviceKind.BARRIER_GATE, DeviceKind.INTERCOM_PANEL)
DOOR_KINDS = (
    DeviceKind.FACE_GATE,
    DeviceKind.UNIT_DOOR,
    DeviceKind.BARRIER_GATE,
    DeviceKind.INTERCOM_PANEL,
)


def device_code(agreement: PoliceAgreement, device_id: int, door: bool = False) -> str:
    return code20(agreement.center_code, TYPE_DOOR_DEVICE if door else TYPE_APE, device_id)


def capture_object_id(agreement: PoliceAgreement, event: AccessEvent, tz: str) -> str:
    """The FaceID / MotorVehicleID of an access event's capture (48 digits, stable)."""
    image = image_id(
        device_code(agreement, event.device_id or 0), viid_time(event.occurred_at, tz), event.id
    )
    kind = OBJECT_MOTOR_VEHICLE if event.method == AccessMethod.PLATE else OBJECT_FACE
    return object_id(image, kind)


def _stamp(when: datetime) -> int:
    return int(when.timestamp())


Page = tuple[list[PoliceUpload], datetime | None]  # the rows, and the cursor after a full page
Collector = Callable[[PoliceAgreement, str, datetime], Awaitable[Page]]


def _upload(
    agreement: PoliceAgreement,
    category: ShareCategory,
    source_key: str,
    obj_id: str,
    resident_id: int | None = None,
) -> PoliceUpload:
    return PoliceUpload(
        agreement_id=agreement.id,
        community_id=agreement.community_id,
        category=category,
        source_key=source_key,
        object_id=obj_id,
        resident_id=resident_id,
        next_attempt_at=utcnow(),
    )


def _last(rows: list[Any], attr: str) -> datetime | None:
    """The cursor after a full page: the last row's time (the next scan repeats it)."""
    return getattr(rows[-1], attr) if len(rows) >= SCAN_LIMIT else None


async def _access_events(
    agreement: PoliceAgreement, tz: str, since: datetime, vehicles: bool
) -> Page:
    q = AccessEvent.filter(
        community_id=agreement.community_id, created_at__gte=since, device_id__not_isnull=True
    )
    if vehicles:
        q = q.filter(method=AccessMethod.PLATE).exclude(plate="")
        category = ShareCategory.VEHICLE_PASSAGES
    else:
        # A face capture: any passage at a door that sent a snapshot, except plate cameras.
        q = q.exclude(method=AccessMethod.PLATE).exclude(snapshot_ref="")
        category = ShareCategory.FACE_CAPTURES
    rows = await q.order_by("created_at", "id").limit(SCAN_LIMIT)
    ups = [
        _upload(
            agreement,
            category,
            f"access_event:{e.id}",
            capture_object_id(agreement, e, tz),
            e.resident_id or e.requested_by_id,
        )
        for e in rows
    ]
    return ups, _last(rows, "created_at")


async def _faces(agreement: PoliceAgreement, tz: str, since: datetime) -> Page:
    return await _access_events(agreement, tz, since, vehicles=False)


async def _vehicles(agreement: PoliceAgreement, tz: str, since: datetime) -> Page:
    return await _access_events(agreement, tz, since, vehicles=True)


async def _devices(
    agreement: PoliceAgreement, since: datetime, kinds: Iterable[DeviceKind], door: bool
) -> Page:
    rows = (
        await Device.filter(
            community_id=agreement.community_id, kind__in=list(kinds), updated_at__gte=since
        )
        .order_by("updated_at", "id")
        .limit(SCAN_LIMIT)
    )
    category = ShareCategory.DOORS if door else ShareCategory.APES
    # Doors go as two objects (the door device and the door); a capture device as one.
    prefixes = ("doordev", "door") if door else ("ape",)
    # A changed device (renamed, disabled) is a new version of the same object.
    ups = [
        _upload(
            agreement,
            category,
            f"{prefix}:{d.id}:{_stamp(d.updated_at)}",
            device_code(agreement, d.id, door),
        )
        for d in rows
        for prefix in prefixes
    ]
    return ups, _last(rows, "updated_at")


async def _apes(agreement: PoliceAgreement, tz: str, since: datetime) -> Page:
    return await _devices(agreement, since, CAPTURE_KINDS, door=False)


async def _doors(agreement: PoliceAgreement, tz: str, since: datetime) -> Page:
    return await _devices(agreement, since, DOOR_KINDS, door=True)


async def _visitors(agreement: PoliceAgreement, tz: str, since: datetime) -> Page:
    rows = (
        await VisitorPass.filter(
            community_id=agreement.community_id, kind=PassKind.VISITOR, created_at__gte=since
        )
        .order_by("created_at", "id")
        .limit(SCAN_LIMIT)
    )
    ups = [
        _upload(
            agreement,
            ShareCategory.VISITOR_REGISTRATIONS,
            f"visitor_pass:{p.id}",
            code20(agreement.center_code, TYPE_VISITOR, p.id),
            p.created_by_id,  # the host's registration of a visit to their household
        )
        for p in rows
    ]
    return ups, _last(rows, "created_at")


async def _residents(agreement: PoliceAgreement, tz: str, since: datetime) -> Page:
    rows = (
        await Membership.filter(
            community_id=agreement.community_id,
            state__in=[MembershipState.APPROVED, MembershipState.ENDED],
            updated_at__gte=since,
        )
        .order_by("updated_at", "id")
        .limit(SCAN_LIMIT)
    )
    # An approval and a later move-out are two uploads of one PersonID (DataStatus 0 / 1).
    ups = [
        _upload(
            agreement,
            ShareCategory.RESIDENT_REGISTRY,
            f"membership:{m.id}:{m.state.value}",
            code20(agreement.center_code, TYPE_PERSON, m.id),
            m.resident_id,
        )
        for m in rows
    ]
    return ups, _last(rows, "updated_at")


async def _cars(agreement: PoliceAgreement, tz: str, since: datetime) -> Page:
    rows = (
        await Vehicle.filter(community_id=agreement.community_id, updated_at__gte=since)
        .order_by("updated_at", "id")
        .limit(SCAN_LIMIT)
    )
    ups = [
        _upload(
            agreement,
            ShareCategory.VEHICLE_REGISTRY,
            f"vehicle:{v.id}:{_stamp(v.updated_at)}",
            code20(agreement.center_code, TYPE_CAR, v.id),
            v.added_by_id,
        )
        for v in rows
    ]
    return ups, _last(rows, "updated_at")


COLLECTORS: dict[ShareCategory, Collector] = {
    ShareCategory.APES: _apes,
    ShareCategory.DOORS: _doors,
    ShareCategory.FACE_CAPTURES: _faces,
    ShareCategory.VEHICLE_PASSAGES: _vehicles,
    ShareCategory.VISITOR_REGISTRATIONS: _visitors,
    ShareCategory.RESIDENT_REGISTRY: _residents,
    ShareCategory.VEHICLE_REGISTRY: _cars,
}
# Registries and devices are sent whole from the start; passages only from the agreement on.
FROM_AGREEMENT = {
    ShareCategory.FACE_CAPTURES,
    ShareCategory.VEHICLE_PASSAGES,
    ShareCategory.VISITOR_REGISTRATIONS,
}


def allowed(agreement: PoliceAgreement) -> set[ShareCategory]:
    return {ShareCategory(c) for c in agreement.categories}


async def link_state(agreement: PoliceAgreement) -> PoliceLinkState:
    state, _ = await PoliceLinkState.get_or_create(agreement_id=agreement.id)
    return state


async def collect(agreement: PoliceAgreement) -> int:
    """Queue what is new since the last collection, in the allowed categories only.
    Returns how many objects were queued."""
    community = await Community.get(id=agreement.community_id)
    state = await link_state(agreement)
    cursors = dict(state.cursors)
    now = utcnow()
    queued = 0
    for category in sorted(allowed(agreement)):
        start = agreement.approved_at if category in FROM_AGREEMENT else EPOCH
        since = datetime.fromisoformat(cursors[category.value]) if category in cursors else start
        ups, page_end = await COLLECTORS[category](agreement, community.timezone, since)
        if ups:
            before = await PoliceUpload.filter(agreement_id=agreement.id).count()
            await PoliceUpload.bulk_create(ups, ignore_conflicts=True)
            queued += await PoliceUpload.filter(agreement_id=agreement.id).count() - before
        cursor = page_end if page_end is not None else max(since, now - SETTLE)
        cursors[category.value] = cursor.isoformat()
    state.cursors = cursors
    await state.save(update_fields=["cursors"])
    return queued


async def due(agreement: PoliceAgreement, limit: int) -> list[PoliceUpload]:
    """Queued uploads of this agreement that are due now, oldest first, in its categories."""
    return (
        await PoliceUpload.filter(
            agreement_id=agreement.id,
            state=UploadState.QUEUED,
            next_attempt_at__lte=utcnow(),
            category__in=[c.value for c in allowed(agreement)],
        )
        .order_by("id")
        .limit(limit)
    )


async def mark_sent(agreement_id: int, ids: list[int], fields_sent: dict[int, list[str]]) -> int:
    """Record the platform's OK; only rows still queued under a live agreement count (a
    withdrawal that raced the send has already cancelled them and stays the record)."""
    now = utcnow()
    done = 0
    by_fields: dict[tuple[str, ...], list[int]] = {}
    for i in ids:
        by_fields.setdefault(tuple(fields_sent.get(i, [])), []).append(i)
    for names, group in by_fields.items():
        done += await PoliceUpload.filter(
            id__in=group, agreement_id=agreement_id, state=UploadState.QUEUED
        ).update(
            state=UploadState.SENT,
            sent_at=now,
            status_code=0,
            last_error="",
            fields_sent=list(names),
            updated_at=now,
        )
    return done


def backoff_s(attempts: int, cap: float = 600.0) -> float:
    """Exponential back-off with full jitter (a restarted platform is not stampeded)."""
    return random.uniform(0.5, 1.0) * min(cap, 2.0 ** max(attempts, 0))


async def mark_refused(upload: PoliceUpload, status_code: int, message: str) -> None:
    """The platform refused this object: retry with back-off, then record it as failed."""
    upload.attempts += 1
    upload.status_code = status_code
    upload.last_error = message[:200]
    if upload.attempts >= MAX_ATTEMPTS:
        upload.state = UploadState.FAILED
    else:
        upload.next_attempt_at = utcnow() + timedelta(seconds=backoff_s(upload.attempts))
    await upload.save(
        update_fields=["attempts", "status_code", "last_error", "state", "next_attempt_at"]
    )


async def upload_counts(agreement_id: int) -> dict[str, int]:
    out = {s.value: 0 for s in UploadState}
    for s in UploadState:
        out[s.value] = await PoliceUpload.filter(agreement_id=agreement_id, state=s).count()
    return out


async def upload_record(
    principal: Principal,
    community_id: int,
    *,
    category: ShareCategory | None,
    state: UploadState | None,
    resident_id: int | None,
    limit: int,
    before: int | None = None,
) -> list[PoliceUpload]:
    if not principal.is_operator:
        authorize(principal, Action.POLICE_AGREEMENT_READ, community_id)
    q = PoliceUpload.filter(community_id=community_id)
    if category is not None:
        q = q.filter(category=category)
    if state is not None:
        q = q.filter(state=state)
    if resident_id is not None:
        q = q.filter(resident_id=resident_id)
    if before is not None:
        q = q.filter(id__lt=before)
    return await q.order_by("-id").limit(limit)


def upload_out(u: PoliceUpload) -> dict[str, Any]:
    return {
        "id": u.id,
        "agreement_id": u.agreement_id,
        "category": u.category.value,
        "object_id": u.object_id,
        "source": u.source_key,
        "resident_id": u.resident_id,
        "state": u.state.value,
        "attempts": u.attempts,
        "status_code": u.status_code,
        "last_error": u.last_error,
        "queued_at": u.created_at,
        "sent_at": u.sent_at,
        "fields_sent": u.fields_sent,
    }


async def shared_about_resident(resident_id: int) -> list[dict[str, Any]]:
    """For the resident's data export: every object sent (or queued) about them, with the
    agreement it went under."""
    rows = await PoliceUpload.filter(
        Q(resident_id=resident_id), ~Q(state=UploadState.CANCELLED)
    ).order_by("id")
    agreements = {
        a.id: a
        for a in await PoliceAgreement.filter(id__in=list({u.agreement_id for u in rows}) or [0])
    }
    out = []
    for u in rows:
        a = agreements.get(u.agreement_id)
        out.append(
            {
                **upload_out(u),
                "platform": a.platform_name if a else "",
                "document_no": a.document_no if a else "",
                "legal_basis": a.legal_basis.value if a else "",
                "retention_days": a.retention_days if a else None,
            }
        )
    return out
