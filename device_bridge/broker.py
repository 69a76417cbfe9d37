"""Brokers to run without infrastructure: an embedded amqtt, or a private tuned Mosquitto.

- `EmbeddedBroker`: amqtt 0.12.1 in this process, bound to 127.0.0.1 only. It is the
  no-server default (empty MQTT_URL). asyncio sets TCP_NODELAY on its accepted sockets.
  Limits: MQTT 3.1.1 only, no shared subscriptions (`$share/...`), no ACLs here.
- `start_private_mosquitto()`: the real broker on a free port with `set_tcp_nodelay true`
  (without it every QoS 1 hop waits ~40 ms for a delayed ACK), persistence off, and
  optionally per-device passwords and the `%u` ACL of docs/device-protocol.md.
  For benchmarks and for tests that want the tuned broker or real ACLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


class EmbeddedBroker:
    """amqtt in-process. `async with EmbeddedBroker() as b: ... b.url`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            # No authentication in the embedded broker: never expose it beyond loopback.
            raise ValueError("the embedded broker binds to loopback only")
        self.host = host
        self.port = port
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> EmbeddedBroker:
        from amqtt.broker import Broker  # imported late: it is heavy and only needed here

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        self._broker = Broker(config)
        await self._broker.start()
        if self.port == 0:
            server = self._broker._servers["default"]  # noqa: SLF001 - the bound port lives here
            self.port = server.instance.sockets[0].getsockname()[1]
        log.info("embedded MQTT broker on %s", self.url)
        return self

    async def stop(self) -> None:
        if self._broker is not None:
            with contextlib.suppress(Exception):
                await self._broker.shutdown()
            self._broker = None

    async def __aenter__(self) -> EmbeddedBroker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def mosquitto_acl(root: str = "anxin", bridge_user: str = "anxin-bridge") -> str:
    """The ACL of docs/device-protocol.md: each device only on its own topics."""
    base = f"{root}/v1/dev"
    return "\n".join(
        [
            f"user {bridge_user}",
            f"topic readwrite {base}/#",
            "",
            "# every other user is a device; %u = its username = its device id",
            f"pattern read {base}/%u/cmd",
            f"pattern write {base}/%u/ack",
            f"pattern write {base}/%u/evt",
            f"pattern readwrite {base}/%u/state",
            "",
        ]
    )


@dataclass
class PrivateMosquitto:
    port: int
    host: str = "127.0.0.1"
    workdir: Path = field(default_factory=Path)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self) -> str:
        p = self.workdir / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def __enter__(self) -> PrivateMosquitto:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> PrivateMosquitto:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)


def start_private_mosquitto(
    port: int | None = None,
    *,
    users: dict[str, str] | None = None,
    acl_root: str | None = None,
    binary: str = "mosquitto",
    extra_conf: str = "",
    timeout: float = 10.0,
) -> PrivateMosquitto:
    """Run a private Mosquitto on 127.0.0.1 and wait until it accepts connections.

    With `users` (username -> password), anonymous access is off and the passwords are
    hashed with `mosquitto_passwd`; with `acl_root` the per-device `%u` ACL applies too.
    """
    exe = shutil.which(binary)
    if exe is None:
        raise FileNotFoundError(f"{binary} not found on PATH")
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="anxin-mosquitto-"))
    lines = [
        f"listener {port} 127.0.0.1",
        "set_tcp_nodelay true",
        "persistence false",
        "max_queued_messages 10000",
        "max_packet_size 525312",  # protocol.MAX_MESSAGE_BYTES + room for topic and header
        f"log_dest file {workdir / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Started as root, mosquitto drops to user "mosquitto", which cannot read our
        # private (0700) temp dir: stay as the current user instead.
        lines.append(f"user {getpass.getuser()}")
    if users:
        pw = workdir / "passwd"
        pw.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
        subprocess.run(
            [shutil.which("mosquitto_passwd") or "mosquitto_passwd", "-U", str(pw)],
            check=True,
            capture_output=True,
        )
        lines += ["allow_anonymous false", f"password_file {pw}"]
    else:
        lines.append("allow_anonymous true")
    if acl_root is not None:
        acl = workdir / "acl"
        acl.write_text(mosquitto_acl(acl_root))
        lines.append(f"acl_file {acl}")
    conf = workdir / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n" + extra_conf)
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    broker = PrivateMosquitto(port=port, workdir=workdir, proc=proc)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err}{broker.log_text()}")
            try:
                wait_port("127.0.0.1", port, timeout=0.2)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
    except BaseException:
        broker.stop()
        raise
    return broker
