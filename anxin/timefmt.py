"""Times are stored in UTC and shown in the community's time zone."""

from __future__ import annotations

from datetime import datetime
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
