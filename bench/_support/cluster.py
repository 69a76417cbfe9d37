"""A private multi-process deployment on loopback, for the fault tests and the load bench.

`LocalCluster` gives one run its own servers: a fresh PostgreSQL database (on the
machine's PostgreSQL), a private `redis-server` and a private Mosquitto (persistence on,
so a restart keeps queued messages), each on a free port, never the shared ones. It then
starts the deployment exactly as an operator does, `anxin cluster` (supervisord: API
workers behind one port, two bridges), seeds a community through
`bench/_support/cluster_seed.py`, and can break each part: kill -9 a bridge or an API
worker, restart Mosquitto, drop PostgreSQL's connections, stop and restart Redis.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from anxin.crypto import generate_key_spec

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("ANXIN_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
FAKE_APPID, FAKE_SECRET = "wx0000000000demo", "demo-app-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def wait_for(check: Any, timeout: float, what: str, every: float = 0.05) -> float:  # noqa: ASYNC109
    """Poll `check()` (sync or async) until truthy; returns the seconds it took."""
    start = time.monotonic()
    while True:
        ok = check()
        if asyncio.iscoroutine(ok):
            ok = await ok
        if ok:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not within {timeout}s")
        await asyncio.sleep(every)


@dataclass
class Service:
    """A private server process we start, stop and restart on one port."""

    name: str
    argv: list[str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def _mosquitto(port: int, workdir: Path) -> Service:
    conf = workdir / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "set_tcp_nodelay true",
        # Sessions and queued QoS 1 messages survive a restart (saved on shutdown).
        "persistence true",
        f"persistence_location {workdir}/",
        "autosave_interval 1",
        "max_queued_messages 100000",
        "max_inflight_messages 100",
        "max_packet_size 525312",
        f"log_dest file {workdir / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        lines.append(f"user {getpass.getuser()}")
    conf.write_text("\n".join(lines) + "\n")
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return Service("mosquitto", [exe, "-c", str(conf)], port, workdir / "mosquitto.out")


def _redis(port: int, workdir: Path) -> Service:
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(workdir)]
    return Service("redis", argv, port, workdir / "redis.log")


@dataclass
class LocalCluster:
    api_workers: int = 2
    bridges: int = 2
    env_extra: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="anxin-cluster-")))
    port: int = field(default_factory=free_port)
    db_name: str = field(default_factory=lambda: f"anxin_cluster_{secrets.token_hex(5)}")
    proc: subprocess.Popen[bytes] | None = None
    seed: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mosquitto = _mosquitto(free_port(), self.workdir)
        self.redis = _redis(free_port(), self.workdir)
        self.run_id = secrets.token_hex(4)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{self.db_name}"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mosquitto.port}"

    @property
    def topic_root(self) -> str:
        return f"anxin-cluster-{self.run_id}"

    @property
    def conf(self) -> Path:
        return self.workdir / "supervisor" / "supervisord.conf"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": f"redis://127.0.0.1:{self.redis.port}/0",
                "MQTT_URL": self.mqtt_url,
                "ANXIN_TOPIC_ROOT": self.topic_root,
                "ANXIN_REDIS_PREFIX": f"{self.topic_root}:",
                "ANXIN_DATA_DIR": str(self.workdir / "data"),
                "ANXIN_JWT_SECRET": secrets.token_urlsafe(48),
                "ANXIN_FACE_KEYS": generate_key_spec("cluster"),
                "ANXIN_WECHAT_APPID": FAKE_APPID,
                "ANXIN_WECHAT_SECRET": FAKE_SECRET,
                "ANXIN_WECHAT_LOGIN_PER_IP_PER_MINUTE": "1000000",
                "ANXIN_WECHAT_LOGIN_GLOBAL_PER_MINUTE": "1000000",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.env_extra)
        return env

    # ------------------------------------------------------------ lifecycle

    async def start(self, *, residents: int = 20) -> LocalCluster:
        self._env = self.env()
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            await admin.close()
        await asyncio.to_thread(self.redis.start)
        await asyncio.to_thread(self.mosquitto.start)
        argv = [sys.executable, "-m", "boot.cli", "cluster", "--port", str(self.port)]
        argv += ["--api-workers", str(self.api_workers), "--bridges", str(self.bridges)]
        argv += ["--conf-dir", str(self.conf.parent), "--log-files"]
        with (self.workdir / "cluster.out").open("ab") as out:
            # Its own session: cleanup ends supervisord and every process under it.
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - starts it, waits for nothing
                argv,
                cwd=ROOT,
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            await self.wait_ready(180)
            self.seed = await self._seed(residents)
        except BaseException:
            await self.stop()
            raise
        return self

    async def _seed(self, residents: int) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench._support.cluster_seed",
            str(residents),
            cwd=ROOT,
            env=self._env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"seeding failed: {err.decode()[-3000:]}")
        return dict(json.loads(out.decode().strip().splitlines()[-1]))

    async def stop(self) -> None:
        children: list[int] = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                children = [*self.pids().values(), *self.api_worker_pids()]
            except (OSError, subprocess.SubprocessError):
                children = []
            with _suppress():
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 30)
            except subprocess.TimeoutExpired:
                with _suppress():
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await asyncio.to_thread(self.proc.wait, 10)
        for pid in children:  # whatever supervisord left behind (it was killed hard)
            if str(self.workdir) in _environ(pid) or "boot.cli" in _cmdline(pid):
                with _suppress():
                    os.kill(pid, signal.SIGKILL)
        self.proc = None
        await asyncio.to_thread(self.mosquitto.stop)
        await asyncio.to_thread(self.redis.stop)
        try:
            admin = await asyncpg.connect(PG_ADMIN_URL)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            finally:
                await admin.close()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def __aenter__(self) -> LocalCluster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ what runs

    def ctl(self, *args: str) -> str:
        exe = Path(sys.executable).with_name("supervisorctl")
        res = subprocess.run(
            [str(exe), "-c", str(self.conf), *args], capture_output=True, text=True, timeout=20
        )
        return res.stdout

    def pids(self) -> dict[str, int]:
        """Program name -> pid of what supervisord runs now (RUNNING only)."""
        out: dict[str, int] = {}
        for line in self.ctl("status").splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "RUNNING" and parts[2] == "pid":
                out[parts[0].split(":")[-1]] = int(parts[3].rstrip(","))
        return out

    def api_worker_pids(self, programs: dict[str, int] | None = None) -> list[int]:
        """`programs`: a `pids()` already read (each read runs supervisorctl)."""
        parent = (self.pids() if programs is None else programs).get("api")
        if parent is None:
            return []
        if self.api_workers == 1:
            return [parent]  # one worker: uvicorn serves in the process itself
        # uvicorn's spawn start method adds a resource tracker beside the workers.
        return [p for p in _children(parent) if "resource_tracker" not in _cmdline(p)]

    def manager_pids(self, programs: dict[str, int] | None = None) -> list[int]:
        """The processes that serve no request but run the others: supervisord (`anxin
        cluster` execs it, so it keeps `proc`'s pid; it reads every program's output
        through a pipe and writes the log files) and, with several API workers, uvicorn's
        manager process and its multiprocessing resource tracker."""
        out = [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []
        parent = (self.pids() if programs is None else programs).get("api")
        if parent is not None and self.api_workers > 1:
            out.append(parent)
            out += [p for p in _children(parent) if "resource_tracker" in _cmdline(p)]
        return out

    def log(self, name: str) -> str:
        p = self.conf.parent / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    async def ready(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as c:
                r = await c.get(f"{self.base_url}/readyz")
        except httpx.HTTPError:
            return False
        if r.status_code != 200:
            return False
        pids = self.pids()
        bridges = [n for n in pids if n.startswith("bridge-")]
        if len(bridges) < self.bridges:
            return False
        return (
            all("anxin bridge:" in self.log(f"{n}") for n in bridges)
            and len(self.api_worker_pids()) >= self.api_workers
        )

    async def wait_ready(self, timeout: float) -> float:  # noqa: ASYNC109
        return await wait_for(self.ready, timeout, "cluster ready", every=0.2)

    # ------------------------------------------------------------ faults

    def kill_bridge(self, n: int = 0) -> int:
        pid = self.pids()[f"bridge-{n}"]
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_api_worker(self) -> int:
        pid = self.api_worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    async def restart_mosquitto(self) -> None:
        await asyncio.to_thread(self.mosquitto.stop)
        await asyncio.to_thread(self.mosquitto.start)

    async def stop_redis(self) -> None:
        await asyncio.to_thread(self.redis.stop)

    async def start_redis(self) -> None:
        await asyncio.to_thread(self.redis.start)

    async def drop_database_connections(self) -> int:
        """What a PostgreSQL restart or fail-over does to the app: every connection to
        this run's database is cut (pg_terminate_backend on our own database only)."""
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            rows = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.db_name,
            )
        finally:
            await admin.close()
        return len(rows)

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.database_url)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _environ(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], ProcessLookupError | OSError)  # type: ignore[arg-type]
