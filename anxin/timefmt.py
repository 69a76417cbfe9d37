"""Times are stored in UTC and shown in the community's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from anxin.settings import get_settings


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; the service's default zone for a name that is not one, so a
    mistyped community setting shows Beijing time rather than failing a page."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(get_settings().default_timezone)


def local_iso(value: datetime | None, tz: str) -> str | None:
    """ISO 8601 with the community's offset, e.g. 2026-11-25T23:05:00+08:00."""
    if value is None:
        return None
    return value.astimezone(zone(tz)).isoformat(timespec="seconds")


def from_person(value: datetime | date, tz: str, *, end_of_day: bool = False) -> datetime:
    """A time a person gave, in UTC. With an offset it is taken as given; without one, or
    as a bare date (a date picker's output), it is read in the community's zone. A bare
    date means the start of that day, or with `end_of_day` its last second."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=zone(tz))
        return aware.astimezone(UTC)
    if end_of_day:
        next_day = datetime.combine(value + timedelta(days=1), time(), tzinfo=zone(tz))
        return (next_day - timedelta(seconds=1)).astimezone(UTC)
    return datetime.combine(value, time(), tzinfo=zone(tz)).astimezone(UTC)
