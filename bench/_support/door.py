"""One simulated door in a process of its own, for the remote-open benchmark: the device
is another machine, so its work (verifying each command's signature, expiry and replay,
driving the relay, signing its ack) is not the server's.

    python -m bench._support.door CONFIG.json

CONFIG: {"mqtt_url", "root", "device_id", "secret"}. Prints "ready" once connected,
serves commands until a line arrives on stdin, then prints one JSON line:
{"opened", "cpu_s"} (its own CPU time).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path


async def main(path: str) -> None:
    from device_bridge.simulator.device import DeviceConfig, SimulatedDevice

    logging.disable(logging.WARNING)
    cfg = json.loads(Path(path).read_text())  # noqa: ASYNC240 - once, before anything runs
    sim = SimulatedDevice(
        DeviceConfig(
            device_id=cfg["device_id"],
            secret=cfg["secret"],
            kind="face_gate",
            root=cfg["root"],
            heartbeat_s=3600.0,
        ),
        mqtt_url=cfg["mqtt_url"],
    )
    await sim.start()
    print("ready", flush=True)
    c0 = time.process_time()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    cpu_s = time.process_time() - c0
    opened = len(sim.opened)
    await sim.stop(clear_retained=True)
    print(json.dumps({"opened": opened, "cpu_s": cpu_s}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
