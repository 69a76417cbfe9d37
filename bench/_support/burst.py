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
    *,
    window: int = 8,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """Run the bank of gates (gates.py) once; the clock stops when every event's access
    row is written. Returns seconds, this process's CPU seconds, the gates' count of
    opened doors and `cpu_ms_per_event` per process (bridge, gates, broker, the run's
    PostgreSQL backends, Redis) so the arithmetic of a burst is visible."""
    from models import AccessEvent

    cfg = tmp / "gates.json"
    cfg.write_text(
        json.dumps(
            {
                "mqtt_url": mqtt_url,
                "root": root,
                "devices": bank,
                "swipes": swipes,
                "window": window,
            }
        )
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
    others = _OtherCpu(broker_pid)
    others.start()
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
    other_cpu = others.stop()
    if profile is not None:
        profile.disable()
        profile.dump_stats(os.environ["BENCH_PROFILE"])
    if profile is not None or os.environ.get("BENCH_BATCHES"):
        import gc

        from anxin.batching import Batcher

        for b in [o for o in gc.get_objects() if isinstance(o, Batcher)]:
            if b.batches:
                print(f"batcher {b._flush.__qualname__}: {b.items} items in {b.batches} batches")
    out = await asyncio.wait_for(proc.stdout.readline(), 90)
    await proc.wait()
    gates = json.loads(out)
    n = max(1, done)
    per_event = {"bridge": cpu, "gates": gates.get("cpu_s", float("nan")), **other_cpu}
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "opened": gates["opened"],
        "cpu_ms_per_event": {k: round(v * 1000 / n, 3) for k, v in per_event.items()},
    }


def _proc_cpu_s(pid: int) -> float:
    """user + system CPU seconds of a process (Linux /proc), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _OtherCpu:
    """CPU used during the burst by the broker, by the PostgreSQL backends serving this
    run's database (and the WAL writer they wait on) and by Redis (the whole server: it
    may serve others too). Linux only; absent keys where a process is not found."""

    def __init__(self, broker_pid: int | None) -> None:
        self.broker_pid = broker_pid
        self.start_cpu: dict[str, float] = {}

    def _pg_pids(self) -> list[int]:
        from models import AccessEvent

        db = getattr(AccessEvent._meta.db, "database", None)
        if not db or AccessEvent._meta.db.capabilities.dialect != "postgres":
            return []
        pids = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                cmd = (d / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("postgres:") and (f" {db} " in cmd or "walwriter" in cmd):
                pids.append(int(d.name))
        return pids

    def _redis_cpu(self) -> float | None:
        url = os.environ.get("REDIS_URL")
        if not url:
            return None
        import redis

        try:
            info = redis.Redis.from_url(url).info("cpu")
        except Exception:
            return None
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def _now(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.broker_pid:
            out["broker"] = _proc_cpu_s(self.broker_pid)
        pg = self._pg_pids()
        if pg:
            out["postgres"] = sum(_proc_cpu_s(p) for p in pg)
        r = self._redis_cpu()
        if r is not None:
            out["redis (whole server)"] = r
        return out

    def start(self) -> None:
        self.start_cpu = self._now()

    def stop(self) -> dict[str, float]:
        end = self._now()
        return {k: end[k] - v for k, v in self.start_cpu.items() if k in end}
