"""Load on the multi-process deployment: a realistic mix against `anxin cluster` on loopback.

Starts the deployment as an operator would (`anxin cluster`: API workers behind one
port and two bridges under supervisord) on a fresh PostgreSQL database, a private Redis
and a private Mosquitto, seeds one community (500 residents by default, the source
city's average) with cards and gates, warms up for `--warmup` s at 100 HTTP calls a
second on the same connections, then runs for `--seconds`:

`--rate` operations a second (default 500) arrive on a fixed schedule, whatever the
answers (open loop, so a slow server shows as latency, not as a politely slower client;
every time is taken from when the operation was due):

- gate events over MQTT from simulated terminals (`--gate-rate`, default 50/s over four
  gates; a gate lets one person through at a time, so a slow door makes the next person
  wait, and that wait is in their time): card swipes and pass QR scans, timed to the
  door opening;
- intercom calls from a panel (`--intercom-rate`, default 5/s), timed to the server's
  receipt;
- mini-program calls, the rest (445/s by default) over 48 keep-alive connections (kept
  open throughout, as a gateway keeps them; each call as the next resident): who am
  I, my doors, my notifications and unread count, my passes, creating a visitor pass,
  opening a door remotely (with an Idempotency-Key; the gate's ack is inside the time).

Per operation: count, throughput, p50/p95/p99 and errors. Then where the CPU went: the
CPU seconds each part of the deployment used over the timed window (API workers, bridges,
this database's PostgreSQL backends, Redis, Mosquitto, the process manager: supervisord
with uvicorn's worker manager, this load generator with its simulated terminals), per
operation served, and the machine's load average: on a shared
machine these say what an operation costs whatever else runs. `--timeline` adds each
second's p50/p95/max, to tell a steady queue from a stall. The last line is JSON with
load_rps (operations per second, HTTP and device), load_p95_ms (over all operations) and
load_errors.

    uv run python bench/load.py [--rate 500] [--gate-rate 50] [--intercom-rate 5]
                                [--seconds 30] [--api-workers 2] [--residents 500]
                                [--timeline]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import random
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # root, not bench/: names shadow

from bench._support.cluster import LocalCluster  # noqa: E402
from boot.cli import run_loop  # noqa: E402
from device_bridge.simulator import DeviceConfig, SimulatedDevice  # noqa: E402

CONNECTIONS = 48  # keep-alive connections of the simulated phones (through a gateway)
# Weighted mini-program mix (per 100 requests): opening the app reads; a few act.
HTTP_MIX = [
    ("me", 22),
    ("my_doors", 18),
    ("unread_count", 25),
    ("notifications", 15),
    ("my_passes", 12),
    ("create_pass", 4),
    ("remote_open", 4),
]


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def postgres_backends(cluster: LocalCluster) -> list[int]:
    """This database's PostgreSQL backends (each pool connection is one)."""
    conn = await cluster.db()
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [r["pid"] for r in rows]


async def deployment_pids(cluster: LocalCluster) -> dict[str, list[int]]:
    """The processes of the deployment by part. Asking supervisord (supervisorctl, a
    Python process of its own) takes a few hundred ms of CPU: done once, in a thread,
    during the warm-up, so neither that CPU nor a blocked event loop is in the timed run."""
    programs = await asyncio.to_thread(cluster.pids)
    api, managers = await asyncio.to_thread(
        lambda: (cluster.api_worker_pids(programs), cluster.manager_pids(programs))
    )
    return {
        "api workers": api,
        "bridges": [pid for name, pid in programs.items() if name.startswith("bridge-")],
        "postgres": await postgres_backends(cluster),
        "redis": [cluster.redis.proc.pid] if cluster.redis.proc else [],
        "mosquitto": [cluster.mosquitto.proc.pid] if cluster.mosquitto.proc else [],
        "process manager": managers,
        "load generator": [os.getpid()],
    }


class CpuMeter:
    """CPU seconds used by each part of the deployment between start() and stop()."""

    def __init__(self, cluster: LocalCluster, pids: dict[str, list[int]]) -> None:
        self.cluster = cluster
        self.pids = pids
        self.before: dict[int, float] = {}
        self.used: dict[str, float] = {}

    async def start(self) -> None:
        self.pids["postgres"] = await postgres_backends(self.cluster)
        self.before = {pid: process_cpu_s(pid) for pids in self.pids.values() for pid in pids}

    async def stop(self) -> None:
        # Backends opened meanwhile count too (from their start: they are new).
        self.pids["postgres"] = sorted(
            set(self.pids["postgres"]) | set(await postgres_backends(self.cluster))
        )
        for part, pids in self.pids.items():
            self.used[part] = sum(
                max(0.0, process_cpu_s(pid) - self.before.get(pid, 0.0)) for pid in pids
            )


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Recorder:
    def __init__(self) -> None:
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.error_samples: list[str] = []
        self.unanswered = 0  # offered, never answered (counted in errors too)
        self.on = False
        self.timeline: list[tuple[float, float]] = []  # (when it was due, ms), for --timeline

    def ok(self, op: str, ms: float) -> None:
        if self.on:
            self.lat[op].append(ms)
            self.timeline.append((time.perf_counter() - ms / 1000, ms))

    def fail(self, op: str, why: str) -> None:
        if self.on:
            self.errors[op] += 1
            if len(self.error_samples) < 10:
                self.error_samples.append(f"{op}: {why}"[:200])


class TimedDevice(SimulatedDevice):
    """A simulator that notes when the server's receipt for each event came."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.receipts: dict[str, asyncio.Future[float]] = {}

    def expect_receipt(self, event_id: str) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.receipts[event_id] = fut
        return fut

    def _on_receipt(self, obj: dict[str, Any]) -> None:
        super()._on_receipt(obj)
        now = time.perf_counter()
        for event_id in obj.get("events") or []:
            fut = self.receipts.pop(event_id, None)
            if fut is not None and not fut.done():
                fut.set_result(now)


class Conn:
    """One keep-alive HTTP/1.1 connection, written by hand: a Python HTTP client costs
    more CPU per request than the server's route does, and both share two cores here."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        try:
            self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("server closed the connection")
            length, close = 0, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            data = await self.reader.readexactly(length) if length else b""
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.close()
            raise
        if close:
            self.close()
        return int(status_line.split()[1]), data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def http_load(
    cluster: LocalCluster,
    conns: list[Conn],
    rec: Recorder,
    rate: float,
    seconds: float,
    passes: asyncio.Queue[str],
    drain_s: float = 10.0,
) -> None:
    """Arrivals at `rate` per second over `conns` (kept open from one call to the next, as
    a gateway keeps them); each is timed from when it was due, so waiting for a free
    connection counts (open loop). What is not answered `drain_s` after the last
    arrival counts as an error."""
    residents = cluster.seed["residents"]
    gate_ids = [d["id"] for d in cluster.seed["devices"] if d["kind"] == "face_gate"]
    ops = [op for op, w in HTTP_MIX for _ in range(w)]
    rng = random.Random(7)
    who = itertools.cycle(range(len(residents)))
    due_q: asyncio.Queue[tuple[float, str] | None] = asyncio.Queue()

    async def one(conn: Conn, op: str) -> tuple[int, bytes]:
        r = residents[next(who)]
        h = {"Authorization": f"Bearer {r['token']}"}
        if op == "me":
            return await conn.request("GET", "/api/v1/me", h)
        if op == "my_doors":
            return await conn.request("GET", "/api/v1/doors", h)
        if op == "notifications":
            return await conn.request("GET", "/api/v1/notifications?limit=20", h)
        if op == "unread_count":
            return await conn.request("GET", "/api/v1/notifications/unread-count", h)
        if op == "my_passes":
            return await conn.request("GET", "/api/v1/passes?limit=20", h)
        h["Idempotency-Key"] = uuid.uuid4().hex
        if op == "create_pass":
            body = {"room_id": r["room_id"], "visitor_name": "访客", "max_uses": 2}
            status, data = await conn.request(
                "POST", "/api/v1/passes", h, json.dumps(body).encode()
            )
            if status in (200, 201) and passes.qsize() < 500:
                passes.put_nowait(json.loads(data)["token"])
            return status, data
        gate = gate_ids[rng.randrange(len(gate_ids))]
        return await conn.request("POST", f"/api/v1/doors/{gate}/open", h)

    async def worker(conn: Conn) -> None:
        while (item := await due_q.get()) is not None:
            due, op = item
            try:
                status, data = await one(conn, op)
            except asyncio.CancelledError:
                conn.close()  # cut mid-answer: the next call opens a fresh connection
                raise
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                rec.fail(op, f"{type(exc).__name__}: {exc}")
                continue
            if status >= 400:
                rec.fail(op, f"{status} {data[:120]!r}")
            else:
                rec.ok(op, (time.perf_counter() - due) * 1000)

    workers = [asyncio.create_task(worker(conn)) for conn in conns]
    offered: dict[str, int] = defaultdict(int)
    answered_before = {op: len(rec.lat[op]) + rec.errors[op] for op, _ in HTTP_MIX}
    start = time.perf_counter()
    n = 0
    while (now := time.perf_counter() - start) < seconds:
        while n < int(now * rate) + 1:
            op = ops[rng.randrange(len(ops))]
            offered[op] += 1
            due_q.put_nowait((start + n / rate, op))
            n += 1
        await asyncio.sleep(0.002)
    for _ in workers:
        due_q.put_nowait(None)
    _, late = await asyncio.wait(workers, timeout=drain_s)
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    # A request still queued or in flight when the run ends was never answered: a failure
    # of the deployment to serve what was offered, counted with the errors.
    for op, count in offered.items():
        answered = len(rec.lat[op]) + rec.errors[op] - answered_before[op]
        missing = max(0, count - answered) if rec.on else 0
        rec.unanswered += missing
        for _ in range(missing):
            rec.fail(op, f"not answered within {drain_s:.0f} s of the run's end")


async def paced(interval: float, phase: float, stop: asyncio.Event) -> AsyncIterator[float]:
    """Arrival times every `interval` seconds from `phase` on (open loop): yields each
    arrival once it is due, at once when the terminal is behind (a person waited in line:
    the wait is in the time measured from the arrival)."""
    due = time.perf_counter() + phase
    while not stop.is_set():
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        yield due
        due += interval


async def gate_loop(
    gate: TimedDevice,
    cluster: LocalCluster,
    rec: Recorder,
    passes: asyncio.Queue[str],
    stop: asyncio.Event,
    interval: float,
    offset: int,
) -> None:
    """People arrive at one gate every `interval` s and go through one at a time: a card
    or (every third, when a visitor pass exists) a pass QR, timed from the arrival to
    the door opening."""
    residents = cluster.seed["residents"]
    i = offset
    async for due in paced(interval, interval * offset / 7 % interval, stop):
        i += 1
        before = len(gate.opened)
        if i % 3 == 0 and not passes.empty():
            op = "gate_qr_scan"
            await gate.scan_qr(passes.get_nowait())
        else:
            op = "gate_card_swipe"
            await gate.swipe_card(residents[i % len(residents)]["card_no"])
        try:
            await gate.wait_opened(before + 1, timeout=5)
            rec.ok(op, (time.perf_counter() - due) * 1000)
        except TimeoutError:
            rec.fail(op, "door did not open within 5 s")


async def intercom_loop(
    panel: TimedDevice, cluster: LocalCluster, rec: Recorder, stop: asyncio.Event, interval: float
) -> None:
    """A visitor calls a room every `interval` s, timed from the call to the server's
    receipt."""
    residents = cluster.seed["residents"]
    i = 0
    async for due in paced(interval, 0.0, stop):
        i += 1
        evt = await panel.call_room(residents[i % len(residents)]["room"])
        try:
            done = await asyncio.wait_for(panel.expect_receipt(evt["id"]), 5)
            rec.ok("intercom_call", (done - due) * 1000)
        except TimeoutError:
            rec.fail("intercom_call", "no receipt within 5 s")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    cluster = LocalCluster(api_workers=args.api_workers, bridges=2)
    t0 = time.perf_counter()
    await cluster.start(residents=args.residents)
    print(
        f"deployment ready in {time.perf_counter() - t0:.1f} s: {args.api_workers} API workers, "
        f"2 bridges at {cluster.base_url}",
        flush=True,
    )
    sims: list[TimedDevice] = []
    conns = [Conn("127.0.0.1", cluster.port) for _ in range(CONNECTIONS)]
    try:
        for d in cluster.seed["devices"]:
            if d["kind"] not in ("face_gate", "intercom_panel"):
                continue
            cfg = DeviceConfig(
                device_id=d["device_uid"],
                secret=d["secret"],
                kind=d["kind"],
                root=cluster.topic_root,
                relock_s=0.2,
            )
            sim = TimedDevice(cfg, mqtt_url=cluster.mqtt_url)
            await sim.start()
            sims.append(sim)
        rec = Recorder()
        passes: asyncio.Queue[str] = asyncio.Queue()
        stop = asyncio.Event()
        gates = [s for s in sims if s.cfg.kind == "face_gate"]
        panel = next(s for s in sims if s.cfg.kind == "intercom_panel")
        http_rate = args.rate - args.gate_rate - args.intercom_rate
        per_gate = len(gates) / args.gate_rate
        devices = [
            *(
                asyncio.create_task(gate_loop(g, cluster, rec, passes, stop, per_gate, n * 7))
                for n, g in enumerate(gates)
            ),
            asyncio.create_task(intercom_loop(panel, cluster, rec, stop, 1 / args.intercom_rate)),
        ]
        # Warm-up (connections, caches, JIT-less Python's first calls), not counted.
        warm_up = asyncio.create_task(
            http_load(cluster, conns, rec, min(http_rate, 100), args.warmup, passes)
        )
        pids = await deployment_pids(cluster)
        await warm_up
        cpu = CpuMeter(cluster, pids)
        await cpu.start()
        load_before = os.getloadavg()
        rec.on = True
        t, t_wall = time.perf_counter(), time.time()
        await http_load(cluster, conns, rec, http_rate, args.seconds, passes)
        elapsed = time.perf_counter() - t
        rec.on = False
        await cpu.stop()
        load_after = os.getloadavg()
        stop.set()
        await asyncio.gather(*devices, return_exceptions=True)
    finally:
        for conn in conns:
            conn.close()
        for s in sims:
            await s.stop()
        await cluster.stop()

    everything = [ms for v in rec.lat.values() for ms in v]
    errors = sum(rec.errors.values())
    print(
        f"\n{'operation':<18}{'count':>7}{'per s':>8}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'p99 ms':>9}{'errors':>8}"
    )
    for op in sorted(set(rec.lat) | set(rec.errors)):
        v = rec.lat[op]
        print(
            f"{op:<18}{len(v):>7}{len(v) / elapsed:>8.1f}{pct(v, 50):>9.1f}{pct(v, 95):>9.1f}"
            f"{pct(v, 99):>9.1f}{rec.errors[op]:>8}"
        )
    if rec.unanswered:
        print(f"  {rec.unanswered} requests offered were never answered (in the errors above)")
    if args.timeline:
        print(f"\n{'second':<8}{'UTC':<10}{'answered':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
        by_second: dict[int, list[float]] = defaultdict(list)
        for due, ms in rec.timeline:
            by_second[int(due - t)].append(ms)
        for second in sorted(by_second):
            v = by_second[second]
            utc = time.strftime("%H:%M:%S", time.gmtime(t_wall + second))
            print(
                f"{second:<8}{utc:<10}{len(v):>9}{pct(v, 50):>9.1f}{pct(v, 95):>9.1f}{max(v):>9.1f}"
            )
    for sample in rec.error_samples:
        print("  error:", sample)
    # CPU per operation the deployment answered (an unanswered request cost next to nothing).
    served = max(1, len(everything) + errors - rec.unanswered)
    cores = os.cpu_count() or 1
    print(
        f"\nCPU over the timed {elapsed:.1f} s ({cores} cores; load average "
        f"{load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end):"
    )
    print(f"{'part':<16}{'cores':>7}{'ms per op':>11}")
    for part, used in cpu.used.items():
        print(f"{part:<16}{used / elapsed:>7.2f}{1000 * used / served:>11.2f}")
    total = sum(cpu.used.values())
    print(f"{'all':<16}{total / elapsed:>7.2f}{1000 * total / served:>11.2f}")
    return {
        "load_rps": round(len(everything) / elapsed, 1),
        "load_p50_ms": round(pct(everything, 50), 1),
        "load_p95_ms": round(pct(everything, 95), 1),
        "load_p99_ms": round(pct(everything, 99), 1),
        "load_errors": errors,
        "load_unanswered": rec.unanswered,
        "load_offered_rps": args.rate,
        "load_offered_http_rps": http_rate,
        "load_offered_gate_rps": args.gate_rate,
        "load_offered_intercom_rps": args.intercom_rate,
        "load_seconds": round(elapsed, 1),
        "api_workers": args.api_workers,
        "bridges": 2,
        "cpu_ms_per_op": {k: round(1000 * v / served, 2) for k, v in cpu.used.items()},
        "load_average": [round(load_before[0], 1), round(load_after[0], 1)],
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--rate", type=float, default=500.0, help="operations offered per second, all kinds"
    )
    p.add_argument("--gate-rate", type=float, default=50.0, help="of which gate events")
    p.add_argument("--intercom-rate", type=float, default=5.0, help="of which intercom calls")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--api-workers", type=int, default=2)
    p.add_argument(
        "--timeline", action="store_true", help="also print each second's p50/p95 (by due time)"
    )
    # The source city's average community (50,000 residents in 100 communities); each
    # resident then opens a door remotely about twice a minute, under the limit of 10.
    p.add_argument("--residents", type=int, default=500)
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(run_loop(main(p.parse_args()))))
