"""Many rows in one statement, on SQLite and PostgreSQL alike (for group commits).

The ORM writes one row per round trip and spends more time building each query than the
database spends running it. These helpers write a whole batch in one statement: values
go through each field's own `to_db_value`, so the rows read back exactly as the ORM's.
Both databases here take `INSERT ... ON CONFLICT DO NOTHING RETURNING` and
`UPDATE ... RETURNING` (SQLite since 3.35).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.models import Model

# Casts PostgreSQL needs where a parameter's type cannot be inferred (inside CASE).
_PG_TYPES: list[tuple[type[fields.Field[Any]], str]] = [
    (fields.JSONField, "jsonb"),
    (fields.DatetimeField, "timestamptz"),
    (fields.FloatField, "double precision"),
    (fields.BooleanField, "boolean"),
    (fields.BigIntField, "bigint"),
    (fields.IntField, "bigint"),
    (fields.SmallIntField, "bigint"),
]


def connection(model: type[Model]) -> BaseDBAsyncClient:
    return model._meta.db


def in_transaction(model: type[Model]) -> bool:
    """Whether the current task writes inside a transaction (a batch must not join it)."""
    return isinstance(connection(model), TransactionalDBClient)


class _Sql:
    def __init__(self, model: type[Model]) -> None:
        self.model = model
        self.conn = connection(model)
        self.pg = self.conn.capabilities.dialect == "postgres"
        self.values: list[Any] = []

    def column(self, name: str) -> str:
        field = self.model._meta.fields_map[name]
        return f'"{field.source_field or name}"'

    def param(self, name: str | None, value: Any, *, cast: bool = False) -> str:
        if name is not None:
            value = self.model._meta.fields_map[name].to_db_value(value, self.model)
        self.values.append(value)
        mark = f"${len(self.values)}" if self.pg else "?"
        if cast and self.pg and name is not None:
            field = self.model._meta.fields_map[name]
            sql_type = next((t for cls, t in _PG_TYPES if isinstance(field, cls)), "text")
            mark += f"::{sql_type}"
        return mark

    async def run(self, sql: str) -> list[dict[str, Any]]:
        return list(await self.conn.execute_query_dict(sql, self.values))


async def insert_many(
    model: type[Model],
    rows: Sequence[dict[str, Any]],
    *,
    conflict: str | None = None,
    returning: Iterable[str] = ("id",),
) -> list[dict[str, Any]]:
    """Insert `rows` (field name -> value; every row the same fields) in one statement;
    with `conflict` (a unique field) the rows that would collide are skipped. Returns the
    `returning` fields of the rows written (those skipped are absent)."""
    if not rows:
        return []
    q = _Sql(model)
    names = list(rows[0])
    tuples = ["(" + ", ".join(q.param(n, row[n]) for n in names) + ")" for row in rows]
    sql = (
        f'INSERT INTO "{model._meta.db_table}" ({", ".join(q.column(n) for n in names)}) '
        f"VALUES {', '.join(tuples)}"
    )
    if conflict is not None:
        sql += f" ON CONFLICT ({q.column(conflict)}) DO NOTHING"
    sql += " RETURNING " + ", ".join(f"{q.column(n)} AS {n}" for n in returning)
    return await q.run(sql)


async def update_each(
    model: type[Model],
    key: str,
    rows: dict[Any, dict[str, Any]],
    *,
    same: dict[str, Any] | None = None,
    where: dict[str, Any] | None = None,
    match: dict[Any, dict[str, Any]] | None = None,
    returning: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """One UPDATE for many rows: `rows` maps each row's `key` to its own new values (the
    same fields for every row), `same` sets values common to all, `where` adds conditions
    for all and `match` per row (key -> field -> required value). Returns the `returning`
    fields of the rows updated (empty without `returning`)."""
    if not rows:
        return []
    q = _Sql(model)
    keys = list(rows)
    sets = []
    for name in next(iter(rows.values())):
        cases = " ".join(
            f"WHEN {q.param(key, k, cast=True)} THEN {q.param(name, rows[k][name], cast=True)}"
            for k in keys
        )
        sets.append(f"{q.column(name)} = CASE {q.column(key)} {cases} END")
    for name, value in (same or {}).items():
        sets.append(f"{q.column(name)} = {q.param(name, value, cast=True)}")
    if match:
        conds = [
            "("
            + " AND ".join(
                [f"{q.column(key)} = {q.param(key, k)}"]
                + [f"{q.column(n)} = {q.param(n, v)}" for n, v in match[k].items()]
            )
            + ")"
            for k in keys
        ]
        clause = "(" + " OR ".join(conds) + ")"
    else:
        clause = f"{q.column(key)} IN ({', '.join(q.param(key, k) for k in keys)})"
    for name, value in (where or {}).items():
        clause += f" AND {q.column(name)} = {q.param(name, value)}"
    sql = f'UPDATE "{model._meta.db_table}" SET {", ".join(sets)} WHERE {clause}'
    fields_back = list(returning)
    if fields_back:
        sql += " RETURNING " + ", ".join(f"{q.column(n)} AS {n}" for n in fields_back)
        return await q.run(sql)
    await q.run(sql)
    return []


async def select(model: type[Model], sql: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    """A read in plain SQL on `model`'s connection; `?` marks the parameters (numbered
    for PostgreSQL here). For hot paths only: the ORM builds a query per call. Also runs
    a write with `RETURNING` (its rows are returned)."""
    conn = connection(model)
    if conn.capabilities.dialect == "postgres":
        parts = sql.split("?")
        sql = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
    return [dict(r) for r in await conn.execute_query_dict(sql, list(values))]


def marks(n: int) -> str:
    """`?, ?, ...` for an IN list of n values."""
    return ", ".join("?" * n)
