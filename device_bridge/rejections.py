"""Every rejected device message is counted by kind and logged, at most once a minute per
kind (with how many more there were), so a flood of bad messages cannot flood the log.
The counts are exposed as Prometheus metrics (api/metrics.py)."""

from __future__ import annotations

import logging
import time
from collections import Counter

LOG_EVERY_S = 60.0


class Rejections:
    def __init__(
        self, stats: Counter[str], logger: logging.Logger, every_s: float = LOG_EVERY_S
    ) -> None:
        self.stats = stats  # the component's own counters (kept for its callers and tests)
        self.counts: Counter[str] = Counter()  # rejections only, by kind
        self.logger = logger
        self.every_s = every_s
        self._logged_at: dict[str, float] = {}
        self._since: Counter[str] = Counter()

    def __call__(self, kind: str, source: str | None, detail: object = "") -> None:
        self.stats[kind] += 1
        self.counts[kind] += 1
        now = time.monotonic()
        last = self._logged_at.get(kind)
        if last is not None and now - last < self.every_s:
            self._since[kind] += 1
            return
        self._logged_at[kind] = now
        more = self._since.pop(kind, 0)
        self.logger.warning(
            "rejected device message: %s from %r%s%s",
            kind,
            source,
            f": {str(detail)[:200]}" if detail else "",
            f" (and {more} more of this kind in the last {int(now - last)} s)"
            if more and last is not None
            else "",
        )
