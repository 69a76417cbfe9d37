"""Reading the access log (staff)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from anxin.errors import not_found
from anxin.runtime import Runtime
from auth.permissions import Action, Principal, authorize, scoped_row
from domain import audit
from domain.access.snapshots import snapshot_store
from domain.community.period import community_period
from models import AccessEvent, AccessMethod, AccessResult


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is None else value.astimezone(UTC)


async def access_events(
    principal: Principal,
    community_id: int,
    *,
    method: AccessMethod | None = None,
    result: AccessResult | None = None,
    resident_id: int | None = None,
    resident_ids: list[int] | None = None,
    device_id: int | None = None,
    after_id: int | None = None,
    since: datetime | date | None = None,
    until: datetime | date | None = None,
    limit: int = 100,
    offset: int = 0,
    before: int | None = None,
) -> list[AccessEvent]:
    """Newest first; `before` an id: the entries older than it (keyset paging, the API);
    `after_id`: newer ones (live updates); `offset` for the console's numbered pages."""
    authorize(principal, Action.ACCESS_LOG_READ, community_id)
    since, until = await community_period(community_id, since, until)
    query = AccessEvent.filter(community_id=community_id)
    if method is not None:
        query = query.filter(method=method)
    if result is not None:
        query = query.filter(result=result)
    if resident_id is not None:
        query = query.filter(resident_id=resident_id)
    if resident_ids is not None:
        query = query.filter(resident_id__in=resident_ids)
    if after_id is not None:
        query = query.filter(id__gt=after_id)
    if device_id is not None:
        query = query.filter(device_id=device_id)
    # In UTC: SQLite compares the stored text, so an offset other than +00:00 would not
    # compare as the instant it is.
    if since is not None:
        query = query.filter(created_at__gte=_utc(since))
    if until is not None:
        query = query.filter(created_at__lt=_utc(until))
    if before is not None:
        query = query.filter(id__lt=before)
    return await query.order_by("-id").offset(offset).limit(limit)


async def snapshot(runtime: Runtime, principal: Principal, event_id: int) -> bytes:
    """The gate's photo of one access event, while retention keeps it; every view is
    audited (it is personal data shown for investigating an incident)."""
    event = await scoped_row(principal, Action.ACCESS_LOG_READ, AccessEvent, event_id, "event")
    if not event.snapshot_ref:
        raise not_found("snapshot")
    data = snapshot_store(runtime.settings).load(event.snapshot_ref)
    await audit.record(
        "snapshot.viewed",
        **principal.audit_actor(),
        community_id=event.community_id,
        target_type="access_event",
        target_id=event.id,
    )
    return data
