"""The police link as a process role (`anxin police-link`): for every active agreement,
register with the platform, keep the registration alive, subscribe to disposition
notifications, queue what the agreement allows and send it, rate-limited, with retries.

A platform outage is a link state, not an upload failure: the queued rows wait, the link
re-registers after a random back-off, and the same rows (same object ids) go when it
answers again. Only an object the platform itself refuses counts attempts towards
`failed`. A withdrawn agreement is checked before every batch: its link unregisters and
nothing more leaves.

Several police-link processes may run (with Redis): each agreement is served by the one
holding its lease (`LEASE_S`, renewed every round), so two never send the same queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from anxin.clock import utcnow
from anxin.runtime import Key, Runtime
from domain.access.snapshots import snapshot_store
from domain.police import agreements, uploads
from domain.police.coding import viid_time
from models import Community, PoliceAgreement, PoliceLinkState
from police_link import viid
from police_link.client import ViidClient, ViidError, ViidUnauthorized, ViidUnavailable
from police_link.objects import Built, ObjectBuilder

log = logging.getLogger(__name__)

BATCH = 50  # objects per POST
ROUND = 400  # objects taken from the queue per round
PARALLEL = 4  # POSTs in flight at once per platform
LEASE_S = 30  # an agreement's link moves to another process this long after its holder died


class TokenBucket:
    """`rate` objects per second, bursts up to one second's worth."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        # The clock and the sleep are parameters so a test can pace without patching the
        # process-wide time.monotonic / asyncio.sleep (the event loop runs on those).
        self.rate = max(rate, 1.0)
        self.tokens = self.rate
        self._clock = clock
        self._sleep = sleep
        self.at = clock()

    async def take(self, n: int) -> None:
        while True:
            now = self._clock()
            self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= n or (n > self.rate and self.tokens >= self.rate):
                self.tokens -= n
                return
            await self._sleep((min(n, self.rate) - self.tokens) / self.rate)


@dataclass
class Link:
    agreement: PoliceAgreement
    client: ViidClient
    bucket: TokenBucket


class PoliceLink:
    def __init__(
        self,
        runtime: Runtime,
        *,
        transport_for: Callable[[str], httpx.AsyncBaseTransport | None] | None = None,
        tick_s: float = 1.0,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.keyring = runtime.keyring
        self.builder = ObjectBuilder(snapshot_store(self.settings))
        self._transport_for = transport_for or (lambda url: None)
        self.tick_s = tick_s
        self.links: dict[int, Link] = {}
        self.instance = secrets.token_hex(8)
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # -- process lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._loop(), name="police-link")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for agreement_id in list(self.links):
            # A stopping process unregisters but keeps its subscription: the API process
            # still receives alerts while the link is down for maintenance.
            await self._close(agreement_id, withdrawn=False)
            key = f"police-link:lease:{agreement_id}"
            if await self.runtime.kv.get(key) == self.instance:
                await self.runtime.kv.delete(key)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                busy = await self.run_once()
            except Exception:
                log.exception("police link round failed")
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.tick_s)

    # -- one round ---------------------------------------------------------------------
    async def run_once(self) -> bool:
        """One round over every active agreement; True when something was sent."""
        active = {a.id: a for a in await agreements.active_agreements()}
        for agreement_id in [i for i in self.links if i not in active]:
            await self._close(agreement_id, withdrawn=True)
        busy = False
        for agreement in active.values():
            # One community's broken link (bad stored credentials, a bug) must not stop
            # the others: log it and go on.
            try:
                busy |= await self.step(agreement)
            except Exception:
                log.exception("police link for agreement %s failed this round", agreement.id)
        return busy

    def _link(self, agreement: PoliceAgreement) -> Link:
        link = self.links.get(agreement.id)
        if link is None:
            client = ViidClient(
                agreement.base_url,
                agreement.system_id,
                agreement.username,
                agreements.password(agreement, self.keyring),
                transport=self._transport_for(agreement.base_url),
            )
            link = Link(agreement, client, TokenBucket(agreement.rate_limit_per_s))
            self.links[agreement.id] = link
        return link

    async def _close(self, agreement_id: int, *, withdrawn: bool) -> None:
        """Unregister (and, for a withdrawn agreement, cancel the subscription)."""
        link = self.links.pop(agreement_id, None)
        if link is None:
            return
        state = await PoliceLinkState.get_or_none(agreement_id=agreement_id)
        if state is not None and state.registered:
            with contextlib.suppress(ViidError, ViidUnauthorized, ViidUnavailable):
                if withdrawn and state.subscribe_id:
                    await link.client.unsubscribe(state.subscribe_id)
                await link.client.unregister()
            state.registered = False
            if withdrawn:
                state.subscribe_id = ""
            await state.save(update_fields=["registered", "subscribe_id"])
        await link.client.aclose()

    async def _lease(self, agreement_id: int) -> bool:
        """Hold (or renew) this agreement's lease; False while another process holds it."""
        kv, key = self.runtime.kv, f"police-link:lease:{agreement_id}"
        if await kv.set(key, self.instance, LEASE_S, only_new=True):
            return True
        if await kv.get(key) != self.instance:
            return False
        await kv.set(key, self.instance, LEASE_S)
        return True

    async def step(self, agreement: PoliceAgreement) -> bool:
        if not await self._lease(agreement.id):
            return False
        link = self._link(agreement)
        state = await uploads.link_state(agreement)
        if not state.registered and not await self._register(link, state):
            return False
        if not await self._keepalive(link, state):
            return False
        await uploads.collect(agreement)
        return await self._send(link, state)

    async def _down(self, state: PoliceLinkState, error: str) -> None:
        """The platform is unreachable or forgot us: register again after a random
        back-off (exponential, capped), so many communities do not return at once."""
        state.registered = False
        state.register_failures += 1
        state.last_error = error[:200]
        cap = float(self.settings.police_register_backoff_max_s)
        delay = uploads.backoff_s(state.register_failures, cap=cap)
        state.next_register_at = utcnow() + timedelta(seconds=delay)
        await state.save(
            update_fields=["registered", "register_failures", "last_error", "next_register_at"]
        )
        log.warning("police link %s down (%s); retry in %.0f s", state.agreement_id, error, delay)

    async def _register(self, link: Link, state: PoliceLinkState) -> bool:
        if state.next_register_at > utcnow():
            return False
        try:
            await link.client.register()
        except (ViidError, ViidUnauthorized, ViidUnavailable) as exc:
            await self._down(state, f"register: {type(exc).__name__}: {exc}")
            return False
        now = utcnow()
        state.registered, state.registered_at, state.last_keepalive_at = True, now, now
        state.register_failures, state.last_error = 0, ""
        await state.save(
            update_fields=[
                "registered",
                "registered_at",
                "last_keepalive_at",
                "register_failures",
                "last_error",
            ]
        )
        log.info("police link %s registered", state.agreement_id)
        await self._subscribe(link, state)
        return True

    async def _subscribe(self, link: Link, state: PoliceLinkState) -> None:
        a = link.agreement
        if not a.notify_url:
            return
        community_tz = (await Community.get(id=a.community_id)).timezone
        subscribe_id = f"{a.system_id}{a.id:012d}"[:32]
        now = utcnow()
        subscription: dict[str, Any] = {
            "SubscribeID": subscribe_id,
            "Title": "布控告警",
            "SubscribeDetail": self.settings.police_subscribe_detail,
            "ResourceURI": a.community_code,
            "ApplicantName": a.approved_by,
            "ApplicantOrg": a.platform_name,
            "BeginTime": viid_time(now, community_tz),
            "EndTime": viid_time(now + timedelta(days=a.retention_days), community_tz),
            "ReceiveAddr": a.notify_url,
            "OperateType": 0,
            "Reason": a.document_no,
        }
        try:
            await link.client.subscribe(subscription)
        except (ViidError, ViidUnauthorized, ViidUnavailable) as exc:
            state.last_error = f"subscribe: {exc}"[:200]
            await state.save(update_fields=["last_error"])
            return
        state.subscribe_id, state.subscribed_at = subscribe_id, now
        await state.save(update_fields=["subscribe_id", "subscribed_at"])

    async def _keepalive(self, link: Link, state: PoliceLinkState) -> bool:
        now = utcnow()
        last = state.last_keepalive_at
        if last is not None and (now - last).total_seconds() < self.settings.police_keepalive_s:
            return True
        try:
            await link.client.keepalive()
        except (ViidError, ViidUnauthorized, ViidUnavailable) as exc:
            await self._down(state, f"keepalive: {type(exc).__name__}: {exc}")
            return False
        state.last_keepalive_at = now
        await state.save(update_fields=["last_keepalive_at"])
        return True

    async def _send(self, link: Link, state: PoliceLinkState) -> bool:
        agreement = link.agreement
        sent_any = False
        while True:
            batch = await uploads.due(agreement, ROUND)
            if not batch:
                return sent_any
            built = await self.builder.build(agreement, batch)
            for wave in _waves(built):
                for i in range(0, len(wave), PARALLEL):
                    # Withdrawal stops the flow at once: checked before every group of POSTs.
                    if not await agreements.is_active(agreement.id):
                        return sent_any
                    results = await asyncio.gather(
                        *(self._post(link, chunk) for chunk in wave[i : i + PARALLEL])
                    )
                    sent_any = sent_any or any(r is True for r in results)
                    errors = [r for r in results if isinstance(r, str)]
                    if errors:
                        await self._down(state, errors[0])
                        return sent_any
            built_ids = {b.upload.id for b in built}
            for u in batch:
                if u.id not in built_ids:  # its source row is gone: nothing left to send
                    await uploads.mark_refused(u, viid.OTHER_ERROR, "source row gone")
            if len(batch) < ROUND:
                return sent_any

    async def _post(self, link: Link, chunk: list[Built]) -> bool | str:
        """POST one batch and record each object's answer: True if any was accepted,
        an error text if the platform could not be used (the link goes down)."""
        await link.bucket.take(len(chunk))
        collection = chunk[0].collection
        try:
            statuses = await link.client.post_objects(collection, [b.obj for b in chunk])
        except (ViidUnauthorized, ViidUnavailable) as exc:
            return f"{collection.path}: {type(exc).__name__}: {exc}"
        ok: list[int] = []
        names: dict[int, list[str]] = {}
        for b, st in zip(chunk, statuses, strict=True):
            if st.code == viid.OK:
                ok.append(b.upload.id)
                names[b.upload.id] = sorted(k for k in b.obj if k != "SubImageList") + (
                    ["SubImageList"] if "SubImageList" in b.obj else []
                )
            else:
                await uploads.mark_refused(b.upload, st.code, st.text)
        await uploads.mark_sent(link.agreement.id, ok, names)
        return bool(ok)


def _waves(built: list[Built]) -> list[list[list[Built]]]:
    """Batches of one collection each, at most BATCH objects, grouped in waves that are
    sent one after the other: a wave never holds one object id twice (a registry row
    approved then ended is two versions of one PersonID, and the later must land last),
    and the batches within a wave may go in parallel."""
    waves: list[list[list[Built]]] = []
    rest = built
    while rest:
        open_: dict[str, list[Built]] = {}
        seen: set[tuple[str, str]] = set()
        wave: list[list[Built]] = []
        deferred: list[Built] = []
        for b in rest:
            key = (b.collection.path, b.upload.object_id)
            if key in seen:
                deferred.append(b)
                continue
            seen.add(key)
            cur = open_.setdefault(b.collection.path, [])
            cur.append(b)
            if len(cur) >= BATCH:
                wave.append(cur)
                open_[b.collection.path] = []
        wave.extend(c for c in open_.values() if c)
        waves.append(wave)
        rest = deferred
    return waves


POLICE_LINK: Key[PoliceLink] = Key("police_link")


def install(runtime: Runtime) -> None:
    """The GA/T 1400 link (uploads, registration, keepalive): run it in one process."""
    runtime.provide(POLICE_LINK, PoliceLink(runtime))
