"""Many rows in one statement, on SQLite and PostgreSQL alike (for group commits).

The ORM writes one row per round trip and spends more time building each query than the
database spends running it. These helpers write a whole batch in one statement: values
go through each field's own `to_db_value`, so the rows read back exactly as the ORM's.
Both databases here take `INSERT ... ON CONFLICT DO NOTHING RETURNING` and
`UPDATE ... RETURNING` (SQLite since 3.35).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.models import Model
from tortoise.transactions import in_transaction as in_tx

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


def in_tx_of(model: type[Model]) -> Any:
    """A transaction on `model`'s connection (joins the caller's, if any)."""
    return in_tx(connection(model).connection_name)


def in_transaction(model: type[Model]) -> bool:
    """Whether the current task writes inside a transaction (a batch must not join it)."""
    return isinstance(connection(model), TransactionalDBClient)


class _Sql:
    def __init__(self, model: type[Model]) -> None:
        self.model = model
        self.conn = connection(model)
        self.pg = self.conn.capabilities.dialect == "postgres"
        self.values: list[Any] = []

    def column(self, name: str, model: type[Model] | None = None) -> str:
        field = (model or self.model)._meta.fields_map[name]
        return f'"{field.source_field or name}"'

    def param(
        self, name: str | None, value: Any, *, cast: bool = False, model: type[Model] | None = None
    ) -> str:
        model = model or self.model
        if name is not None:
            value = model._meta.fields_map[name].to_db_value(value, model)
        self.values.append(value)
        mark = f"${len(self.values)}" if self.pg else "?"
        if cast and self.pg and name is not None:
            field = model._meta.fields_map[name]
            sql_type = next((t for cls, t in _PG_TYPES if isinstance(field, cls)), "text")
            mark += f"::{sql_type}"
        return mark

    async def run(self, sql: str) -> list[dict[str, Any]]:
        return list(await self.conn.execute_query_dict(sql, self.values))


@dataclass(frozen=True)
class Update:
    """An `update_each` to run with an insert (`insert_many(..., along=...)`)."""

    model: type[Model]
    key: str
    rows: dict[Any, dict[str, Any]]
    same: dict[str, Any] | None = None


@dataclass(frozen=True)
class Then:
    """Rows an `insert_many` writes after its own (`insert_many(..., then=...)`): `rows[k]`
    once the row whose `on` field is k was written (not skipped), with its `ref` field set
    to `prefix` followed by that row's id; rows colliding on `conflict` are skipped."""

    model: type[Model]
    rows: dict[Any, dict[str, Any]]
    on: str
    ref: str
    prefix: str = ""
    conflict: str | None = None


async def insert_many(
    model: type[Model],
    rows: Sequence[dict[str, Any]],
    *,
    conflict: str | None = None,
    returning: Iterable[str] = ("id",),
    along: Update | Sequence[Update] | None = None,
    then: Then | None = None,
) -> list[dict[str, Any]]:
    """Insert `rows` (field name -> value; every row the same fields) in one statement;
    with `conflict` (a unique field) the rows that would collide are skipped. Returns the
    `returning` fields of the rows written (those skipped are absent). `along` (updates,
    run whether or not a row collides) and `then` (rows that follow the rows written)
    commit with the insert or not at all: on PostgreSQL in the same statement (a
    data-modifying WITH: one round trip, one commit), elsewhere in one transaction."""
    along = [u for u in ([along] if isinstance(along, Update) else along or ()) if u.rows]
    if then is not None and not then.rows:
        then = None
    back = list(returning)
    if then is not None:
        back += [n for n in ("id", then.on) if n not in back]
    if (along or then) and connection(model).capabilities.dialect != "postgres":
        async with in_tx_of(model):
            written = await insert_many(model, rows, conflict=conflict, returning=back)
            if then is not None:
                follow = [
                    {**then.rows[w[then.on]], then.ref: f"{then.prefix}{w['id']}"}
                    for w in written
                    if w[then.on] in then.rows
                ]
                await insert_many(then.model, follow, conflict=then.conflict)
            for u in along:
                await update_each(u.model, u.key, u.rows, same=u.same)
        return written
    if not rows:
        for u in along:
            await update_each(u.model, u.key, u.rows, same=u.same)
        return []
    q = _Sql(model)
    ctes = [
        f"_along{i} AS ({_update_sql(q, u.model, u.key, u.rows, u.same)})"
        for i, u in enumerate(along)
    ]
    names = list(rows[0])
    tuples = ["(" + ", ".join(q.param(n, row[n]) for n in names) + ")" for row in rows]
    sql = (
        f'INSERT INTO "{model._meta.db_table}" ({", ".join(q.column(n) for n in names)}) '
        f"VALUES {', '.join(tuples)}"
    )
    if conflict is not None:
        sql += f" ON CONFLICT ({q.column(conflict)}) DO NOTHING"
    sql += " RETURNING " + ", ".join(f"{q.column(n)} AS {n}" for n in back)
    if then is not None:
        ctes += [f"_written AS ({sql})", f"_then AS ({_then_sql(q, model, then)})"]
        sql = "SELECT * FROM _written"
    if ctes:
        sql = f"WITH {', '.join(ctes)} {sql}"
    return await q.run(sql)


def _then_sql(q: _Sql, model: type[Model], then: Then) -> str:
    """The INSERT of `then` (PostgreSQL), following the rows of the CTE `_written`."""
    names = list(next(iter(then.rows.values())))
    quoted = [q.column(n, then.model) for n in names]
    cols = ", ".join(quoted)
    tuples = [
        "("
        + ", ".join(
            [q.param(then.on, k, cast=True, model=model)]
            + [q.param(n, row[n], cast=True, model=then.model) for n in names]
        )
        + ")"
        for k, row in then.rows.items()
    ]
    prefix = q.param(None, then.prefix)
    sql = (
        f'INSERT INTO "{then.model._meta.db_table}" ({cols}, {q.column(then.ref, then.model)}) '
        f"SELECT {', '.join(f'_v.{c}' for c in quoted)}, {prefix}::text || _written.id::text "
        f"FROM (VALUES {', '.join(tuples)}) AS _v (_on, {cols}) "
        f"JOIN _written ON _written.{then.on} = _v._on"
    )
    if then.conflict is not None:
        sql += f" ON CONFLICT ({q.column(then.conflict, then.model)}) DO NOTHING"
    return sql


async def insert_where_updated(
    model: type[Model],
    rows: dict[Any, dict[str, Any]],
    update: Update,
    *,
    match: dict[Any, dict[str, Any]] | None = None,
    where: dict[str, Any] | None = None,
    returning: Iterable[str] = ("id",),
) -> list[dict[str, Any]]:
    """`update` (`update_each` with its `where` and `match`) and, for each of its rows the
    update did change, `rows[key]` inserted into `model` (every row the same fields), all
    or nothing: on PostgreSQL one statement (a data-modifying WITH), elsewhere one
    transaction. Returns the `returning` fields of the rows inserted."""
    if not rows:
        return []
    keys = list(rows)
    if connection(model).capabilities.dialect != "postgres":
        async with in_tx_of(model):
            done = await update_each(
                update.model,
                update.key,
                {k: update.rows[k] for k in keys},
                same=update.same,
                where=where,
                match=match,
                returning=(update.key,),
            )
            changed = {r[update.key] for r in done}
            return await insert_many(
                model, [rows[k] for k in keys if k in changed], returning=returning
            )
    q = _Sql(model)
    usql = _update_sql(
        q, update.model, update.key, {k: update.rows[k] for k in keys}, update.same, where, match
    )
    names = list(rows[keys[0]])
    cols = ", ".join(q.column(n) for n in names)
    tuples = [
        "("
        + ", ".join(
            [q.param(update.key, k, cast=True, model=update.model)]
            + [q.param(n, rows[k][n], cast=True) for n in names]
        )
        + ")"
        for k in keys
    ]
    sql = (
        f"WITH _updated AS ({usql} RETURNING {q.column(update.key, update.model)} AS _k), "
        f"_rows (_k, {cols}) AS (VALUES {', '.join(tuples)}) "
        f'INSERT INTO "{model._meta.db_table}" ({cols}) '
        f"SELECT {cols} FROM _rows WHERE _k IN (SELECT _k FROM _updated) "
        "RETURNING " + ", ".join(f"{q.column(n)} AS {n}" for n in returning)
    )
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
    sql = _update_sql(q, model, key, rows, same, where, match)
    fields_back = list(returning)
    if fields_back:
        sql += " RETURNING " + ", ".join(f"{q.column(n)} AS {n}" for n in fields_back)
        return await q.run(sql)
    await q.run(sql)
    return []


def _update_sql(
    q: _Sql,
    model: type[Model],
    key: str,
    rows: dict[Any, dict[str, Any]],
    same: dict[str, Any] | None = None,
    where: dict[str, Any] | None = None,
    match: dict[Any, dict[str, Any]] | None = None,
) -> str:
    """The UPDATE of `update_each`, its parameters added to `q`."""

    def col(name: str) -> str:
        return q.column(name, model)

    def par(name: str, value: Any, cast: bool = False) -> str:
        return q.param(name, value, cast=cast, model=model)

    keys = list(rows)
    sets = []
    for name in next(iter(rows.values())):
        cases = " ".join(
            f"WHEN {par(key, k, cast=True)} THEN {par(name, rows[k][name], cast=True)}"
            for k in keys
        )
        sets.append(f"{col(name)} = CASE {col(key)} {cases} END")
    for name, value in (same or {}).items():
        sets.append(f"{col(name)} = {par(name, value, cast=True)}")
    if match:
        conds = [
            "("
            + " AND ".join(
                [f"{col(key)} = {par(key, k)}"]
                + [f"{col(n)} = {par(n, v)}" for n, v in match[k].items()]
            )
            + ")"
            for k in keys
        ]
        clause = "(" + " OR ".join(conds) + ")"
    else:
        clause = f"{col(key)} IN ({', '.join(par(key, k) for k in keys)})"
    for name, value in (where or {}).items():
        clause += f" AND {col(name)} = {par(name, value)}"
    return f'UPDATE "{model._meta.db_table}" SET {", ".join(sets)} WHERE {clause}'


async def select(model: type[Model], sql: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    """A read in plain SQL on `model`'s connection; `?` marks the parameters (numbered
    for PostgreSQL here). For hot paths only: the ORM builds a query per call. Also runs
    a write with `RETURNING` (its rows are returned)."""
    conn = connection(model)
    if conn.capabilities.dialect == "postgres":
        parts = sql.split("?")
        sql = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
    return [dict(r) for r in await conn.execute_query_dict(sql, list(values))]


def columns(model: type[Model], alias: str = "") -> str:
    """Every column of `model`, quoted, for a `select` whose rows become models
    (`model._init_from_db(**row)`, as the ORM builds them); `alias`: the table's alias in
    a join, each column then named as the model's own."""
    if alias:
        return ", ".join(f'{alias}."{c}" AS "{c}"' for c in sorted(model._meta.db_fields))
    return ", ".join(f'"{c}"' for c in sorted(model._meta.db_fields))


def new_row_values(obj: Model) -> dict[str, Any]:
    """A new row's field values as `insert_many` takes them: every field but the primary
    key, as the model holds them."""
    meta = obj._meta
    return {n: getattr(obj, n) for n in meta.fields_db_projection if n != meta.pk_attr}


def marks(n: int) -> str:
    """`?, ?, ...` for an IN list of n values."""
    return ", ".join("?" * n)


def _insert_sql(q: _Sql, obj: Model, skip: str | None = None) -> tuple[str, list[str]]:
    """`INSERT INTO t (columns)` of a new row and the parameters of its values."""
    model, meta = type(obj), obj._meta
    names = [n for n in meta.fields_db_projection if n not in (meta.pk_attr, skip)]
    marks = [q.param(n, getattr(obj, n), cast=True, model=model) for n in names]
    columns = ", ".join(q.column(n, model) for n in names)
    return f'INSERT INTO "{meta.db_table}" ({columns}', marks


def _saved(obj: Model, pk: Any) -> None:
    obj.pk = pk
    obj._saved_in_db = True


async def insert_together(*rows: Model) -> None:
    """Write new rows of any models at once, all or none: on PostgreSQL one statement (a
    data-modifying WITH per row: one round trip, one commit), elsewhere one transaction.
    Each row gets its id and counts as saved, as `Model.save` would leave it."""
    first = type(rows[0])
    if connection(first).capabilities.dialect != "postgres":
        async with in_tx_of(first):
            for obj in rows:
                await obj.save()
        return
    q = _Sql(first)
    parts = []
    for i, obj in enumerate(rows):
        head, marks = _insert_sql(q, obj)
        pk = obj._meta.pk_attr
        parts.append(f'r{i} AS ({head}) VALUES ({", ".join(marks)}) RETURNING "{pk}" AS id)')
    picks = ", ".join(f"r{i}.id AS id{i}" for i in range(len(rows)))
    froms = ", ".join(f"r{i}" for i in range(len(rows)))
    (back,) = await q.run(f"WITH {', '.join(parts)} SELECT {picks} FROM {froms}")
    for i, obj in enumerate(rows):
        _saved(obj, back[f"id{i}"])


async def insert_linked(
    first: Model, second: Model, link: str, *, prefix: str = "", along: Update | None = None
) -> None:
    """Write two new rows that go together (a row and its audit record, an access row and
    its notice): `second`'s field `link` takes `first`'s id (as text after `prefix` when
    the field is text). `along`: an update that commits with them. On PostgreSQL one
    statement (a data-modifying WITH: one round trip, one commit), elsewhere one
    transaction; both rows get their ids (and count as saved) as `Model.save` would."""
    a, b = type(first), type(second)
    as_text = isinstance(b._meta.fields_map[link], fields.CharField)
    if connection(a).capabilities.dialect != "postgres":
        async with in_tx_of(a):
            await first.save()
            setattr(second, link, f"{prefix}{first.pk}" if as_text else first.pk)
            await second.save()
            if along is not None and along.rows:
                await update_each(along.model, along.key, along.rows, same=along.same)
        return
    q = _Sql(a)
    head_a, marks_a = _insert_sql(q, first)
    head_b, marks_b = _insert_sql(q, second, link)
    value = f"{q.param(None, prefix)}::text || first.id::text" if as_text else "first.id"
    update = ""
    if along is not None and along.rows:
        update = f"_along AS ({_update_sql(q, along.model, along.key, along.rows, along.same)}), "
    sql = (
        f"WITH first AS ({head_a}) VALUES ({', '.join(marks_a)}) RETURNING "
        f'"{a._meta.pk_attr}" AS id), {update}'
        f"second AS ({head_b}, {q.column(link, b)}) "
        f"SELECT {', '.join(marks_b)}, {value} FROM first "
        f'RETURNING "{b._meta.pk_attr}" AS id) '
        "SELECT first.id AS first_id, second.id AS second_id FROM first, second"
    )
    (row,) = await q.run(sql)
    _saved(first, row["first_id"])
    _saved(second, row["second_id"])
    setattr(second, link, f"{prefix}{row['first_id']}" if as_text else row["first_id"])
