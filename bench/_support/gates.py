"""A bank of simulated gates in a process of its own: the load for a bridge benchmark.

    python -m bench._support.gates CONFIG.json

CONFIG: {"mqtt_url", "root", "devices": [{"device_id", "secret", "card_no"}], "swipes",
"window"}: swipes per device, and at most `window` of a gate's events waiting for their
door; a device with "tokens" instead scans each of those visitor passes once (online
check: the gate asks the server). Each gate is a full `SimulatedDevice` (verifies every
command's signature, expiry and replay, drives its door, signs its acks), so the bridge
under test pays for nothing the gates do. Prints "ready" once every gate is connected,
waits for a line on stdin, sends its events, waits until every door command was executed
and acked (or 60 s), and prints one JSON line: {"swiped", "opened", "seconds", "cpu_s"}
(the gates' own CPU time over the burst).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any


async def main(path: str) -> None:
    from device_bridge.simulator.device import DeviceConfig, SimulatedDevice

    logging.disable(logging.WARNING)
    cfg = json.loads(Path(path).read_text())  # noqa: ASYNC240 - once, before anything runs
    sims = [
        SimulatedDevice(
            DeviceConfig(
                device_id=d["device_id"],
                secret=d["secret"],
                kind="face_gate",
                root=cfg["root"],
                # Held open through the burst: a queue at a gate is one long opening,
                # not thousands of door_state open/close pairs.
                relock_s=600.0,
                heartbeat_s=3600.0,
            ),
            mqtt_url=cfg["mqtt_url"],
        )
        for d in cfg["devices"]
    ]
    await asyncio.gather(*(s.start() for s in sims))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    plans = [d.get("tokens") or [None] * int(cfg["swipes"]) for d in cfg["devices"]]
    total = sum(len(p) for p in plans)
    window = int(cfg.get("window", 8))

    async def run(sim: SimulatedDevice, d: dict[str, Any], plan: list[str | None]) -> None:
        # A queue at a gate: the next person swipes once the door opened for one of the
        # `window` before them (a closed loop: no backlog of stale events).
        for i, token in enumerate(plan):
            if i >= window:
                await sim.wait_opened(i - window + 1, timeout=30)
            if token is None:
                await sim.swipe_card(d["card_no"])
            else:
                await sim.scan_qr(token)

    t0, c0 = time.perf_counter(), time.process_time()
    runs = [run(s, d, p) for s, d, p in zip(sims, cfg["devices"], plans, strict=True)]
    await asyncio.gather(*runs, return_exceptions=True)
    deadline = t0 + 60
    while time.perf_counter() < deadline:  # polling many devices' counters
        if sum(len(s.opened) for s in sims) >= total:
            break
        await asyncio.sleep(0.01)
    seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    opened = sum(len(s.opened) for s in sims)
    await asyncio.gather(*(s.stop(clear_retained=True) for s in sims))
    print(
        json.dumps({"swiped": total, "opened": opened, "seconds": seconds, "cpu_s": cpu_s}),
        flush=True,
    )


if __name__ == "__main__":
    if out := os.environ.get("GATES_PROFILE"):  # a cProfile of the load generator itself
        import cProfile

        cProfile.run("asyncio.run(main(sys.argv[1]))", out)
    else:
        asyncio.run(main(sys.argv[1]))
