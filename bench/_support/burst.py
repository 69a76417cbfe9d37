"""Timing a burst of gate events from a bank of simulated gates in another process."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def gate_burst(
    mqtt_url: str,
    root: str,
    bank: list[dict[str, Any]],
    swipes: int,
    tmp: Path,
    method: str = "card",
) -> dict[str, float]:
    """Run the bank of gates (gates.py) once; the clock stops when every event's access
    row is written. Returns seconds, this process's CPU seconds and the gates' count of
    opened doors."""
    from models import AccessEvent

    cfg = tmp / "gates.json"
    cfg.write_text(
        json.dumps({"mqtt_url": mqtt_url, "root": root, "devices": bank, "swipes": swipes})
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._support.gates",
        str(cfg),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin and proc.stdout
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert line.strip() == b"ready", line
    await asyncio.sleep(1.0)  # the gates' connect-time state messages are handled
    expected = sum(len(d.get("tokens") or []) or swipes for d in bank)
    before = await AccessEvent.filter(method=method).count()
    profile = None
    if os.environ.get("BENCH_PROFILE"):  # a cProfile of the burst, for docs/performance.md
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    c0, t0 = cpu_s(), time.perf_counter()
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    done = 0
    while time.perf_counter() - t0 < 90:
        done = await AccessEvent.filter(method=method).count() - before
        if done >= expected:
            break
        await asyncio.sleep(0.05)
    seconds, cpu = time.perf_counter() - t0, cpu_s() - c0
    if profile is not None:
        profile.disable()
        profile.dump_stats(os.environ["BENCH_PROFILE"])
        import gc

        from anxin.batching import Batcher

        for b in [o for o in gc.get_objects() if isinstance(o, Batcher)]:
            print(f"batcher {b._flush.__qualname__}: {b.items} items in {b.batches} batches")
    out = await asyncio.wait_for(proc.stdout.readline(), 90)
    await proc.wait()
    gates = json.loads(out)
    return {"seconds": seconds, "cpu_s": cpu, "opened": gates["opened"]}
