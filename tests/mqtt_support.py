"""Shared MQTT fixtures and helpers for tests (import them in a conftest or a test module).

Tests run against real Mosquitto: the one at MQTT_URL (default mqtt://127.0.0.1:1883) with
a unique topic root per run, or a private tuned one (`private_mosquitto`). Retained
messages a test sets are cleared by `clear_retained`.

    from tests.mqtt_support import mqtt_url, topic_root, private_mosquitto  # noqa: F401
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import aiomqtt
import pytest

from device_bridge.broker import PrivateMosquitto, start_private_mosquitto
from device_bridge.mqtt import MqttServerTransport, parse_mqtt_url
from device_bridge.protocol import Topics
from device_bridge.signing import device_key
from device_bridge.simulator import DeviceConfig, SimulatedDevice

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
RUN_ROOT = f"anxin-test-{uuid.uuid4().hex[:10]}"  # one per test run


def env_mqtt_url() -> str:
    return os.environ.get("MQTT_URL") or DEFAULT_MQTT_URL


def unique_root(prefix: str = RUN_ROOT) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    return env_mqtt_url()


@pytest.fixture
def topic_root() -> str:
    """A fresh root per test, so tests never see each other's messages."""
    return unique_root()


@pytest.fixture(scope="session")
def private_mosquitto() -> Iterator[PrivateMosquitto]:
    """A private Mosquitto with set_tcp_nodelay, for the whole session."""
    broker = start_private_mosquitto()
    try:
        yield broker
    finally:
        broker.stop()


async def clear_retained(url: str, root: str, timeout: float = 1.0) -> int:  # noqa: ASYNC109
    """Clear every retained message under `root` (returns how many were cleared)."""
    p = parse_mqtt_url(url)
    topics: set[str] = set()
    async with aiomqtt.Client(p.host, p.port, username=p.username, password=p.password) as c:
        await c.subscribe(f"{root}/#", qos=1)
        try:
            async with asyncio.timeout(timeout):
                async for msg in c.messages:
                    if msg.retain and msg.payload:
                        topics.add(msg.topic.value)
        except TimeoutError:
            pass
        for t in topics:
            await c.publish(t, b"", qos=1, retain=True)
    return len(topics)


def secrets_for(*device_ids: str) -> dict[str, str]:
    return {d: f"secret-{d}-{uuid.uuid4().hex[:8]}" for d in device_ids}


def key_lookup(secrets: dict[str, str]):  # type: ignore[no-untyped-def]
    keys = {d: device_key(s) for d, s in secrets.items()}
    return keys.get


async def server_and_devices(
    url: str, root: str, secrets: dict[str, str], **device_kw: object
) -> tuple[MqttServerTransport, dict[str, SimulatedDevice]]:
    """A started server transport plus one started simulator per device id."""
    server = MqttServerTransport(url, root=root, key_for=key_lookup(secrets))
    await server.start()
    devices: dict[str, SimulatedDevice] = {}
    for dev_id, secret in secrets.items():
        cfg = DeviceConfig(device_id=dev_id, secret=secret, root=root, **device_kw)  # type: ignore[arg-type]
        devices[dev_id] = await SimulatedDevice(cfg, mqtt_url=url).start()
    return server, devices


__all__ = [
    "RUN_ROOT",
    "Topics",
    "clear_retained",
    "env_mqtt_url",
    "key_lookup",
    "mqtt_url",
    "private_mosquitto",
    "secrets_for",
    "server_and_devices",
    "topic_root",
    "unique_root",
]
