"""The dispatcher: outbox rows become in-app notifications, realtime pushes and WeChat
subscribe messages.

Two loops per worker, any number of workers:
- fan-out: claim outbox rows; in one transaction write each recipient's in-app copy,
  one WeChat delivery row per resident that can get one, and mark the row done; after
  commit push the copies over the realtime channel.
- deliveries: claim due WeChat deliveries and send them, concurrently, each with its own
  retry schedule (exponential backoff with jitter; WeChat's rate limits wait as long as
  WeChat asks). Every try is written to `notification_attempt`.
A worker that dies leaves its claimed rows behind with a lease; when the lease runs out
another worker takes them. Delivery is at least once; notification ids let clients drop
a repeated realtime push.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from anxin.clock import utcnow
from anxin.runtime import Key
from auth.wechat import DEFAULT_TIMEOUT_S as WECHAT_TIMEOUT_S
from auth.wechat import WECHAT, SendOutcome, SendResult, WeChatClient
from models import (
    Channel,
    DeliveryState,
    Notification,
    NotificationAttempt,
    NotificationDelivery,
    OutboxEvent,
    OutboxState,
    Resident,
    WeChatSubscription,
)
from notifications import fanout_sql, realtime
from notifications.catalog import get_type, render
from notifications.claim import backoff_s
from notifications.fanout_sql import Claimed, ClaimedOutbox
from notifications.outbox import register_waker
from notifications.recipients import Recipient, resolve_with_mutes
from notifications.views import community_timezones, notification_view, wechat_time
from notifications.wechat_templates import Template, build_data, default_templates

log = logging.getLogger(__name__)

# The delivery loop is woken this long after a fan-out wrote WeChat deliveries, so that
# the notices of that moment are claimed, read and recorded as one batch (eight
# statements a batch) rather than one batch per notice; a subscribe message a fraction of
# a second later is no worse.
DELIVERY_GATHER_S = 0.2
# Pauses between tries to hand a failed row back (a dropped connection is replaced at once).
RELEASE_RETRY_S = (0.2, 1.0)


@dataclass(frozen=True)
class RetryPolicy:
    outbox_base_s: float = 2.0
    outbox_cap_s: float = 300.0
    outbox_max_attempts: int = 10
    wechat_base_s: float = 5.0
    wechat_cap_s: float = 900.0
    wechat_max_attempts: int = 8


class Dispatcher:
    def __init__(
        self,
        runtime: Any,
        *,
        worker_id: str | None = None,
        batch_size: int = 100,
        lease_s: float = 30.0,
        poll_s: float = 0.5,
        concurrency: int = 64,
        templates: dict[str, Template] | None = None,
        wechat: WeChatClient | None = None,
        policy: RetryPolicy | None = None,
        run_loops: bool = True,
    ) -> None:
        self.runtime = runtime
        self.worker_id = worker_id or secrets.token_hex(4)
        self.batch_size = batch_size
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.templates = templates if templates is not None else default_templates()
        self.policy = policy or RetryPolicy()
        self.run_loops = run_loops  # False: tests drive it with run_once()
        self._wechat = wechat
        self.concurrency = concurrency
        self._sem = asyncio.Semaphore(concurrency)
        self._outbox_wake = asyncio.Event()
        self._delivery_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._expired_at: dict[str, datetime] = {}
        self._delivery_timer: asyncio.TimerHandle | None = None

    # -- service -------------------------------------------------------------------------
    @property
    def wechat(self) -> WeChatClient:
        if self._wechat is None:
            self._wechat = self.runtime.get(WECHAT).client
        return self._wechat

    async def start(self) -> None:
        if not self.run_loops:
            return
        register_waker(self)
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._loop(self.process_outbox, self._outbox_wake)),
            asyncio.create_task(self._loop(self.process_deliveries, self._delivery_wake)),
        ]

    async def stop(self, timeout_s: float = 10.0) -> None:
        # Let a batch in progress finish: a task cancelled inside a transaction can
        # leave a pooled connection holding row locks.
        self._stopping = True
        if self._delivery_timer is not None:
            self._delivery_timer.cancel()
            self._delivery_timer = None
        self._outbox_wake.set()
        self._delivery_wake.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks = []

    def wake(self) -> None:
        self._outbox_wake.set()

    def _wake_deliveries(self) -> None:
        if self._delivery_timer is not None:
            return  # already due: this fan-out's deliveries go with that batch
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._delivery_wake.set()
            return

        def fire() -> None:
            self._delivery_timer = None
            self._delivery_wake.set()

        self._delivery_timer = loop.call_later(DELIVERY_GATHER_S, fire)

    async def _loop(self, step: Any, wake: asyncio.Event) -> None:
        while not self._stopping:
            try:
                done = await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher step failed")
                done = 0
            if done >= self.batch_size or self._stopping:
                continue  # a full batch: there may be more right away
            # A partial batch took everything due: wait for a wake (an emit in this
            # process) or the poll, not for one more empty claim per batch.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.poll_s)
            wake.clear()

    async def run_once(self) -> int:
        """One fan-out batch and one delivery batch (tests and the bench drive this)."""
        return await self.process_outbox() + await self.process_deliveries()

    async def drain(self, rounds: int = 100) -> int:
        total = 0
        for _ in range(rounds):
            done = await self.run_once()
            total += done
            if not done:
                break
        return total

    # -- fan-out -------------------------------------------------------------------------
    def _take_expired(self, kind: str) -> bool:
        """Whether this claim also looks for rows whose lease ran out (a worker died):
        every few seconds, not on every claim (one statement fewer per wake)."""
        now = utcnow()
        last = self._expired_at.get(kind)
        if last is not None and (now - last).total_seconds() < min(5.0, self.lease_s / 6):
            return False
        self._expired_at[kind] = now
        return True

    async def process_outbox(self) -> int:
        rows = await fanout_sql.claim_outbox(
            limit=self.batch_size,
            lease_s=self.lease_s,
            now=utcnow(),
            expired=self._take_expired("outbox"),
        )
        pushed: list[int] = []
        failed: list[NotificationAttempt] = []
        zones = await community_timezones(r.community_id for r in rows) if rows else {}
        for row in rows:  # one zone look-up per batch, not two per event
            ok, errors = await self._fan_out(row, zones[row.community_id])
            pushed += ok
            failed += errors
        # One insert per batch: a commit per push would cost more than the push.
        if pushed:
            await fanout_sql.insert_attempts(pushed, Channel.REALTIME, "published", utcnow())
        if failed:
            await NotificationAttempt.bulk_create(failed)
        return len(rows)  # _fan_out woke the delivery loop if it wrote deliveries

    async def _fan_out(
        self, row: ClaimedOutbox, tz: str
    ) -> tuple[list[int], list[NotificationAttempt]]:
        try:
            written = await self._write_notifications(row, tz)
        except Exception as exc:
            log.exception("fan-out of outbox %s failed", row.id)
            await self._outbox_retry(row, exc)
            return [], []
        if written is None:
            return [], []  # lost the lease to another worker, which does it instead
        notes, common, wechat_count = written
        if wechat_count:
            self._wake_deliveries()
        return await self._push_realtime(notes, common, tz)

    async def _write_notifications(
        self, row: ClaimedOutbox, tz: str
    ) -> tuple[list[fanout_sql.Copy], dict[str, Any], int] | None:
        """Every recipient's in-app copy, the WeChat deliveries and the in-app attempts,
        with the outbox row marked done, in one transaction: a crash leaves all of it or
        none, and the row is claimed again. None: another worker holds the row now."""
        ntype = get_type(row.event_type)
        recipients, silenced = await resolve_with_mutes(
            row.community_id, row.recipients, row.event_type, ntype.mandatory
        )
        values = {"time": wechat_time(row.occurred_at, tz), **row.payload}
        texts = {
            f"{part}_{lang}": render(getattr(ntype, f"{part}_{lang}"), values, lang)[:500]
            for part in ("title", "body")
            for lang in ("zh", "en")
        }
        template = self.templates.get(row.event_type)
        now = utcnow()
        common: dict[str, Any] = {
            "outbox_id": row.id,
            "community_id": row.community_id,
            "event_type": row.event_type,
            "mandatory": ntype.mandatory,
            "data": values,
            "occurred_at": row.occurred_at,
            "created_at": now,
            **texts,
        }
        wechat_to = self._wechat_recipients(recipients, silenced, template)
        if fanout_sql.pg() and len(recipients) <= fanout_sql.ARRAY_CHUNK:
            copies = [(r.kind, r.id, (r.kind, r.id) in silenced) for r in recipients]
            notes = await fanout_sql.fan_out_pg(
                row, copies, {i for k, i in wechat_to if k == "resident"}, common, now
            )
            if notes is None:
                return None
            sent = sum(
                1
                for n in notes
                if n.recipient_type == "resident"
                and (n.recipient_type, n.recipient_id) in wechat_to
            )
            return [n for n in notes if not n.muted], common, sent
        groups: dict[tuple[str, bool], list[int]] = {}
        for r in recipients:
            groups.setdefault((r.kind, (r.kind, r.id) in silenced), []).append(r.id)
        async with in_transaction():
            won = await OutboxEvent.filter(id=row.id, lease_token=row.lease_token).update(
                state=OutboxState.DONE, processed_at=now, lease_token=None, last_error=""
            )
            if not won:
                return None
            for (kind, silent), ids in groups.items():
                # A muted type is kept for the record, already read: no nagging.
                await fanout_sql.insert_copies(
                    kind, ids, silent, {**common, "read_at": now if silent else None}
                )
            notes = await fanout_sql.copies_of(row.id)
            deliveries = [
                n.id
                for n in notes
                if n.recipient_type == "resident" and ("resident", n.recipient_id) in wechat_to
            ]
            await fanout_sql.insert_deliveries(deliveries, Channel.WECHAT, now)
            await fanout_sql.insert_attempts([n.id for n in notes], Channel.INAPP, "ok", now)
        return [n for n in notes if not n.muted], common, len(deliveries)

    @staticmethod
    def _wechat_recipients(
        recipients: list[Recipient], silenced: set[tuple[str, int]], template: Template | None
    ) -> set[tuple[str, int]]:
        if template is None:
            return set()
        return {
            (r.kind, r.id)
            for r in recipients
            if r.kind == "resident" and r.openid and (r.kind, r.id) not in silenced
        }

    async def _push_realtime(
        self, notes: list[fanout_sql.Copy], common: dict[str, Any], tz: str
    ) -> tuple[list[int], list[NotificationAttempt]]:
        """Each copy pushed to its recipient's open sessions: the ids published, and an
        attempt row for each push that failed (the in-app copy is there either way)."""
        if not notes:
            return [], []
        # Every copy of one event looks the same but for its id: one view, and one bus
        # message per thousand copies (each worker's hub hands each copy its own id).
        view = notification_view(Notification(id=0, **common), tz)
        message = {"type": "notification", "data": view}
        published: list[int] = []
        failed: list[NotificationAttempt] = []
        for start in range(0, len(notes), 1000):
            chunk = notes[start : start + 1000]
            try:
                await realtime.push_each(
                    self.runtime.bus,
                    [(n.recipient_type, n.recipient_id, n.id) for n in chunk],
                    message,
                )
            except Exception as exc:  # the in-app copies are there; clients fetch them
                error = f"{type(exc).__name__}: {exc}"[:300]
                failed += [
                    NotificationAttempt(
                        notification_id=n.id, channel=Channel.REALTIME, outcome="error", error=error
                    )
                    for n in chunk
                ]
                continue
            published += [n.id for n in chunk]
        return published, failed

    async def _outbox_retry(self, row: ClaimedOutbox, exc: Exception) -> None:
        """Hand the row back for a later try. Its fan-out usually failed because the
        database dropped a connection, so handing back is tried a few times on a fresh
        one: a row left claimed waits out its whole lease (30 s) before anyone retries
        it. Still failing: it does wait for the lease, and the batch goes on."""
        p = self.policy
        give_up = row.attempts >= p.outbox_max_attempts
        delay = backoff_s(row.attempts, base=p.outbox_base_s, cap=p.outbox_cap_s)
        for pause in (*RELEASE_RETRY_S, None):
            try:
                await OutboxEvent.filter(id=row.id, lease_token=row.lease_token).update(
                    state=OutboxState.FAILED if give_up else OutboxState.PENDING,
                    next_attempt_at=utcnow() + timedelta(seconds=delay),
                    lease_token=None,
                    last_error=f"{type(exc).__name__}: {exc}"[:300],
                )
                return
            except Exception:
                if pause is None:
                    log.exception("outbox %s: not handed back; retried after its lease", row.id)
                    return
                await asyncio.sleep(pause)

    # -- WeChat deliveries ----------------------------------------------------------------
    async def process_deliveries(self) -> int:
        claimed_at = utcnow()
        rows = await fanout_sql.claim_deliveries(
            limit=self.batch_size,
            lease_s=self.lease_s,
            now=claimed_at,
            expired=self._take_expired("deliveries"),
        )
        if not rows:
            return 0
        # No send starts late in the lease: one still in flight when the lease runs out
        # would be sent again by the worker that takes the row over.
        send_by = claimed_at + timedelta(
            seconds=self.lease_s - min(self.lease_s / 2, WECHAT_TIMEOUT_S + 5)
        )
        try:
            facts = await self._facts(rows)
        except Exception:
            log.exception("reading %d deliveries failed; one by one", len(rows))
            await asyncio.gather(*(self._deliver_guarded(d, send_by) for d in rows))
            return len(rows)
        # What the batch reads is read once for all of it (three queries), WeChat is called
        # concurrently, and every outcome is written in one transaction.
        outcomes = await self._send_all(rows, facts, send_by)
        try:
            async with in_transaction():
                await self._record_batch(outcomes)
        except Exception:
            log.exception("recording %d delivery outcomes failed; one by one", len(rows))
            for outcome in outcomes:
                try:
                    async with in_transaction():
                        await self._record_batch([outcome])
                except Exception:
                    log.exception("recording delivery %s failed", outcome.delivery.id)
        return len(rows)

    async def _facts(self, rows: list[Claimed]) -> _Facts:
        notes = {
            n["id"]: _Note(**n)
            for n in await fanout_sql.rows_by_id(
                Notification,
                [
                    "id",
                    "outbox_id",
                    "recipient_type",
                    "recipient_id",
                    "event_type",
                    "data",
                    "created_at",
                ],
                sorted({d.notification_id for d in rows}),
            )
        }
        resident_ids = sorted(
            {n.recipient_id for n in notes.values() if n.recipient_type == "resident"}
        )
        residents = {
            r["id"]: _Resident(**r)
            for r in await fanout_sql.rows_by_id(
                Resident, ["id", "openid", "language"], resident_ids
            )
        }
        template_ids = {t.template_id for t in self.templates.values()}
        subs = {
            (s["resident_id"], s["template_id"]): _Subscription(**s)
            for s in await fanout_sql.rows_by_id(
                WeChatSubscription,
                ["id", "resident_id", "template_id", "quota", "refused"],
                resident_ids,
                key="resident_id",
            )
            if s["template_id"] in template_ids
        }
        return _Facts(notes, residents, subs)

    async def _send_all(
        self, rows: list[Claimed], facts: _Facts, send_by: datetime
    ) -> list[_Outcome]:
        """Every delivery of the batch sent by `concurrency` lanes (a task per lane, not
        per delivery: creating hundreds of tasks a batch cost more than the sends)."""
        outcomes: list[_Outcome | None] = [None] * len(rows)
        queue = iter(enumerate(rows))

        async def lane() -> None:
            for i, d in queue:
                outcomes[i] = await self._send_guarded(d, facts, send_by)

        await asyncio.gather(*(lane() for _ in range(min(self.concurrency, len(rows)))))
        return [o for o in outcomes if o is not None]

    async def _send_guarded(self, d: Claimed, facts: _Facts, send_by: datetime) -> _Outcome:
        async with self._sem:
            if utcnow() > send_by:
                return _Outcome(d, "deferred", error="lease running out", retry=True)
            try:
                return await self._send(d, facts)
            except Exception as exc:
                log.exception("delivery %s failed", d.id)
                return _Outcome(d, "error", error=f"{type(exc).__name__}: {exc}", retry=True)

    async def _send(self, d: Claimed, facts: _Facts) -> _Outcome:
        """What happened to one delivery (no database write: `_record_batch` does those)."""
        note = facts.notes.get(d.notification_id)
        if note is None:
            return _Outcome(d, "skipped", error="notification gone", state=DeliveryState.FAILED)
        ntype = get_type(note.event_type)
        template = self.templates.get(note.event_type)
        resident = facts.residents.get(note.recipient_id)
        if note.created_at + timedelta(seconds=ntype.wechat_ttl_s) < utcnow():
            return _Outcome(
                d,
                "expired",
                error="too late to be useful",
                state=DeliveryState.EXPIRED,
                final="expired",
            )
        if template is None or resident is None or not resident.openid:
            return _Outcome(
                d,
                "skipped",
                error="no template or no openid",
                state=DeliveryState.FAILED,
                final="not_addressable",
            )
        sub = facts.subs.get((resident.id, template.template_id))
        if sub is None or sub.refused or sub.quota <= 0:
            # Our count says WeChat would answer 43101: do not spend a call on it.
            return _Outcome(
                d,
                "no_subscription",
                error="no one-time subscription left",
                state=DeliveryState.UNDELIVERABLE,
                final="no_subscription",
            )
        result = await self.wechat.send_subscribe_message(
            resident.openid,
            template.template_id,
            facts.data_for(note, template),
            template.page,
            lang="en_US" if resident.language == "en" else "zh_CN",
        )
        return _Outcome(d, result.outcome.value, result=result, sub=sub)

    async def _record_batch(self, outcomes: list[_Outcome]) -> None:
        """Every outcome of a batch: the attempts, the quotas and the deliveries' states."""
        now = utcnow()
        # Attempts grouped by what they say: one statement per group (mostly one: "ok").
        said: dict[tuple[str, str, int | None, str], list[tuple[int, int]]] = {}
        for o in outcomes:
            code = (o.result.errcode if o.result else 0) or None
            error = (o.error or (o.result.errmsg if o.result else ""))[:300]
            what = (o.delivery.channel, o.outcome, code, error)
            said.setdefault(what, []).append((o.delivery.notification_id, o.delivery.id))
        for (channel, outcome, code, error), pairs in said.items():
            await fanout_sql.insert_outcomes(channel, outcome, code, error, pairs, now)
        finished: dict[tuple[DeliveryState, str, str | None], list[int]] = {}
        used: dict[int, int] = {}
        for o in outcomes:
            d, result = o.delivery, o.result
            if o.retry:
                await self._retry(d, None, o.error)
            elif result is None:
                assert o.state is not None
                finished.setdefault((o.state, o.final or o.error, d.lease_token), []).append(d.id)
            elif result.outcome is SendOutcome.OK:
                assert o.sub is not None
                used[o.sub.id] = used.get(o.sub.id, 0) + 1
                finished.setdefault((DeliveryState.SENT, "", d.lease_token), []).append(d.id)
            elif result.outcome is SendOutcome.REFUSED_OR_NO_QUOTA:
                # WeChat knows better than our count: none left until the user taps again.
                assert o.sub is not None
                await WeChatSubscription.filter(id=o.sub.id).update(quota=0)
                key = (DeliveryState.UNDELIVERABLE, f"{result.errcode}", d.lease_token)
                finished.setdefault(key, []).append(d.id)
            elif result.outcome is SendOutcome.INVALID:
                key = (DeliveryState.FAILED, f"{result.errcode}: {result.errmsg}", d.lease_token)
                finished.setdefault(key, []).append(d.id)
            else:  # RATE_LIMITED or UNAVAILABLE (the client already refreshed a stale token)
                await self._retry(d, result.retry_after_s, f"{result.errcode}: {result.errmsg}")
        # One message used one of the subscription's taps (a subscription with several
        # messages in this batch is counted down once per message).
        await fanout_sql.use_quota(sorted(sid for sid, n in used.items() if n == 1))
        for sid, n in used.items():
            for _ in range(n if n > 1 else 0):
                await WeChatSubscription.filter(id=sid, quota__gt=0).update(quota=F("quota") - 1)
        for (state, error, token), ids in finished.items():
            await fanout_sql.finish_deliveries(ids, token, state, error, now)

    async def _deliver_guarded(self, delivery: Claimed, send_by: datetime) -> None:
        async with self._sem:
            try:
                if utcnow() > send_by:
                    raise TimeoutError("lease running out")
                await self._deliver(delivery)
            except Exception as exc:
                log.exception("delivery %s failed", delivery.id)
                async with in_transaction():
                    await self._attempt(delivery, "error", 0, f"{type(exc).__name__}: {exc}")
                    await self._retry(delivery, None, str(exc))

    async def _deliver(self, d: Claimed) -> None:
        """One delivery on its own (when its batch could not be read together)."""
        outcome = await self._send(d, await self._facts([d]))
        async with in_transaction():
            await self._record_batch([outcome])

    async def _attempt(self, d: Claimed, outcome: str, code: int, error: str) -> None:
        await NotificationAttempt.create(
            notification_id=d.notification_id,
            delivery_id=d.id,
            channel=d.channel,
            outcome=outcome,
            error_code=code or None,
            error=error[:300],
        )

    async def _finish(self, d: Claimed, state: DeliveryState, error: str) -> None:
        await NotificationDelivery.filter(id=d.id, lease_token=d.lease_token).update(
            state=state, finished_at=utcnow(), lease_token=None, last_error=error[:300]
        )

    async def _retry(self, d: Claimed, retry_after_s: int | None, error: str) -> None:
        p = self.policy
        if d.attempts >= p.wechat_max_attempts:
            await self._finish(d, DeliveryState.FAILED, f"retries exhausted: {error}")
            return
        delay = backoff_s(d.attempts, base=p.wechat_base_s, cap=p.wechat_cap_s)
        if retry_after_s:
            delay = max(delay, retry_after_s + backoff_s(1, base=p.wechat_base_s, cap=60))
        await NotificationDelivery.filter(id=d.id, lease_token=d.lease_token).update(
            state=DeliveryState.PENDING,
            next_attempt_at=utcnow() + timedelta(seconds=delay),
            lease_token=None,
            last_error=error[:300],
        )


CHUNK = 5000  # ids per IN list: both databases cap a statement's parameters near 32,000


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


@dataclass(slots=True)
class _Note:
    id: int
    outbox_id: int
    recipient_type: str
    recipient_id: int
    event_type: str
    data: dict[str, Any]
    created_at: datetime


@dataclass(slots=True)
class _Resident:
    id: int
    openid: str | None
    language: str | None


@dataclass(slots=True)
class _Subscription:
    id: int
    resident_id: int
    template_id: str
    quota: int
    refused: bool


@dataclass
class _Facts:
    """What a batch of deliveries reads, read once for the batch (plain values: a batch
    is hundreds of rows, and ORM objects cost more than the reads)."""

    notes: dict[int, _Note]
    residents: dict[int, _Resident]
    subs: dict[tuple[int, str], _Subscription]
    built: dict[tuple[int, str], dict[str, str]] = field(default_factory=dict)

    def data_for(self, note: _Note, template: Template) -> dict[str, str]:
        """The template's data, built once per event: its copies all carry the same."""
        key = (note.outbox_id, template.template_id)
        data = self.built.get(key)
        if data is None:
            data = self.built[key] = build_data(template, note.data)
        return data


@dataclass
class _Outcome:
    """One delivery's try, to be written with the rest of its batch."""

    delivery: Claimed
    outcome: str
    result: SendResult | None = None
    sub: _Subscription | None = None
    error: str = ""
    state: DeliveryState | None = None  # final without a WeChat answer
    final: str = ""  # its last_error
    retry: bool = False


DISPATCHER: Key[Dispatcher] = Key("dispatcher")
