"""Helpers to register devices through the API and run simulators against the stack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from device_bridge.service import BRIDGE
from device_bridge.simulator.device import DeviceConfig, SimulatedDevice
from tests.stack import Stack


async def register_device(
    stack: Stack, community_id: int, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    body.setdefault("name", f"{body['kind']}-test")
    r = await stack.client.post(
        f"/api/v1/staff/communities/{community_id}/devices", json=body, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()


@asynccontextmanager
async def simulator(
    stack: Stack, device: dict[str, Any], **cfg: Any
) -> AsyncIterator[SimulatedDevice]:
    sim = SimulatedDevice(
        DeviceConfig(
            device_id=device["device_uid"],
            secret=device["secret"],
            kind=device["kind"],
            root=stack.settings.topic_root,
            **cfg,
        ),
        mqtt_url=stack.runtime.get(BRIDGE).mqtt_url,
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop(clear_retained=True)
