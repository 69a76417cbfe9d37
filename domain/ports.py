"""How the domain reaches devices without knowing how devices are reached.

The device bridge implements `DevicePort` (MQTT, HTTP push, whatever comes next); the
domain takes it from the runtime (`runtime.get(DEVICES)`) and never imports the bridge.
A process without a bridge (none configured) has no `DEVICES`: `runtime.has(DEVICES)`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from anxin.runtime import Key
from domain.access.log import Notice
from domain.access.policy import Decision
from models import AccessEvent, AccessMethod, AccessResult, Device


class CommandResult(Protocol):
    """What came of one signed command: `ok` once the device acknowledged it."""

    @property
    def cmd_id(self) -> str: ...

    @property
    def status(self) -> str:
        """ "done", "refused", "failed", "timeout" (the caller stopped waiting), "expired"."""
        ...

    @property
    def reason(self) -> str | None: ...

    @property
    def elapsed_ms(self) -> float | None: ...

    @property
    def ok(self) -> bool: ...

    @property
    def detail(self) -> dict[str, Any]:
        """The device's acknowledgement detail ({} when none came)."""
        ...


class DevicePort(Protocol):
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
        result: AccessResult | None = None,
        notice: Notice | None = None,
    ) -> tuple[CommandResult | None, AccessEvent | None]:
        """The one way a decision reaches a door and the log: a granted decision sends the
        signed open command and waits for the ack (unless the device opened by itself);
        every decision is written with its reason and announced, and `notice` is queued
        in the row's transaction when the door opened. Returns the command's outcome
        (None when nothing was sent) and the row (None when `event_key` was already
        written)."""
        ...

    async def send(
        self, device: Device, op: str, args: dict[str, Any], *, reason: str
    ) -> CommandResult:
        """A signed, expiring command other than open (pass revocations, face library)."""
        ...

    def encode_embedding(self, vector: Any) -> str:
        """A face embedding in the devices' wire form (for face library commands)."""
        ...

    @property
    def max_library_changes(self) -> int:
        """How many face library changes one command may carry."""
        ...


DEVICES: Key[DevicePort] = Key("devices")
