"""`Idempotency-Key`: a phone that retries after a timeout gets the first result, and the
door opens once.

The operations a phone retries (remote open, intercom accept, pass creation, enrollment
submission) take the header. The first request with a key records it *before* it acts
(`IdempotencyRecord`, unique per caller, operation and key; durable no later than the
action's first write, whose commit flushes it), runs, and stores its status and body
durably; a repeat returns that stored result (header `Idempotent-Replayed: true`).
A repeat while the first still runs waits for it (up to `WAIT_S`), then gets 409
`idempotency_in_progress`. The same key with a different request is 422
`idempotency_key_reused`. Errors are results too (a door that did not answer is not asked
again under the same key: it may have opened); only 429 (nothing was done) is not kept.
Records expire after `TTL`; a job deletes them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from anxin.clock import utcnow
from anxin.errors import DomainError, RateLimited, conflict, invalid
from anxin.scheduler import JobContext, registry
from api.errors import HttpError, http_status
from models import IdempotencyRecord
from models.bulk import connection, select

TTL = timedelta(hours=24)
# A request that holds a key longer than this crashed (its worker was killed): a repeat may
# then take the key over. Longer than any action takes (a remote open waits at most the
# ack timeout, 5 s, and its command expires after 10 s, so the dead request's command can
# no longer run), short enough that a phone retrying after a crash is answered soon
# (tests/test_faults.py kills a worker mid-request).
LEASE = timedelta(seconds=20)
WAIT_S = 15.0
POLL_S = 0.05
REPLAYED_HEADER = "Idempotent-Replayed"
PURGE_JOB = "purge_idempotency_records"

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="any unique string per user action (e.g. a UUID); a retry sends it again",
    ),
]


def fingerprint(*parts: Any) -> str:
    """What the request asked for, so that a key reused for another request is refused."""
    canonical = json.dumps(jsonable_encoder(parts), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(record: IdempotencyRecord) -> JSONResponse:
    body = record.body or {}
    if "error" in body:  # rebuilt so that language and request id are this request's
        e = body["error"]
        raise HttpError(e["code"], e["zh"], e["en"], record.status_code or 400, e.get("details"))
    return JSONResponse(
        body.get("result"), status_code=record.status_code or 200, headers={REPLAYED_HEADER: "true"}
    )


# The record, written or not (another request holds the key): one statement. On PostgreSQL
# it commits without waiting for the WAL flush (set_config(..., true) is this statement's
# transaction's SET LOCAL): visible at once to a repeat; whatever the action then does is
# committed after it and waits for the flush, which makes this record durable first (the
# WAL is one sequence). Only a database crash before any such commit can lose it, and then
# nothing was done under the key.
_INSERT = (
    "INSERT INTO idempotency_record (scope, operation, key, fingerprint, state, "
    "locked_until, expires_at, created_at) SELECT ?, ?, ?, ?, 'pending', ?, ?, ? {source}"
    "ON CONFLICT DO NOTHING RETURNING id"
)
_INSERT_PG = _INSERT.format(
    source="FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit "
)
# WHERE true: SQLite needs it before ON CONFLICT in an INSERT ... SELECT.
_INSERT_SQLITE = _INSERT.format(source="WHERE true ")
_FINISH = "UPDATE idempotency_record SET state = 'done', status_code = ?, body = ? WHERE id = ?"


def _db(name: str, value: Any) -> Any:
    return IdempotencyRecord._meta.fields_map[name].to_db_value(value, IdempotencyRecord)


async def _claim(scope: str, operation: str, key: str, fp: str) -> int | JSONResponse:
    """The id of the record this request now owns, or the first request's result."""
    deadline = time.monotonic() + WAIT_S
    pg = connection(IdempotencyRecord).capabilities.dialect == "postgres"
    while True:
        now = utcnow()
        at = _db("created_at", now)
        written = await select(
            IdempotencyRecord,
            _INSERT_PG if pg else _INSERT_SQLITE,
            [
                scope,
                operation,
                key,
                fp,
                _db("locked_until", now + LEASE),
                _db("expires_at", now + TTL),
                at,
            ],
        )
        if written:
            return int(written[0]["id"])
        record = await IdempotencyRecord.get_or_none(scope=scope, operation=operation, key=key)
        if record is None:
            continue  # expired and purged between the insert and the read
        if record.expires_at <= now:
            await IdempotencyRecord.filter(id=record.id, expires_at=record.expires_at).delete()
            continue
        if record.fingerprint != fp:
            raise invalid(
                "idempotency_key_reused",
                "该幂等键已用于另一个请求",
                "this Idempotency-Key was used for a different request",
            )
        if record.state == "done":
            return _replay(record)
        if record.locked_until <= now:
            # The first request died holding the key: take it over, once.
            taken = await IdempotencyRecord.filter(
                id=record.id, state="pending", locked_until=record.locked_until
            ).update(locked_until=now + LEASE)
            if taken:
                return record.id
            continue
        if time.monotonic() >= deadline:
            raise conflict(
                "idempotency_in_progress",
                "相同请求正在处理，请稍后再试",
                "a request with this Idempotency-Key is still in progress",
                {"retry_after": 1},
            )
        await asyncio.sleep(POLL_S)


async def _finish(record_id: int, status: int, body: dict[str, Any]) -> None:
    # A prepared statement: the ORM would build this UPDATE on every keyed request.
    await select(IdempotencyRecord, _FINISH, [status, _db("body", body), record_id])


async def run_once(
    *,
    scope: str,
    operation: str,
    key: str | None,
    request_fingerprint: str,
    action: Callable[[], Awaitable[BaseModel]],
    status_code: int = 200,
) -> Any:
    """Run `action` once per key; without a key, just run it."""
    if key is None:
        return await action()
    claimed = await _claim(scope, operation, key, request_fingerprint)
    if isinstance(claimed, JSONResponse):
        return claimed
    try:
        result = await action()
    except DomainError as err:
        if isinstance(err, RateLimited):
            await IdempotencyRecord.filter(id=claimed).delete()
        else:
            error = {"code": err.code, "zh": err.zh, "en": err.en, "details": err.details}
            await _finish(claimed, http_status(err), {"error": jsonable_encoder(error)})
        raise
    except BaseException:
        # Unknown outcome (the door may have moved): answer the key with an error from now
        # on rather than act again.
        error = {"code": "internal_error", "zh": "服务器内部错误", "en": "internal error"}
        await asyncio.shield(_finish(claimed, 500, {"error": error}))
        raise
    payload = result.model_dump(mode="json")
    await _finish(claimed, status_code, {"result": payload})
    return JSONResponse(payload, status_code=status_code)


async def purge_expired(ctx: JobContext) -> int:
    return await IdempotencyRecord.filter(expires_at__lte=utcnow()).delete()


registry.add_job(PURGE_JOB, purge_expired, seconds=3600, replace=True)
