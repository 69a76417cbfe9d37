"""The dispatcher's hot statements in plain SQL, on SQLite and PostgreSQL alike.

A notice to a community is tens of thousands of rows (an in-app copy, a WeChat delivery
and three attempts per resident): built as ORM objects, they cost more CPU than the
database spends writing them. Here a whole set is one statement: the values every row
shares are parameters once, the ids that differ travel as one array (`unnest` of a
PostgreSQL array; `json_each` of a JSON array on SQLite), and rows read back come as
plain tuples. Values go through each field's `to_db_value`, as the ORM's would.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise import fields
from tortoise.models import Model

from models import (
    Channel,
    Notification,
    NotificationAttempt,
    NotificationDelivery,
    OutboxEvent,
    WeChatSubscription,
)
from models.bulk import connection, select

# Ids per array: SQLite's JSON and PostgreSQL's arrays take any number, but a statement
# this size keeps memory and a single statement's time bounded.
ARRAY_CHUNK = 20_000


def _pg(model: type[Model]) -> bool:
    return connection(model).capabilities.dialect == "postgres"


def pg() -> bool:
    """Whether the notifications live on PostgreSQL."""
    return _pg(Notification)


def _ids(model: type[Model]) -> tuple[str, str]:
    """The FROM item of an id array parameter and its column."""
    if _pg(model):
        return "unnest(?::bigint[]) AS x(v)", "x.v"
    return "json_each(?) AS x", "x.value"


def _array(model: type[Model], ids: Sequence[int]) -> Any:
    return list(ids) if _pg(model) else json.dumps(list(ids))


def _db(model: type[Model], name: str, value: Any) -> Any:
    return model._meta.fields_map[name].to_db_value(value, model)


_PG_TYPES: list[tuple[type[fields.Field[Any]], str]] = [
    (fields.JSONField, "jsonb"),
    (fields.DatetimeField, "timestamptz"),
    (fields.BooleanField, "boolean"),
    (fields.BigIntField, "bigint"),
    (fields.IntField, "bigint"),
]


def _mark(model: type[Model], name: str) -> str:
    """A parameter for field `name` in a SELECT list: PostgreSQL needs its type there."""
    if not _pg(model):
        return "?"
    field = model._meta.fields_map[name]
    return "?::" + next((t for cls, t in _PG_TYPES if isinstance(field, cls)), "text")


async def execute(model: type[Model], sql: str, values: Sequence[Any]) -> None:
    """A write in plain SQL; `?` marks the parameters (numbered for PostgreSQL)."""
    conn = connection(model)
    if _pg(model):
        parts = sql.split("?")
        sql = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
    await conn.execute_query(sql, list(values))


@dataclass(frozen=True, slots=True)
class Copy:
    """One recipient's in-app copy of a notification, as the fan-out needs it."""

    id: int
    recipient_type: str
    recipient_id: int
    muted: bool


async def insert_copies(
    recipient_type: str, recipient_ids: Sequence[int], muted: bool, common: dict[str, Any]
) -> None:
    """The in-app copies of one outbox event for these recipients (one kind, one muted
    flag), skipping any a recipient already has."""
    M = Notification
    names = list(common)
    from_ids, col = _ids(M)
    cols = ", ".join(f'"{n}"' for n in ["recipient_type", "recipient_id", "muted", *names])
    shared = ", ".join(_mark(M, n) for n in names)
    kind, flag = _mark(M, "recipient_type"), _mark(M, "muted")
    sql = (
        f"INSERT INTO notification ({cols}) SELECT {kind}, {col}, {flag}, {shared} "
        # WHERE true: SQLite reads ON CONFLICT after a bare FROM as a join's ON.
        f"FROM {from_ids} WHERE true "
        "ON CONFLICT (outbox_id, recipient_type, recipient_id) DO NOTHING"
    )
    consts = [_db(M, n, common[n]) for n in names]
    for start in range(0, len(recipient_ids), ARRAY_CHUNK):
        chunk = recipient_ids[start : start + ARRAY_CHUNK]
        values = [recipient_type, _db(M, "muted", muted), *consts, _array(M, chunk)]
        await execute(M, sql, values)


async def copies_of(outbox_id: int) -> list[Copy]:
    rows = await select(
        Notification,
        "SELECT id, recipient_type, recipient_id, muted FROM notification "
        "WHERE outbox_id = ? ORDER BY id",
        [outbox_id],
    )
    return [Copy(r["id"], r["recipient_type"], r["recipient_id"], bool(r["muted"])) for r in rows]


async def insert_deliveries(notification_ids: Sequence[int], channel: str, now: datetime) -> None:
    """A pending delivery on `channel` for each notification (none twice)."""
    M = NotificationDelivery
    from_ids, col = _ids(M)
    sql = (
        "INSERT INTO notification_delivery (notification_id, channel, state, attempts, "
        "next_attempt_at, last_error, created_at) "
        f"SELECT {col}, {_mark(M, 'channel')}, {_mark(M, 'state')}, 0, "
        f"{_mark(M, 'next_attempt_at')}, '', "
        f"{_mark(M, 'created_at')} FROM {from_ids} WHERE true "
        "ON CONFLICT (notification_id, channel) DO NOTHING"
    )
    at = _db(M, "created_at", now)
    for start in range(0, len(notification_ids), ARRAY_CHUNK):
        chunk = notification_ids[start : start + ARRAY_CHUNK]
        await execute(M, sql, [str(channel), "pending", at, at, _array(M, chunk)])


async def insert_attempts(
    notification_ids: Sequence[int], channel: str, outcome: str, now: datetime
) -> None:
    """One attempt row per notification, all with the same outcome and no error."""
    M = NotificationAttempt
    from_ids, col = _ids(M)
    sql = (
        'INSERT INTO notification_attempt (notification_id, channel, outcome, error, "at") '
        f"SELECT {col}, {_mark(M, 'channel')}, {_mark(M, 'outcome')}, '', {_mark(M, 'at')} "
        f"FROM {from_ids}"
    )
    at = _db(M, "at", now)
    for start in range(0, len(notification_ids), ARRAY_CHUNK):
        chunk = notification_ids[start : start + ARRAY_CHUNK]
        await execute(M, sql, [str(channel), outcome, at, _array(M, chunk)])


@dataclass(slots=True)
class Claimed:
    """A delivery this worker holds under `lease_token` (the fields sending needs)."""

    id: int
    notification_id: int
    channel: Channel
    attempts: int
    lease_token: str


async def claim_deliveries(
    *, limit: int, lease_s: float, now: datetime, expired: bool = True
) -> list[Claimed]:
    """Claim up to `limit` due deliveries (see notifications.claim: due is pending and
    past its time, or processing with its lease run out): the pending ones first, in the
    order they fell due, then any whose lease ran out. On PostgreSQL the candidates are
    locked with SKIP LOCKED, so workers take different rows; SQLite runs one writer at a
    time, and each statement alone is the claim."""
    M = NotificationDelivery
    token = secrets.token_hex(16)
    at = _db(M, "next_attempt_at", now)
    until = _db(M, "lease_expires_at", now + timedelta(seconds=lease_s))
    claimed: list[Claimed] = []
    # Each kind walks its own index range ((state, next_attempt_at) for pending rows):
    # one condition with an OR, ordered by id, walked past every finished row on each
    # claim, and a 50,000-resident notice made that quadratic.
    kinds = [("state = 'pending' AND next_attempt_at <= ?", "ORDER BY state, next_attempt_at")]
    if expired:  # the caller looks for dead workers' rows every few seconds, not each time
        kinds.append(("state = 'processing' AND lease_expires_at < ?", ""))
    for due, order in kinds:
        if len(claimed) >= limit:
            break
        rows = await select(
            M, _claim_sql(M, due, order), [token, until, at, at, limit - len(claimed)]
        )
        claimed += [
            Claimed(
                r["id"],
                r["notification_id"],
                Channel(r["channel"]),
                r["attempts"],
                r["lease_token"],
            )
            for r in rows
        ]
    claimed.sort(key=lambda c: c.id)
    return claimed


def _claim_sql(M: type[Model], due: str, order: str) -> str:
    # PostgreSQL: the candidates as an array computed once (an IN over a locking
    # subquery can be planned as a subplan run for every row of the table).
    pick = "id = ANY(ARRAY(" if _pg(M) else "id IN ("
    lock = " FOR UPDATE SKIP LOCKED))" if _pg(M) else ")"
    return (
        "UPDATE notification_delivery SET state = 'processing', lease_token = ?, "
        "lease_expires_at = ?, attempts = attempts + 1 "
        f"WHERE {due} AND {pick}SELECT id FROM notification_delivery WHERE {due} "
        f"{order} LIMIT ?{lock} "
        "RETURNING id, notification_id, channel, attempts, lease_token"
    )


def _in_ids(model: type[Model], column: str) -> str:
    """`column` is one of an id array parameter."""
    if _pg(model):
        return f"{column} = ANY(?::bigint[])"
    return f"{column} IN (SELECT value FROM json_each(?))"


async def rows_by_id(
    model: type[Model], columns: Sequence[str], ids: Sequence[int], *, key: str = "id"
) -> list[dict[str, Any]]:
    """`columns` of the rows whose `key` is one of `ids`, converted as the ORM would."""
    fmap = model._meta.fields_map
    out: list[dict[str, Any]] = []
    convert = [
        (c, fmap[c])
        for c in columns
        if not isinstance(fmap[c], (fields.IntField, fields.CharField))
    ]
    names = ", ".join(f'"{c}"' for c in columns)
    sql = f'SELECT {names} FROM "{model._meta.db_table}" WHERE {_in_ids(model, key)}'
    for start in range(0, len(ids), ARRAY_CHUNK):
        chunk = ids[start : start + ARRAY_CHUNK]
        rows = await select(model, sql, [_array(model, chunk)])
        for r in rows:
            for name, field in convert:
                r[name] = field.to_python_value(r[name])
        out += rows
    return out


async def insert_outcomes(
    channel: str,
    outcome: str,
    code: int | None,
    error: str,
    pairs: Sequence[tuple[int, int]],
    now: datetime,
) -> None:
    """One attempt row per (notification id, delivery id), all with this outcome."""
    M = NotificationAttempt
    if _pg(M):
        source, n, d = "unnest(?::bigint[], ?::bigint[]) AS x(n, d)", "x.n", "x.d"
    else:
        source = "json_each(?) AS x"
        n, d = "json_extract(x.value, '$[0]')", "json_extract(x.value, '$[1]')"
    sql = (
        "INSERT INTO notification_attempt "
        '(notification_id, delivery_id, channel, outcome, error_code, error, "at") '
        f"SELECT {n}, {d}, {_mark(M, 'channel')}, {_mark(M, 'outcome')}, "
        f"{_mark(M, 'error_code')}, {_mark(M, 'error')}, {_mark(M, 'at')} FROM {source}"
    )
    at = _db(M, "at", now)
    for start in range(0, len(pairs), ARRAY_CHUNK):
        chunk = pairs[start : start + ARRAY_CHUNK]
        arrays: list[Any] = (
            [[p[0] for p in chunk], [p[1] for p in chunk]]
            if _pg(M)
            else [json.dumps([list(p) for p in chunk])]
        )
        await execute(M, sql, [str(channel), outcome, code, error[:300], at, *arrays])


async def finish_deliveries(
    ids: Sequence[int], lease_token: str | None, state: str, error: str, now: datetime
) -> None:
    """Deliveries still held under `lease_token` end in `state`."""
    M = NotificationDelivery
    for start in range(0, len(ids), ARRAY_CHUNK):
        chunk = ids[start : start + ARRAY_CHUNK]
        await execute(
            M,
            "UPDATE notification_delivery SET state = ?, finished_at = ?, lease_token = NULL, "
            f"last_error = ? WHERE {_in_ids(M, 'id')} AND lease_token = ?",
            [str(state), _db(M, "finished_at", now), error[:300], _array(M, chunk), lease_token],
        )


async def use_quota(subscription_ids: Sequence[int]) -> None:
    """One tap of each subscription used (never below zero)."""
    M = WeChatSubscription
    for start in range(0, len(subscription_ids), ARRAY_CHUNK):
        chunk = subscription_ids[start : start + ARRAY_CHUNK]
        await execute(
            M,
            f"UPDATE wechat_subscription SET quota = quota - 1 WHERE {_in_ids(M, 'id')} "
            "AND quota > 0",
            [_array(M, chunk)],
        )


@dataclass(slots=True)
class ClaimedOutbox:
    """An outbox row this worker holds under `lease_token` (what the fan-out needs)."""

    id: int
    event_type: str
    community_id: int | None
    recipients: dict[str, Any]
    payload: dict[str, Any]
    occurred_at: datetime
    attempts: int
    lease_token: str


_OUTBOX_BACK = ("event_type", "community_id", "recipients", "payload", "occurred_at", "attempts")


async def claim_outbox(
    *, limit: int, lease_s: float, now: datetime, expired: bool = True
) -> list[ClaimedOutbox]:
    """Claim up to `limit` due outbox rows, as `claim_deliveries` claims deliveries: one
    prepared statement per kind (pending and fallen due; processing with the lease run
    out, only when `expired`), no transaction around it, the rows back from RETURNING."""
    M = OutboxEvent
    token = secrets.token_hex(16)
    at = _db(M, "next_attempt_at", now)
    until = _db(M, "lease_expires_at", now + timedelta(seconds=lease_s))
    fmap = M._meta.fields_map
    convert = [(n, fmap[n]) for n in ("recipients", "payload", "occurred_at")]
    kinds = [("state = 'pending' AND next_attempt_at <= ?", "ORDER BY state, next_attempt_at")]
    if expired:  # the caller looks for dead workers' rows every few seconds
        kinds.append(("state = 'processing' AND lease_expires_at < ?", ""))
    claimed: list[ClaimedOutbox] = []
    for due, order in kinds:
        if len(claimed) >= limit:
            break
        pick = "id = ANY(ARRAY(" if _pg(M) else "id IN ("
        lock = " FOR UPDATE SKIP LOCKED))" if _pg(M) else ")"
        sql = (
            "UPDATE notification_outbox SET state = 'processing', lease_token = ?, "
            "lease_expires_at = ?, attempts = attempts + 1 "
            f"WHERE {due} AND {pick}SELECT id FROM notification_outbox WHERE {due} "
            f"{order} LIMIT ?{lock} "
            f"RETURNING id, lease_token, {', '.join(_OUTBOX_BACK)}"
        )
        for r in await select(M, sql, [token, until, at, at, limit - len(claimed)]):
            for name, field in convert:
                r[name] = field.to_python_value(r[name])
            claimed.append(ClaimedOutbox(**r))
    claimed.sort(key=lambda c: c.id)
    return claimed


async def fan_out_pg(
    row: ClaimedOutbox,
    copies: Sequence[tuple[str, int, bool]],
    wechat_to: set[int],
    common: dict[str, Any],
    now: datetime,
) -> list[Copy] | None:
    """PostgreSQL: the whole fan-out of one outbox row in one statement (data-modifying
    WITHs: one round trip, one commit): the row marked done under its lease, each
    recipient's in-app copy ((kind, id, muted) in `copies`; a muted copy is stored read),
    a pending WeChat delivery for each copy of a resident in `wechat_to`, and an in-app
    attempt per copy. None: the lease is lost (nothing written). At most ARRAY_CHUNK
    copies (larger notices take `insert_copies` and friends in a transaction)."""
    N, D, A = Notification, NotificationDelivery, NotificationAttempt
    names = list(common)
    cols = ", ".join(
        f'"{n}"' for n in ["recipient_type", "recipient_id", "muted", "read_at", *names]
    )
    shared = ", ".join(_mark(N, n) for n in names)
    sql = (
        "WITH won AS (UPDATE notification_outbox SET state = 'done', processed_at = ?, "
        "lease_token = NULL, last_error = '' WHERE id = ? AND lease_token = ? RETURNING id), "
        f"ins AS (INSERT INTO notification ({cols}) "
        f"SELECT x.k, x.v, x.m, CASE WHEN x.m THEN {_mark(N, 'read_at')} END, {shared} "
        "FROM unnest(?::text[], ?::bigint[], ?::boolean[]) AS x(k, v, m) "
        "WHERE EXISTS (SELECT 1 FROM won) "
        "ON CONFLICT (outbox_id, recipient_type, recipient_id) DO NOTHING "
        "RETURNING id, recipient_type, recipient_id, muted), "
        "dl AS (INSERT INTO notification_delivery (notification_id, channel, state, attempts, "
        "next_attempt_at, last_error, created_at) "
        f"SELECT i.id, {_mark(D, 'channel')}, 'pending', 0, {_mark(D, 'next_attempt_at')}, '', "
        f"{_mark(D, 'created_at')} FROM ins i WHERE i.recipient_type = 'resident' "
        "AND i.recipient_id = ANY(?::bigint[]) "
        "ON CONFLICT (notification_id, channel) DO NOTHING), "
        "tries AS (INSERT INTO notification_attempt "
        '(notification_id, channel, outcome, error, "at") '
        f"SELECT i.id, {_mark(A, 'channel')}, 'ok', '', {_mark(A, 'at')} FROM ins i) "
        "SELECT w.id AS won, i.id, i.recipient_type, i.recipient_id, i.muted "
        "FROM won w LEFT JOIN ins i ON true"
    )
    values = [
        _db(OutboxEvent, "processed_at", now),
        row.id,
        row.lease_token,
        _db(N, "read_at", now),
        *[_db(N, n, common[n]) for n in names],
        [c[0] for c in copies],
        [c[1] for c in copies],
        [c[2] for c in copies],
        str(Channel.WECHAT),
        _db(D, "next_attempt_at", now),
        _db(D, "created_at", now),
        sorted(wechat_to),
        str(Channel.INAPP),
        _db(A, "at", now),
    ]
    rows = await select(OutboxEvent, sql, values)
    if not rows:
        return None
    out = [
        Copy(r["id"], r["recipient_type"], r["recipient_id"], bool(r["muted"]))
        for r in rows
        if r["id"] is not None
    ]
    out.sort(key=lambda c: c.id)
    return out
