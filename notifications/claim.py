"""Claiming work rows (outbox events, channel deliveries) safely among several workers.

A row is due when pending and `next_attempt_at` has passed, or when it is processing but
its lease ran out (the worker that held it died). A claim sets a fresh lease token with a
conditional UPDATE that only matches due rows, so two workers never hold one row at once.
On PostgreSQL the candidates are first locked with FOR UPDATE SKIP LOCKED, so concurrent
workers take different rows instead of queueing on the same ones; SQLite serialises
writers, and its conditional UPDATE alone is the claim.
"""

from __future__ import annotations

import random
import secrets
from datetime import timedelta
from typing import Any, TypeVar

from tortoise import connections
from tortoise.expressions import F, Q
from tortoise.models import Model
from tortoise.transactions import in_transaction

from anxin.clock import utcnow

PENDING, PROCESSING = "pending", "processing"

M = TypeVar("M", bound=Model)


def _due(now: Any) -> Q:
    return Q(state=PENDING, next_attempt_at__lte=now) | Q(
        state=PROCESSING, lease_expires_at__lt=now
    )


def _is_postgres() -> bool:
    return connections.get("default").capabilities.dialect == "postgres"


async def claim(model: type[M], *, limit: int, lease_s: float) -> list[M]:
    now = utcnow()
    token = secrets.token_hex(16)
    lease = {
        "state": PROCESSING,
        "lease_token": token,
        "lease_expires_at": now + timedelta(seconds=lease_s),
        "attempts": F("attempts") + 1,
    }
    if _is_postgres():
        async with in_transaction():
            rows = (
                await model.filter(_due(now))
                .order_by("id")
                .limit(limit)
                .select_for_update(skip_locked=True)
            )
            if not rows:
                return []
            await model.filter(_due(now), id__in=[r.pk for r in rows]).update(**lease)
    else:
        ids = await model.filter(_due(now)).order_by("id").limit(limit).values_list("id", flat=True)
        if not ids:
            return []
        await model.filter(_due(now), id__in=list(ids)).update(**lease)
    return await model.filter(lease_token=token).order_by("id")


def backoff_s(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, so a burst of
    failures (WeChat down for a minute) does not come back as one burst."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)
