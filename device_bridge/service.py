"""The device bridge: events in, decisions made, signed commands out, everything logged.

One instance per process. It owns the MQTT transport (the embedded broker when no
`MQTT_URL` is set), the door-command service every process needs, and, where
`run_bridge` is on, the consumer that turns device events into decisions. It is the
domain's device port (`domain.ports.DevicePort`: `open_and_log`, `send`). The handlers
per event type (`register_event`, in face_handlers.py, pass_handlers.py, handlers.py)
decode an event and call the domain; this module itself holds no rule about faces or
passes, and a rule's error (`anxin.errors.DomainError`) becomes the access row's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from tortoise.transactions import in_transaction

from anxin.bus import run_subscriber
from anxin.channels import ACCESS_EVENT, DEVICE_CHANGED, HTTP_PUSH_ACK, HTTP_PUSH_COMMAND
from anxin.clock import utcnow
from anxin.errors import DomainError, Unavailable, UpstreamFailed, UpstreamTimeout
from anxin.runtime import Key, Runtime
from device_bridge import doors as door_rows
from device_bridge import event_claims
from device_bridge.broker import BrokerAccess, EmbeddedBroker
from device_bridge.doors import DEVICE_UID_MAX, DoorService, PreparedCommand
from device_bridge.dynsec import DynsecAdmin
from device_bridge.http_push import HttpPushTransport
from device_bridge.mqtt import MqttServerTransport, parse_mqtt_url
from device_bridge.protocol import (
    MAX_LIBRARY_CHANGES,
    ProtocolError,
    asks_to_open,
    embedding_to_b64,
    new_id,
    now_ms,
    parse_event,
)
from device_bridge.rejections import Rejections
from device_bridge.transport import CommandOutcome, InboundEvent, InboundState, ServerTransport
from domain.access.log import Notice, record_access
from domain.access.policy import Decision
from domain.devices.service import secret_ad
from domain.ports import DEVICES, DevicePort
from models import (
    AccessEvent,
    AccessMethod,
    AccessResult,
    CommandStatus,
    Device,
    DeviceCommand,
    DeviceEventClaim,
    DeviceStatus,
)
from models.bulk import connection, insert_together, select

log = logging.getLogger(__name__)

# Errors that say a service was unreachable or failed: the door request *failed*; every
# other domain error is a rule saying no, so the request was *denied*.
_FAILURE_KINDS = (Unavailable, UpstreamFailed, UpstreamTimeout)


def refusal_of(err: DomainError) -> tuple[AccessResult, dict[str, Any]]:
    """How a domain error raised on the device path is written to the access log: its code
    is the row's reason; its kind decides denied or failed."""
    result = AccessResult.FAILED if isinstance(err, _FAILURE_KINDS) else AccessResult.DENIED
    details: dict[str, Any] = {"error": err.kind, "message_zh": err.zh, "message_en": err.en}
    if isinstance(err.details, dict):
        details.update({k: v for k, v in err.details.items() if k not in details})
    return result, details


# Device rows the event path reads, kept per uid. Every change that matters to a decision
# (status, methods, credentials) publishes "device.changed", which drops the entry in
# every process; the expiry bounds what a change made without that message (a manual
# database edit) can take to show.
DEVICE_CACHE_S = 10.0


# The access method under which a door request is written when it is refused unheard.
REQUEST_METHODS = {
    "face_capture": AccessMethod.FACE,
    "card_swipe": AccessMethod.CARD,
    "code_entry": AccessMethod.CODE,
    "plate_read": AccessMethod.PLATE,
    "intercom_call": AccessMethod.INTERCOM,
    "qr_scan": AccessMethod.QR,
}
RESUME_EVERY_S = 5.0
T = TypeVar("T")
# An event with no row of its own whose handler failed: tried again over ~10 s, well inside
# the claim's lease (settings.event_lease_s, 30 s by default).
HANDLER_RETRY_S = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 3.0)
# How long an event waits for the database to take its claim (a restart, a fail-over):
# about 30 s in all, then it is left unconfirmed to the broker.
CLAIM_RETRY_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0)


@dataclass
class EventContext:
    bridge: DeviceBridge
    device: Device
    inbound: InboundEvent
    claim: DeviceEventClaim | None = None

    @property
    def event(self) -> Any:
        return self.inbound.event

    @property
    def event_key(self) -> str:
        return f"{self.device.device_uid}:{self.event.id}"

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(self.event.ts / 1000, UTC)


@dataclass
class AccessAttempt:
    """What a handler returns for an event that asks for a door to open."""

    method: AccessMethod
    decision: Decision
    plate: str = ""
    snapshot_ref: str = ""
    requested_by_id: int | None = None
    person_id: str | None = None
    notice: Notice | None = None  # queued with the row when the door opened


EventHandler = Callable[[EventContext], Awaitable[AccessAttempt | None]]
StateHook = Callable[["DeviceBridge", Device, InboundState], Awaitable[None]]


def _acked_result(decision: Decision, outcome: CommandOutcome) -> AccessResult:
    """GRANTED once the door acked the open; FAILED otherwise, with the ack's status
    kept in the decision's details for the row."""
    if outcome.ok:
        return AccessResult.GRANTED
    decision.details["ack"] = outcome.status
    return AccessResult.FAILED


class DeviceBridge:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.keyring = runtime.keyring
        self.broker: EmbeddedBroker | None = None
        self.transport: MqttServerTransport | None = None
        # Terminals that can only poll over HTTP (ZKTeco PUSH shape); its routes are
        # mounted on the API app. A terminal's poll reaches any API worker: commands and
        # acks go to every worker over the bus, and the shared KV hands each command out once.
        self.http_push = HttpPushTransport(
            self._key_for, claim_nonce=self._claim_nonce, publish=self._publish
        )
        self.doors: DoorService | None = None
        self.handlers: dict[str, EventHandler] = {}
        self.state_hooks: list[StateHook] = []
        self.stats: Counter[str] = Counter()
        self.reject = Rejections(self.stats, log)
        self._tasks: list[asyncio.Task[Any]] = []
        self._inflight: set[asyncio.Task[Any]] = set()
        self._devices: dict[str, tuple[Device, float]] = {}
        self.dynsec: DynsecAdmin | None = None
        self.district_dynsec: list[DynsecAdmin] = []  # bridged district brokers' logins
        # device uid -> credential version it last logged in to the embedded broker with
        self._broker_logins: dict[str, int] = {}

    @property
    def lease_s(self) -> float:
        """How long a claim is held: past a handler and the command it may send."""
        return float(max(self.settings.event_lease_s, self.settings.command_ttl_s + 5))

    # ------------------------------------------------------------ wiring

    def register_event(self, event_type: str, handler: EventHandler) -> None:
        self.handlers[event_type] = handler

    def on_state(self, hook: StateHook) -> None:
        self.state_hooks.append(hook)

    @property
    def mqtt_url(self) -> str:
        """Where devices connect (no credentials in it)."""
        if self.settings.mqtt_url:
            p = parse_mqtt_url(self.settings.mqtt_url)
            return f"mqtt://{p.host}:{p.port}"
        assert self.broker is not None
        return self.broker.url

    # ------------------------------------------------------------ DevicePort

    async def send(
        self, device: Device, op: str, args: dict[str, Any], *, reason: str
    ) -> CommandOutcome:
        """A signed, expiring command other than open; refused when the bridge is not up."""
        if self.doors is None:
            return CommandOutcome("", device.device_uid, "refused", "bridge_not_started")
        return await self.doors.send(device, op, args, reason=reason)

    def encode_embedding(self, vector: Any) -> str:
        return embedding_to_b64(vector)

    @property
    def max_library_changes(self) -> int:
        return MAX_LIBRARY_CHANGES

    def ready(self) -> bool:
        return self.transport is not None and self.transport.conn.connected.is_set()

    async def start(self) -> None:
        server_url = self.settings.mqtt_url
        if not server_url:
            access = BrokerAccess(
                root=self.settings.topic_root,
                server_password=secrets.token_urlsafe(24),  # this process's own login, in memory
                device_password=self._broker_password,
            )
            self.broker = EmbeddedBroker(port=self.settings.embedded_broker_port, access=access)
            await self.broker.start()
            server_url = self.broker.server_url
        elif self.settings.mqtt_dynsec:
            self.dynsec = DynsecAdmin(server_url, self.settings.topic_root)
            await self.dynsec.start()
            for url in filter(None, map(str.strip, self.settings.mqtt_district_urls.split(","))):
                admin = DynsecAdmin(url, self.settings.topic_root)
                await admin.start()
                self.district_dynsec.append(admin)
            if self.settings.run_bridge:
                await self.reconcile_broker_logins()
        shared = self.settings.mqtt_shared_group if self.settings.mqtt_url else None
        client_id = self.settings.mqtt_client_id or None
        self.transport = MqttServerTransport(
            server_url,
            root=self.settings.topic_root,
            shared_group=shared,
            key_for=self._key_for,
            events=self.settings.run_bridge,
            client_id=client_id,
            persistent=client_id is not None,
            confirm_when_settled=self.settings.run_bridge,
        )
        # HTTP-push terminals reach whichever process serves HTTP (an API worker beside
        # separate bridges too): their uploads are handled where they arrive and answered
        # only once claimed, never accepted and then left unhandled.
        self.http_push.confirm_when_settled = True
        self.doors = DoorService(
            {"mqtt": self.transport, "http_push": self.http_push},
            self.keyring,
            self.settings.command_ttl_s,
        )
        await self.transport.start()
        await self.http_push.start()
        self._tasks = [
            asyncio.create_task(
                run_subscriber(self.runtime.bus, DEVICE_CHANGED, self._device_changed)
            ),
            asyncio.create_task(
                run_subscriber(self.runtime.bus, HTTP_PUSH_COMMAND, self.http_push.share_command)
            ),
            asyncio.create_task(
                run_subscriber(self.runtime.bus, HTTP_PUSH_ACK, self.http_push.share_ack)
            ),
        ]
        consumed: list[ServerTransport] = [self.http_push]
        if self.settings.run_bridge:
            consumed.append(self.transport)
        for transport in consumed:
            self._tasks += [
                asyncio.create_task(self._consume_events(transport)),
                asyncio.create_task(self._consume_states(transport)),
            ]
        if self.settings.run_bridge:
            self._tasks.append(asyncio.create_task(self._resume_loop()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in list(self._inflight):
            task.cancel()
        for task in [*self._tasks, *self._inflight]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.http_push.stop()
        if self.transport is not None:
            await self.transport.stop()
        for admin in self._dynsec_admins():
            await admin.stop()
        if self.broker is not None:
            await self.broker.stop()

    async def _device_changed(self, _: str, message: dict[str, Any]) -> None:
        device_uid = str(message.get("device_uid", ""))
        self._forget_device(device_uid)
        await self._check_embedded_login(device_uid)
        self._drop_if_revoked(device_uid, await Device.get_or_none(device_uid=device_uid))

    def _drop_if_revoked(self, device_uid: str, device: Device | None) -> None:
        """A revoked device's commands waiting here end now (refused, device_revoked), its
        queued HTTP-push commands too: it can never sign an ack again."""
        if device is None or device.status == DeviceStatus.REVOKED:
            for transport in (self.transport, self.http_push):
                if transport is not None:
                    transport.forget_device(device_uid)

    def _forget_device(self, device_uid: str) -> None:
        self._devices.pop(device_uid, None)
        if self.doors is not None:
            self.doors.forget_key(device_uid)

    # ------------------------------------------------------------ broker logins

    async def credentials_changed(self, device_uid: str) -> None:
        """A device was provisioned, rotated, disabled, enabled or revoked: the broker
        follows before the caller answers (dynamic security on Mosquitto; on the embedded
        broker the old session is cut and the next login is checked against the row)."""
        self._forget_device(device_uid)
        await self._check_embedded_login(device_uid)
        device = await Device.get_or_none(device_uid=device_uid)
        self._drop_if_revoked(device_uid, device)
        if self.dynsec is not None:
            await self._put_dynsec(device_uid, device)

    def _dynsec_admins(self) -> list[DynsecAdmin]:
        """The brokers where devices log in: MQTT_URL's and the bridged districts'."""
        return [*([self.dynsec] if self.dynsec is not None else []), *self.district_dynsec]

    async def _put_dynsec(self, device_uid: str, device: Device | None) -> None:
        for admin in self._dynsec_admins():
            if device is None or device.status == DeviceStatus.REVOKED or not device.secret_enc:
                await admin.remove_device(device_uid)
                continue
            secret = self.keyring.decrypt(device.secret_enc, secret_ad(device)).decode()
            await admin.put_device(device_uid, secret, enabled=device.status == DeviceStatus.ACTIVE)

    async def reconcile_broker_logins(self) -> int:
        """Bring the brokers' device logins in line with the database (at bridge start)."""
        assert self.dynsec is not None
        known = {a: set(await a.list_clients()) for a in self._dynsec_admins()}
        count = 0
        async for device in Device.all():
            await self._put_dynsec(device.device_uid, device)
            for names in known.values():
                names.discard(device.device_uid)
            count += 1
        for admin, names in known.items():
            for stray in names - {admin.server_user}:
                if stray.startswith("ax-"):  # a device login the database no longer has
                    await admin.remove_device(stray)
        return count

    async def _broker_password(self, device_uid: str) -> str | None:
        """The embedded broker's check: the current secret of an active device."""
        device = await Device.get_or_none(device_uid=device_uid)
        if device is None or device.status != DeviceStatus.ACTIVE or not device.secret_enc:
            return None
        self._broker_logins[device_uid] = device.credential_version
        return self.keyring.decrypt(device.secret_enc, secret_ad(device)).decode()

    async def _check_embedded_login(self, device_uid: str) -> None:
        logged_in = self._broker_logins.get(device_uid)
        if self.broker is None or logged_in is None:
            return
        device = await Device.get_or_none(device_uid=device_uid)
        if (
            device is None
            or device.status != DeviceStatus.ACTIVE
            or device.credential_version != logged_in
        ):
            self._broker_logins.pop(device_uid, None)
            await self.broker.disconnect_device(device_uid)

    async def _device(self, device_uid: str) -> Device | None:
        """The device row for an event (cached; see DEVICE_CACHE_S). Treat as read-only."""
        if not device_uid or len(device_uid) > DEVICE_UID_MAX:
            return None
        cached = self._devices.get(device_uid)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        device = await Device.get_or_none(device_uid=device_uid)
        if device is None:
            self._devices.pop(device_uid, None)
        else:
            self._devices[device_uid] = (device, time.monotonic() + DEVICE_CACHE_S)
        return device

    async def _publish(self, channel: str, message: dict[str, Any]) -> None:
        await self.runtime.bus.publish(channel, message)  # the bus as started (Redis or not)

    async def _claim_nonce(self, key: str, ttl_s: int) -> bool:
        """An HTTP-push request nonce, first use only (Redis across processes)."""
        return await self.runtime.kv.set(key, "1", ttl_s, only_new=True)

    async def _key_for(self, device_uid: str) -> bytes | None:
        assert self.doors is not None
        return await self.doors.key_for(device_uid)

    # ------------------------------------------------------------ events

    async def _consume_events(self, transport: ServerTransport) -> None:
        async for inbound in transport.events():
            # Each event in its own task: a slow face match must not hold up a card swipe.
            task = asyncio.create_task(self.handle_event(inbound))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def handle_event(self, inbound: InboundEvent) -> str:
        """Process one event; returns what happened (for tests and stats). Never raises."""
        try:
            return await self._handle_event(inbound)
        except Exception:
            log.exception(
                "event %s from %s failed", getattr(inbound.event, "id", "?"), inbound.device_id
            )
            self.stats["event_errors"] += 1
            return "error"

    async def _handle_event(self, inbound: InboundEvent) -> str:
        durable = False
        try:
            device, claim, refusal = await self._claim_event(inbound)
            durable = True
        finally:
            inbound.settled(durable)  # PUBACK / HTTP 200 only once the claim is durable
        if device is None:
            self.reject("unknown_device", inbound.device_id)
            return "unknown_device"
        ctx = EventContext(self, device, inbound)
        if claim is None:
            self.reject(refusal or "duplicate", inbound.device_id, f"event {ctx.event_key}")
            return refusal or "duplicate"
        ctx.claim = claim
        return await self._handle_claimed(ctx, claim)

    async def _claim_event(
        self, inbound: InboundEvent
    ) -> tuple[Device | None, DeviceEventClaim | None, event_claims.Refusal | None]:
        """The device and the event's claim (act only if recorded: the claim row exists
        before anything else happens). A database that is restarting or failing over is
        waited for (CLAIM_RETRY_S): the event stays unconfirmed meanwhile, so the broker
        still holds it if this process dies, and it is not lost if the database returns."""

        async def claim() -> tuple[
            Device | None, DeviceEventClaim | None, event_claims.Refusal | None
        ]:
            device = await self._device(inbound.device_id)
            if device is None or device.status == DeviceStatus.REVOKED:
                return None, None, None  # final: it would be refused again
            key = f"{device.device_uid}:{inbound.event.id}"
            row, refusal = await event_claims.claim(
                key, device.id, inbound.event.type, inbound.raw, self.lease_s
            )
            return device, row, refusal

        return await self._through_outages(
            claim, CLAIM_RETRY_S, "claim_retries", f"event {inbound.event.id}: claim"
        )

    async def _through_outages(
        self,
        call: Callable[[], Awaitable[T]],
        delays: tuple[float, ...],
        stat: str,
        what: str,
        passing: tuple[type[Exception], ...] = (),
    ) -> T:
        """`call()`, tried again after each of `delays` while it fails (a database that is
        restarting, failing over or dropping connections); `passing` errors are final."""
        for delay in (*delays, None):
            try:
                return await call()
            except passing:
                raise
            except Exception as exc:
                if delay is None:
                    raise
                self.stats[stat] += 1
                log.warning(
                    "%s failed (%s: %s); again in %.2fs", what, type(exc).__name__, exc, delay
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _handle_claimed(self, ctx: EventContext, claim: DeviceEventClaim) -> str:
        if claim.attempts > event_claims.MAX_ATTEMPTS:
            outcome = await self._record_failure(ctx, "handler_gave_up")
        elif claim.command_id:
            outcome = await self._finish_interrupted(ctx, claim)
        else:
            try:
                outcome = await self._decide_through_outages(ctx)
            except event_claims.ClaimLost:
                # Held past its lease and taken over: the new holder decides, not this one.
                log.warning("event %s: claim taken over while handling; stopped", ctx.event_key)
                return "claim_lost"
            except DomainError as err:
                # A rule refused by raising: the row carries the error's stable code.
                self.stats["event_refused_by_error"] += 1
                log.info("event %s: refused by %s (%s)", ctx.event_key, err.code, err.kind)
                result, details = refusal_of(err)
                outcome = await self._record_failure(ctx, err.code, result, details)
            except Exception:
                log.exception("event %s: handler failed", ctx.event_key)
                self.stats["event_errors"] += 1
                if ctx.event.type not in REQUEST_METHODS:
                    # Nothing but its effect records this event (an alarm): closing the
                    # claim would lose it. The resume loop takes it again after its lease
                    # (up to MAX_ATTEMPTS times, then it is closed as given up).
                    return "handler_error"
                # A raised handler still leaves its trace: an access row with the reason.
                outcome = await self._record_failure(ctx, "handler_error")
        # If this process dies before here, the lease runs out and the event is resumed.
        await event_claims.finish(claim, outcome)
        return outcome

    async def _decide_through_outages(self, ctx: EventContext) -> str:
        """`_decide`, tried again through a database that is dropping connections or
        failing over (HANDLER_RETRY_S, well inside the claim's lease) when the event has no
        row of its own: a fence alarm whose handler failed once would otherwise be closed
        unrecorded. Their handlers are idempotent per event (an alarm is keyed by it). A
        door request is not retried: its error row is its record, and the person at the
        door has tried again."""
        if ctx.event.type in REQUEST_METHODS:
            return await self._decide(ctx)
        return await self._through_outages(
            lambda: self._decide(ctx),
            HANDLER_RETRY_S,
            "handler_retries",
            f"event {ctx.event_key}: handler",
            (event_claims.ClaimLost, DomainError),
        )

    async def _decide(self, ctx: EventContext) -> str:
        await self._touch(ctx.device)
        event = ctx.event
        if asks_to_open(event):
            too_late = self.refusal_by_time(event)
            if too_late is not None:
                # Old, future-dated or buffered: written with its reason, never opened for.
                self.reject(too_late, ctx.device.device_uid, f"event {ctx.event_key}")
                method = REQUEST_METHODS[event.type]
                return await self.execute(ctx, AccessAttempt(method, Decision.deny(too_late)))
        handler = self.handlers.get(event.type)
        if handler is None:
            self.reject("unhandled", ctx.device.device_uid, event.type)
            return "unhandled"
        attempt = await handler(ctx)
        if attempt is None:
            return "handled"
        return await self.execute(ctx, attempt)

    def refusal_by_time(self, event: Any) -> str | None:
        """Why a door request may not open by its timing (device time vs server clock)."""
        if getattr(event, "buffered", False):
            return "event_buffered"
        age_ms = now_ms() - event.ts
        if age_ms > self.settings.event_max_age_s * 1000:
            return "event_too_old"
        if -age_ms > self.settings.event_max_future_s * 1000:
            return "event_from_future"
        return None

    async def _record_failure(
        self,
        ctx: EventContext,
        reason: str,
        result: AccessResult = AccessResult.FAILED,
        details: dict[str, Any] | None = None,
    ) -> str:
        """The row for an event whose handling failed or was refused by an error (door
        requests; for other events the log line is the trace)."""
        method = REQUEST_METHODS.get(ctx.event.type)
        if method is None:
            return reason
        await self.open_and_log(
            ctx.device,
            method,
            Decision.deny(reason, details=details or {}),
            event_key=ctx.event_key,
            occurred_at=ctx.occurred_at,
            result=result,
        )
        return result.value

    async def _finish_interrupted(self, ctx: EventContext, claim: DeviceEventClaim) -> str:
        """The previous holder sent the open command and died before writing the row: write
        it from the command's outcome, never send a second one."""
        return await self._write_interrupted(
            ctx.device,
            claim,
            ctx.event_key,
            ctx.occurred_at,
            AccessMethod(REQUEST_METHODS.get(ctx.event.type, "staff")),
        )

    async def _write_interrupted(
        self,
        device: Device,
        claim: DeviceEventClaim,
        event_key: str,
        occurred_at: datetime | None,
        method: AccessMethod,
    ) -> str:
        pending = dict(claim.pending or {})
        command = await DeviceCommand.get_or_none(command_id=claim.command_id)
        done = command is not None and command.status == CommandStatus.DONE
        decision = Decision(
            True,
            str(pending.get("reason") or "interrupted"),
            resident_id=pending.get("resident_id"),
            room_id=pending.get("room_id"),
            pass_id=pending.get("pass_id"),
            score=pending.get("score"),
        )
        result = AccessResult.GRANTED if done else AccessResult.FAILED
        await record_access(
            device,
            device.community_id,
            AccessMethod(pending.get("method", method.value)),
            decision,
            result=result,
            event_key=event_key,
            command_id=claim.command_id,
            requested_by_id=pending.get("requested_by_id"),
            plate=str(pending.get("plate", "")),
            snapshot_ref=str(pending.get("snapshot_ref", "")),
            occurred_at=occurred_at,
            notice=Notice.from_dict(pending.get("notice")),
        )
        return result.value

    async def _resume_loop(self) -> None:
        while True:
            await asyncio.sleep(RESUME_EVERY_S)
            try:
                await self.resume_expired()
            except Exception:
                log.exception("resuming unfinished device events failed")

    async def resume_expired(self) -> int:
        """Handle, once, the events whose claim ran out unfinished (their holder died or
        failed past its error row). Every process runs this; a takeover is atomic."""
        resumed = 0
        for row in await event_claims.expired():
            if row.event_type == event_claims.SERVER_OPEN:
                resumed += await self._resume_server_open(row)
                continue
            raw = row.payload or {}
            device_uid = str(raw.get("device_id", ""))
            device = await self._device(device_uid)
            try:
                event = parse_event(raw)
            except ProtocolError:
                event = None
            if device is None or event is None:
                await event_claims.finish(row, "unresumable")
                continue
            claim = await event_claims.take_over(row, self.lease_s)
            if claim is None:
                continue  # another process took it
            inbound = InboundEvent(device_uid, event, raw, True, now_ms())
            ctx = EventContext(self, device, inbound, claim)
            try:
                await self._handle_claimed(ctx, claim)
            except Exception:
                log.exception("resuming event %s failed", row.event_key)
            resumed += 1
        return resumed

    async def _resume_server_open(self, row: DeviceEventClaim) -> int:
        """A server-started open whose process died between the command and its row: the
        row, from the command's outcome (never a second command)."""
        device = await Device.get_or_none(id=row.device_id)
        claim = await event_claims.take_over(row, self.lease_s)
        if claim is None:
            return 0  # another process took it
        if device is None:
            # The door was removed meanwhile: there is nothing to write the row against.
            await event_claims.finish(claim, "unresumable")
            return 1
        payload = claim.payload or {}
        occurred = payload.get("occurred_at")
        try:
            result = await self._write_interrupted(
                device,
                claim,
                payload.get("event_key") or claim.event_key,
                datetime.fromisoformat(occurred) if occurred else None,
                AccessMethod.REMOTE,
            )
            await event_claims.finish(claim, result)
        except Exception:
            log.exception("resuming server open %s failed", claim.event_key)
        return 1

    async def purge_claims(self) -> int:
        return await event_claims.purge(self.settings.event_claim_ttl_s)

    async def execute(self, ctx: EventContext, attempt: AccessAttempt) -> str:
        """Open the door if the decision says so, wait for the ack, write the row."""
        if attempt.decision.granted and asks_to_open(ctx.event):
            # A slow handler (a face search) must not push an opening past the window.
            late = self.refusal_by_time(ctx.event)
            if late is not None:
                attempt.decision = Decision.deny(late, details=attempt.decision.details)
        outcome, _ = await self.open_and_log(
            ctx.device,
            attempt.method,
            attempt.decision,
            event_key=ctx.event_key,
            event_id=ctx.event.id,
            occurred_at=ctx.occurred_at,
            person_id=attempt.person_id,
            requested_by_id=attempt.requested_by_id,
            plate=attempt.plate,
            snapshot_ref=attempt.snapshot_ref,
            claim=ctx.claim,
            notice=attempt.notice,
        )
        if outcome is None:
            return AccessResult.DENIED.value
        return (AccessResult.GRANTED if outcome.ok else AccessResult.FAILED).value

    async def open_and_log(
        self,
        device: Device,
        method: AccessMethod,
        decision: Decision,
        *,
        event_key: str | None = None,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
        person_id: str | None = None,
        requested_by_id: int | None = None,
        plate: str = "",
        snapshot_ref: str = "",
        timeout: float | None = None,  # noqa: ASYNC109 - how long the caller waits for the ack
        opened_by_device: bool = False,
        claim: DeviceEventClaim | None = None,
        result: AccessResult | None = None,
        notice: Notice | None = None,
    ) -> tuple[CommandOutcome | None, AccessEvent | None]:
        """The one way a decision reaches a door and the log: a granted decision sends the
        signed open command and waits for the ack (unless the device already opened by
        itself, offline); every decision is written with its reason and announced.
        Returns the command's outcome (None when nothing was sent) and the row (None when
        `event_key` was already written). With the event's `claim`, the command id and
        the row to write are noted on it before the command goes out."""
        outcome = None
        command: DeviceCommand | None = None
        if decision.granted and not opened_by_device:
            assert self.doors is not None
            command_id = new_id()
            pending = {
                "method": method.value,
                "reason": decision.reason,
                "resident_id": decision.resident_id,
                "room_id": decision.room_id,
                "pass_id": decision.pass_id,
                "score": decision.score,
                "requested_by_id": requested_by_id,
                "plate": plate,
                "snapshot_ref": snapshot_ref,
                "notice": notice.as_dict() if notice else None,
            }
            if claim is None:
                return await self._server_open(
                    device,
                    method,
                    decision,
                    command_id,
                    pending,
                    event_key=event_key,
                    event_id=event_id,
                    occurred_at=occurred_at,
                    person_id=person_id,
                    requested_by_id=requested_by_id,
                    plate=plate,
                    snapshot_ref=snapshot_ref,
                    timeout=timeout,
                    notice=notice,
                )
            prepared = await self.doors.prepare(
                device,
                "open",
                DoorService.open_args(decision.reason, person_id, event_id),
                reason=decision.reason,
                command_id=command_id,
            )
            if isinstance(prepared, PreparedCommand):
                # The note and the command's row in one statement, before the door moves;
                # the outcome is written with the access row (one statement, below).
                command = prepared.row
                await event_claims.note_command(claim, command_id, pending, command)
                outcome = await self.doors.deliver(device, prepared, timeout)
            else:
                await event_claims.note_command(claim, command_id, pending)  # still the holder?
                outcome = prepared  # nothing may be sent to this device
            result = _acked_result(decision, outcome)
        row = await record_access(
            device,
            device.community_id,
            method,
            decision,
            result=result,
            event_key=event_key,
            command_id=outcome.cmd_id if outcome else "",
            requested_by_id=requested_by_id,
            plate=plate,
            snapshot_ref=snapshot_ref,
            occurred_at=occurred_at,
            notice=notice,
            claim=claim,  # finished with the row (one statement) when the row is batched
            command=command,  # its outcome too
        )
        await self._logged(decision, row)
        return outcome, row

    async def _server_open(
        self,
        device: Device,
        method: AccessMethod,
        decision: Decision,
        command_id: str,
        pending: dict[str, Any],
        *,
        event_key: str | None,
        event_id: str | None,
        occurred_at: datetime | None,
        person_id: str | None,
        requested_by_id: int | None,
        plate: str,
        snapshot_ref: str,
        timeout: float | None,  # noqa: ASYNC109
        notice: Notice | None,
    ) -> tuple[CommandOutcome, AccessEvent | None]:
        """An open the server starts (remote, staff, intercom), in three commits, two of
        them waited for (a WAL flush each on PostgreSQL): before the command goes out, its
        claim (keyed by the command, with the row to write) and the command's row, in one
        transaction: the record the door moves after; once the ack is in, the command's
        outcome; then the access row, its notice and the claim's finish, in one
        transaction. If this process dies in between, the resume loop writes the row from
        the command's outcome (never a second command)."""
        assert self.doors is not None
        prepared = await self.doors.prepare(
            device,
            "open",
            DoorService.open_args(decision.reason, person_id, event_id),
            reason=decision.reason,
            command_id=command_id,
        )
        # Keyed by a new command id: nobody else has it. With the command's row in one
        # statement on PostgreSQL (one round trip, one commit), one transaction elsewhere.
        own_claim = event_claims.new_claim(
            f"{event_claims.SERVER_OPEN}:{command_id}",
            device.id,
            event_claims.SERVER_OPEN,
            {"event_key": event_key, "occurred_at": (occurred_at or utcnow()).isoformat()},
            self.lease_s,
            command_id=command_id,
            pending=pending,
        )
        if isinstance(prepared, PreparedCommand):
            await insert_together(own_claim, prepared.row)
        else:
            await insert_together(own_claim)
        if isinstance(prepared, PreparedCommand):
            outcome = await self.doors.deliver(device, prepared, timeout)
            if connection(DeviceCommand).capabilities.dialect != "postgres":
                await door_rows.write_outcome(prepared.row)  # a SQLite commit waits for no disk
            else:
                # Committed without waiting for the WAL flush: the access row's commit,
                # next, flushes it too (the WAL is one sequence). Visible at once, so a
                # process that dies before the row leaves the ack for the resume loop;
                # only a database crash in between loses it (the resumed row then says
                # "failed", as after a process death before the outcome). One statement.
                await door_rows.write_outcome_unflushed(prepared.row)
        else:
            outcome = prepared  # nothing may be sent to this device
        result = _acked_result(decision, outcome)
        # The row, its notice and the claim's finish commit together (record_access: one
        # statement on PostgreSQL when the row has no event key, else one transaction).
        async with contextlib.AsyncExitStack() as stack:
            if event_key is not None:
                await stack.enter_async_context(in_transaction())
            row = await record_access(
                device,
                device.community_id,
                method,
                decision,
                result=result,
                event_key=event_key,
                command_id=outcome.cmd_id,
                requested_by_id=requested_by_id,
                plate=plate,
                snapshot_ref=snapshot_ref,
                occurred_at=occurred_at,
                notice=notice,
                claim=own_claim,
            )
            await event_claims.finish(own_claim, result.value)  # unless finished with the row
        await self._logged(decision, row)
        return outcome, row

    async def _logged(self, decision: Decision, row: AccessEvent | None) -> None:
        """Count the decision; announce its row (None: the event was logged before)."""
        self.stats["granted" if decision.granted else "denied"] += 1
        if row is not None:
            await self._announce(row)

    async def _announce(self, row: AccessEvent) -> None:
        """The row to the consoles (fire and forget: the row is what must not be lost)."""
        try:
            await self.runtime.bus.publish(
                ACCESS_EVENT,
                {
                    "id": row.id,
                    "community_id": row.community_id,
                    "device_id": row.device_id,
                    "method": row.method.value,
                    "result": row.result.value,
                    "reason": row.reason,
                    "resident_id": row.resident_id,
                },
            )
        except Exception as exc:
            self.stats["announce_failed"] += 1
            log.warning("access row %s written but not announced: %s", row.id, exc)

    async def _touch(self, device: Device) -> None:
        now = utcnow()
        if device.last_seen_at is None or (now - device.last_seen_at).total_seconds() > 5:
            seen = Device._meta.fields_map["last_seen_at"].to_db_value(now, Device)
            # A prepared statement: the ORM built this UPDATE anew every time.
            await select(
                Device,
                'UPDATE "device" SET "last_seen_at" = ?, "online" = ? WHERE "id" = ?',
                [seen, True, device.id],
            )
            device.last_seen_at, device.online = now, True  # the cached row throttles too

    # ------------------------------------------------------------ states

    async def _consume_states(self, transport: ServerTransport) -> None:
        async for inbound in transport.states():
            try:
                await self.handle_state(inbound)
            except Exception:
                log.exception("state from %s failed", inbound.device_id)

    async def handle_state(self, inbound: InboundState) -> None:
        device = await Device.get_or_none(device_uid=inbound.device_id)
        if device is None or device.status == DeviceStatus.REVOKED:
            return
        online = inbound.state.status == "online"
        updates: dict[str, Any] = {"online": online}
        if online:
            updates.update(last_seen_at=utcnow(), offline_alarm_at=None)
            if inbound.state.firmware:
                updates["firmware"] = inbound.state.firmware
            if inbound.state.library_key:  # signed by the device: its transfer key
                updates["library_key"] = inbound.state.library_key
        await Device.filter(id=device.id).update(**updates)
        await device.refresh_from_db()
        self._devices.pop(device.device_uid, None)
        for hook in self.state_hooks:
            await hook(self, device, inbound)


BRIDGE: Key[DeviceBridge] = Key("bridge")


def install(runtime: Runtime) -> None:
    """The device adapter of this process: transports, door commands and (where
    `settings.run_bridge` is on) the event consumer. It is the domain's device port too."""
    bridge = runtime.provide(BRIDGE, DeviceBridge(runtime))
    port: DevicePort = bridge
    runtime.provide(DEVICES, port)
