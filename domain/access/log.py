"""Writing door decisions down: one access-event row per decision, always with its reason,
and the notification an opened door sends (door opened, visitor arrived) in the row's own
transaction: both or neither (docs/notifications.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from anxin.batching import Batcher
from anxin.clock import utcnow
from domain.access.policy import Decision
from models import (
    AccessEvent,
    AccessMethod,
    AccessResult,
    Device,
    DeviceCommand,
    DeviceEventClaim,
    DeviceEventState,
    OutboxEvent,
)
from models.bulk import Then, Update, insert_linked, insert_many
from models.bulk import in_transaction as in_caller_transaction
from notifications.outbox import emit, emit_many, outbox_row, outbox_values, queued


@dataclass(frozen=True)
class Notice:
    """What to tell residents when the door opened; queued only with a granted row."""

    event_type: str
    community_id: int
    payload: dict[str, Any]
    residents: tuple[int, ...] = ()
    rooms: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON form, kept with a claimed event so a crash-finished row still sends it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Notice | None:
        if not data:
            return None
        return cls(
            event_type=str(data["event_type"]),
            community_id=int(data["community_id"]),
            payload=dict(data.get("payload") or {}),
            residents=tuple(data.get("residents") or ()),
            rooms=tuple(data.get("rooms") or ()),
        )

    async def queue(self, row: AccessEvent) -> None:
        await emit(**self._for(row))

    def outbox_row(self, row: AccessEvent) -> OutboxEvent:
        return outbox_row(**self._for(row))

    def _for(self, row: AccessEvent) -> dict[str, Any]:
        return self._fields(row.occurred_at, f"{DEDUPE_PREFIX}{row.id}")

    def _fields(self, occurred_at: datetime, dedupe_key: str | None) -> dict[str, Any]:
        return dict(
            event_type=self.event_type,
            payload=self.payload,
            community_id=self.community_id,
            residents=self.residents,
            rooms=self.rooms,
            dedupe_key=dedupe_key,
            occurred_at=occurred_at,
        )


DEDUPE_PREFIX = "access:"  # + the row's id: one message per access row


async def record_access(
    device: Device | None,
    community_id: int,
    method: AccessMethod,
    decision: Decision,
    *,
    result: AccessResult | None = None,
    event_key: str | None = None,
    command_id: str = "",
    requested_by_id: int | None = None,
    plate: str = "",
    snapshot_ref: str = "",
    occurred_at: datetime | None = None,
    notice: Notice | None = None,
    claim: DeviceEventClaim | None = None,
    command: DeviceCommand | None = None,
) -> AccessEvent | None:
    """The row, or None when `event_key` was already written (a redelivered event). A
    `notice` is queued in the same transaction when the row says the door opened. The
    device event's `claim`, when the row is written with a batch (or is a server-started
    open's, without an event key, outside a caller's transaction), is finished with it
    (outcome: the row's result) in the same statement or transaction, and marked done
    in memory (`claim.state`); otherwise its holder finishes it. The door `command`'s
    outcome (its status, ack reason and latency as set on it) is written with the row:
    in the same statement when batched, just before it otherwise."""
    if result is None:
        result = AccessResult.GRANTED if decision.granted else AccessResult.DENIED
    fields: dict[str, Any] = dict(
        community_id=community_id,
        device_id=device.id if device else None,
        method=method,
        result=result,
        reason=decision.reason,
        resident_id=decision.resident_id,
        room_id=decision.room_id,
        pass_id=decision.pass_id,
        requested_by_id=requested_by_id,
        plate=plate,
        score=decision.score,
        snapshot_ref=snapshot_ref,
        command_id=command_id,
        event_key=event_key,
    )
    now = utcnow()
    fields.update(occurred_at=occurred_at or now, created_at=now)
    if notice is not None and result != AccessResult.GRANTED:
        notice = None  # a refused or failed door tells nobody it opened
    if event_key is not None and not in_caller_transaction(AccessEvent):
        # A device event's row: written with those of every other event in flight (and
        # its notice in the same transaction).
        return await _ROWS.submit((fields, notice, claim, command))
    if command is not None:
        await command.save(update_fields=list(COMMAND_OUTCOME))
    if claim is not None and event_key is None and not in_caller_transaction(AccessEvent):
        return await _with_claim_finished(fields, notice, claim)
    try:
        if notice is None or result != AccessResult.GRANTED:
            return await AccessEvent.create(**fields)
        if event_key is None and in_caller_transaction(AccessEvent):
            # The caller's transaction holds the row and its notice together (no
            # savepoint: without a key the insert has no conflict to contain); one
            # INSERT each, as a batch of device events writes them.
            (written,) = await insert_many(AccessEvent, [fields])
            row = AccessEvent(id=written["id"], **fields)
            row._saved_in_db = True
            await emit_many([notice.outbox_row(row)])
            return row
        async with in_transaction():
            row = await AccessEvent.create(**fields)
            await notice.queue(row)
        return row
    except IntegrityError:
        if event_key is None:
            raise
        return None


async def _with_claim_finished(
    fields: dict[str, Any], notice: Notice | None, claim: DeviceEventClaim
) -> AccessEvent:
    """A server-started open's row (no event key), its notice and its claim's finish, all
    or nothing: on PostgreSQL one statement (was BEGIN, three statements, COMMIT)."""
    outcome = fields["result"].value[:64]
    finish = Update(
        DeviceEventClaim,
        "id",
        {claim.id: {"outcome": outcome}},
        same=DeviceEventClaim.done_fields(utcnow()),
    )
    if notice is None:
        (written,) = await insert_many(AccessEvent, [fields], along=finish)
        row = AccessEvent(id=written["id"], **fields)
        row._saved_in_db = True
    else:
        row = AccessEvent(**fields)
        # The notice's dedupe key names the row ("access:<id>"): the statement fills it in.
        await insert_linked(
            row, notice.outbox_row(row), "dedupe_key", prefix=DEDUPE_PREFIX, along=finish
        )
        queued()
    claim.state, claim.outcome = DeviceEventState.DONE, outcome
    return row


_Item = tuple[dict[str, Any], Notice | None, DeviceEventClaim | None, DeviceCommand | None]
COMMAND_OUTCOME = ("status", "ack_reason", "latency_ms")


async def _insert_rows(items: list[_Item]) -> list[AccessEvent | None]:
    """One INSERT for a batch of keyed rows, with the notices of the rows written, the
    finish of their events' claims and their door commands' outcomes, all or nothing
    (PostgreSQL: one statement); None for each key already written (by
    an earlier row or an earlier item of this batch). A claim is finished, and a
    command's outcome written, whether its row was new or a repeat."""
    first: dict[str, dict[str, Any]] = {}
    for item, _, _, _ in items:
        first.setdefault(item["event_key"], item)
    claims = {c.id: (c, item["result"].value[:64]) for item, _, c, _ in items if c is not None}
    finish = Update(
        DeviceEventClaim,
        "id",
        {cid: {"outcome": outcome} for cid, (_, outcome) in claims.items()},
        same=DeviceEventClaim.done_fields(utcnow()),
    )
    outcomes = Update(
        DeviceCommand,
        "id",
        {c.id: {n: getattr(c, n) for n in COMMAND_OUTCOME} for _, _, _, c in items if c},
    )
    # The notices of the rows written, each keyed by its row's id (known once written).
    notices = {
        key: notice
        for item, notice, _, _ in items
        if notice is not None and first[key := item["event_key"]] is item
    }
    then = None
    if notices:
        values = outbox_values(
            [outbox_row(**n._fields(first[k]["occurred_at"], None)) for k, n in notices.items()]
        )
        then = Then(
            OutboxEvent,
            {
                k: {n: v for n, v in row.items() if n != "dedupe_key"}
                for k, row in zip(notices, values, strict=True)
            },
            on="event_key",
            ref="dedupe_key",
            prefix=DEDUPE_PREFIX,
            conflict="dedupe_key",
        )
    rows = _rows_of(items, first, await _insert_firsts(first, (finish, outcomes), then))
    if notices:
        queued()  # committed: the statement (or its transaction) is done
    for claim, outcome in claims.values():
        claim.state, claim.outcome = DeviceEventState.DONE, outcome
    return rows


async def _insert_firsts(
    first: dict[str, dict[str, Any]], along: tuple[Update, ...] = (), then: Then | None = None
) -> dict[str, int]:
    written = await insert_many(
        AccessEvent,
        list(first.values()),
        conflict="event_key",
        returning=("id", "event_key"),
        along=along,
        then=then,
    )
    return {r["event_key"]: r["id"] for r in written}


def _rows_of(
    items: list[_Item],
    first: dict[str, dict[str, Any]],
    ids: dict[str, int],
) -> list[AccessEvent | None]:
    out: list[AccessEvent | None] = []
    for item, _, _, _ in items:
        key = item["event_key"]
        if first.get(key) is item and key in ids:
            row = AccessEvent(id=ids[key], **item)
            row._saved_in_db = True
            out.append(row)
        else:
            out.append(None)
    return out


_ROWS: Batcher[_Item, AccessEvent | None] = Batcher(_insert_rows)
