"""The device side over MQTT: what a simulated terminal connects through."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiomqtt

from device_bridge.mqtt import MqttConnection
from device_bridge.protocol import (
    Topics,
    encode,
)
from device_bridge.transport import DeviceLink

log = logging.getLogger(__name__)


class MqttDeviceLink(DeviceLink):
    """Device side over MQTT: connects out with its own credentials (username = device id,
    password = device secret), subscribes to its cmd topic, last will = offline state."""

    def __init__(
        self,
        url: str,
        device_id: str,
        secret: str,
        *,
        root: str = "anxin",
        will_payload: Callable[[], bytes] | None = None,
        keepalive: int = 30,
    ) -> None:
        super().__init__()
        self.topics = Topics(root)
        self.device_id = device_id

        def will() -> aiomqtt.Will | None:
            if will_payload is None:
                return None
            return aiomqtt.Will(self.topics.state(device_id), will_payload(), qos=1, retain=True)

        self.conn = MqttConnection(
            url,
            self._on_message,
            client_id=f"dev-{device_id}",
            username=device_id,
            password=secret,
            subscriptions=[self.topics.cmd(device_id)],
            will_factory=will,
            on_connect=self._connected_cb,
            keepalive=keepalive,
        )
        self.connected = self.conn.connected

    async def start(self, wait: float | None = 10.0) -> None:
        await self.conn.start(wait)

    async def stop(self) -> None:
        await self.conn.stop()

    def drop(self) -> None:
        self.conn.drop()

    def resume(self) -> None:
        self.conn.resume()

    async def publish_ack(self, ack: dict[str, Any]) -> None:
        await self.conn.publish(self.topics.ack(self.device_id), encode(ack))

    async def publish_event(self, event: dict[str, Any]) -> None:
        await self.conn.publish(self.topics.evt(self.device_id), encode(event))

    async def publish_state(self, state: dict[str, Any] | None, *, retain: bool = True) -> None:
        await self.conn.publish(
            self.topics.state(self.device_id), encode(state) if state else b"", retain=retain
        )

    async def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self.topics.cmd(self.device_id) and self.on_command:
            await self.on_command(payload)

    async def _connected_cb(self) -> None:
        if self.on_connect:
            await self.on_connect()
