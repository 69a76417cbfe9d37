"""One clock for the whole service, so tests move time instead of sleeping."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self) -> None:
        self._offset = 0.0

    def time(self) -> float:
        """Seconds since the epoch (UTC), shifted by any test offset."""
        return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    def reset(self) -> None:
        self._offset = 0.0


clock = Clock()


def utcnow() -> datetime:
    return clock.now()


def in_seconds(seconds: float) -> datetime:
    return clock.now() + timedelta(seconds=seconds)
