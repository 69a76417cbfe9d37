"""A staff filter's time period, read in the community's own zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from anxin.timefmt import from_person
from domain.community.zone import community_timezone


async def community_period(
    community_id: int, since: datetime | date | None, until: datetime | date | None
) -> tuple[datetime | None, datetime | None]:
    """A staff filter's [since, until) in UTC, read in the community's zone where it has no
    offset; a bare `until` date includes that whole day."""
    if since is None and until is None:
        return None, None
    name = await community_timezone(community_id)
    start = from_person(since, name) if since is not None else None
    end = None
    if until is not None:
        end = (
            from_person(until, name)
            if isinstance(until, datetime)
            else from_person(until + timedelta(days=1), name)
        )
    return start, end
