"""Scale-out parts on loopback for tests (docs/deployment.md): a three-node Redis Cluster
and two bridged Mosquittos (a district broker bridged to the central one), each in a
private directory on private ports, stopped and removed afterwards."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from device_bridge.broker import PrivateMosquitto, start_private_mosquitto, wait_port

CLUSTER_BINARIES = ("redis-server", "redis-cli", "mosquitto")


def need_binaries() -> None:
    """Skip without the Debian binaries, except in CI (scripts/test installs them)."""
    missing = [b for b in CLUSTER_BINARIES if shutil.which(b) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the scale-out tests; missing {missing}")
        pytest.skip(f"missing {missing}")


@dataclass
class RedisClusterNodes:
    ports: list[int]
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """One node is enough: the cluster client learns the rest."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _cli(port: int, *args: str) -> str:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=30
    )
    return out.stdout + out.stderr


@contextlib.contextmanager
def redis_cluster(nodes: int = 3, timeout: float = 20.0) -> Iterator[RedisClusterNodes]:
    """`nodes` masters (no replicas) on loopback: `redis-server --cluster-enabled yes`, then
    `redis-cli --cluster create`; yields once every node reports `cluster_state:ok`."""
    workdir = Path(tempfile.mkdtemp(prefix="anxin-redis-cluster-"))
    cluster = RedisClusterNodes(ports=[_cluster_port() for _ in range(nodes)], workdir=workdir)
    try:
        for port in cluster.ports:
            d = workdir / str(port)
            d.mkdir()
            cluster.procs.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(d / "nodes.conf"),
                        "--cluster-node-timeout",
                        "2000",
                        "--dir",
                        str(d),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--logfile",
                        str(d / "redis.log"),
                    ],  # fmt: skip
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in cluster.ports:
            wait_port("127.0.0.1", port, timeout=10)
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in cluster.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed: {created.stdout}{created.stderr}"
            )
        deadline = time.monotonic() + timeout
        while not all("cluster_state:ok" in _cli(p, "cluster", "info") for p in cluster.ports):
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        yield cluster
    finally:
        cluster.stop()


def bridge_conf(central_port: int, root: str, login: tuple[str, str] | None = None) -> str:
    """The district broker's bridge to the central one: events, acks and state go up,
    commands come down; QoS 1 both ways, a persistent bridge session (cleansession false)
    so nothing in flight is lost across a reconnect, loop detection (try_private). `login`:
    the bridge's account on the central broker (one holding the server's topics)."""
    prefix = f"{root}/v1/dev/"
    auth = [f"remote_username {login[0]}", f"remote_password {login[1]}"] if login else []
    return "\n".join(
        [
            "connection district-to-central",
            f"address 127.0.0.1:{central_port}",
            *auth,
            "bridge_protocol_version mqttv311",
            "try_private true",
            "cleansession false",
            "restart_timeout 1 5",
            f"topic +/evt out 1 {prefix} {prefix}",
            f"topic +/ack out 1 {prefix} {prefix}",
            f"topic +/state out 1 {prefix} {prefix}",
            f"topic +/cmd in 1 {prefix} {prefix}",
            "",
        ]
    )


@contextlib.contextmanager
def bridged_mosquittos(root: str) -> Iterator[tuple[PrivateMosquitto, PrivateMosquitto]]:
    """(central, district): the server connects to the central broker, the community's
    devices to the district broker, which bridges their topics under `root`."""
    central = start_private_mosquitto()
    try:
        district = start_private_mosquitto(extra_conf=bridge_conf(central.port, root))
        try:
            yield central, district
        finally:
            district.stop()
    finally:
        central.stop()
