"""The device bridge: events in, decisions made, signed commands out, everything logged.

One instance per process. It owns the MQTT transport (the embedded broker when no
`MQTT_URL` is set), the door-command service every process needs, and, where
`run_bridge` is on, the consumer that turns device events into decisions. Capabilities
plug in handlers per event type (`register_event`) and hooks for device state changes
(`on_state`), so the bridge itself knows nothing of faces or passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from anxin.bus import run_subscriber
from anxin.clock import utcnow
from anxin.crypto import keyring_from_settings
from anxin.runtime import Runtime
from device_bridge.broker import EmbeddedBroker
from device_bridge.channels import ACCESS_EVENT, DEVICE_CHANGED
from device_bridge.doors import DoorService
from device_bridge.http_push import HttpPushTransport
from device_bridge.mqtt import (
    CommandOutcome,
    InboundEvent,
    InboundState,
    MqttServerTransport,
    ServerTransport,
)
from domain.access.log import record_access
from domain.access.policy import Decision
from models import AccessEvent, AccessMethod, AccessResult, Device, DeviceStatus

log = logging.getLogger(__name__)

# Device rows the event path reads, kept per uid. Every change that matters to a decision
# (status, methods, credentials) publishes "device.changed", which drops the entry in
# every process; the expiry bounds what a change made without that message (a manual
# database edit) can take to show.
DEVICE_CACHE_S = 10.0


@dataclass
class EventContext:
    bridge: DeviceBridge
    device: Device
    inbound: InboundEvent

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


EventHandler = Callable[[EventContext], Awaitable[AccessAttempt | None]]
StateHook = Callable[["DeviceBridge", Device, InboundState], Awaitable[None]]


class DeviceBridge:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.keyring = keyring_from_settings(self.settings)
        self.broker: EmbeddedBroker | None = None
        self.transport: MqttServerTransport | None = None
        # Terminals that can only poll over HTTP (ZKTeco PUSH shape); its routes are
        # mounted on the API app. Its command queues live in this process, so such
        # terminals must reach the process that runs the bridge.
        self.http_push = HttpPushTransport(self._key_for)
        self.doors: DoorService | None = None
        self.handlers: dict[str, EventHandler] = {}
        self.state_hooks: list[StateHook] = []
        self.stats: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[Any]] = []
        self._inflight: set[asyncio.Task[Any]] = set()
        self._devices: dict[str, tuple[Device, float]] = {}

    # ------------------------------------------------------------ wiring

    def register_event(self, event_type: str, handler: EventHandler) -> None:
        self.handlers[event_type] = handler

    def on_state(self, hook: StateHook) -> None:
        self.state_hooks.append(hook)

    @property
    def mqtt_url(self) -> str:
        if self.settings.mqtt_url:
            return self.settings.mqtt_url
        assert self.broker is not None
        return self.broker.url

    def ready(self) -> bool:
        return self.transport is not None and self.transport.conn.connected.is_set()

    async def start(self) -> None:
        if not self.settings.mqtt_url:
            self.broker = await EmbeddedBroker(port=self.settings.embedded_broker_port).start()
        shared = self.settings.mqtt_shared_group if self.settings.mqtt_url else None
        self.transport = MqttServerTransport(
            self.mqtt_url,
            root=self.settings.topic_root,
            shared_group=shared,
            key_for=self._key_for,
            events=self.settings.run_bridge,
        )
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
            )
        ]
        if self.settings.run_bridge:
            for transport in (self.transport, self.http_push):
                self._tasks += [
                    asyncio.create_task(self._consume_events(transport)),
                    asyncio.create_task(self._consume_states(transport)),
                ]

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
        if self.broker is not None:
            await self.broker.stop()

    async def _device_changed(self, _: str, message: dict[str, Any]) -> None:
        device_uid = str(message.get("device_uid", ""))
        self._devices.pop(device_uid, None)
        if self.doors is not None:
            self.doors.forget_key(device_uid)

    async def _device(self, device_uid: str) -> Device | None:
        """The device row for an event (cached; see DEVICE_CACHE_S). Treat as read-only."""
        cached = self._devices.get(device_uid)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        device = await Device.get_or_none(device_uid=device_uid)
        if device is None:
            self._devices.pop(device_uid, None)
        else:
            self._devices[device_uid] = (device, time.monotonic() + DEVICE_CACHE_S)
        return device

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
        device = await self._device(inbound.device_id)
        if device is None or device.status == DeviceStatus.REVOKED:
            self.stats["unknown_device"] += 1
            return "unknown_device"
        ctx = EventContext(self, device, inbound)
        # Several bridge processes, or a redelivery after a crash: only one handles it.
        claimed = await self.runtime.kv.set(
            f"evt:{ctx.event_key}", "1", self.settings.event_claim_ttl_s, only_new=True
        )
        if not claimed:
            self.stats["duplicate"] += 1
            return "duplicate"
        await self._touch(device)
        handler = self.handlers.get(inbound.event.type)
        if handler is None:
            self.stats["unhandled"] += 1
            return "unhandled"
        attempt = await handler(ctx)
        if attempt is None:
            return "handled"
        return await self.execute(ctx, attempt)

    async def execute(self, ctx: EventContext, attempt: AccessAttempt) -> str:
        """Open the door if the decision says so, wait for the ack, write the row."""
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
    ) -> tuple[CommandOutcome | None, AccessEvent | None]:
        """The one way a decision reaches a door and the log: a granted decision sends the
        signed open command and waits for the ack (unless the device already opened by
        itself, offline); every decision is written with its reason and announced.
        Returns the command's outcome (None when nothing was sent) and the row (None when
        `event_key` was already written)."""
        outcome, result = None, None
        if decision.granted and not opened_by_device:
            assert self.doors is not None
            outcome = await self.doors.open(
                device, decision.reason, person_id=person_id, event_id=event_id, timeout=timeout
            )
            result = AccessResult.GRANTED if outcome.ok else AccessResult.FAILED
            if not outcome.ok:
                decision.details["ack"] = outcome.status
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
        )
        self.stats["granted" if decision.granted else "denied"] += 1
        if row is not None:
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
        return outcome, row

    async def _touch(self, device: Device) -> None:
        now = utcnow()
        if device.last_seen_at is None or (now - device.last_seen_at).total_seconds() > 5:
            await Device.filter(id=device.id).update(last_seen_at=now, online=True)
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
        await Device.filter(id=device.id).update(**updates)
        await device.refresh_from_db()
        self._devices.pop(device.device_uid, None)
        for hook in self.state_hooks:
            await hook(self, device, inbound)
