"""Brokers to run without infrastructure: an embedded amqtt, or a private tuned Mosquitto.

- `EmbeddedBroker`: amqtt 0.12.1 in this process, bound to 127.0.0.1 only. It is the
  no-server default (empty MQTT_URL). asyncio sets TCP_NODELAY on its accepted sockets.
  Every client authenticates (`BrokerAccess`: the server with a password made at start,
  each device with its own secret, checked against the database at each connect; anonymous,
  disabled and revoked refused) and the per-device topic ACL of the production Mosquitto
  applies (docs/device-protocol.md section 1). Limits: MQTT 3.1.1 only, no shared
  subscriptions (`$share/...`).
- `start_private_mosquitto()`: the real broker on a free port with `set_tcp_nodelay true`
  (without it every QoS 1 hop waits ~40 ms for a delayed ACK), persistence off, and
  optionally per-device passwords and the `%u` ACL of docs/device-protocol.md.
  For benchmarks and for tests that want the tuned broker or real ACLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hmac
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from .protocol import DEVICE_ID_PATTERN
from .rejections import Rejections

DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)

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


SERVER_USER = "anxin-bridge"
DEVICE_CLIENT_PREFIX = "dev-"  # a device connects with client id "dev-<its device id>"


def device_client_id(device_id: str) -> str:
    return f"{DEVICE_CLIENT_PREFIX}{device_id}"


DevicePassword = Callable[[str], Awaitable["str | None"]]


@dataclass
class BrokerAccess:
    """Who may connect and what each may touch: the production ACL, in Python.

    The server (`server_user`) reads and writes the device topics under `root` and nothing
    else; a device (username = its device id, password = its secret, client id
    `dev-<id>`) subscribes to and receives only its own `cmd`, publishes only its own
    `ack`, `evt` and `state`, and may leave a last will only on its own `state`.
    `device_password(id)` answers the current secret of an *active* device, None otherwise.
    """

    root: str
    server_password: str
    device_password: DevicePassword
    server_user: str = SERVER_USER
    refused: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.reject = Rejections(self.refused, log)

    def _base(self) -> str:
        return f"{self.root}/v1/dev/"

    async def authenticate(
        self,
        username: str | None,
        password: str | bytes | None,
        client_id: str | None,
        will: str | None,
    ) -> bool:
        if isinstance(password, bytes):
            password = password.decode(errors="replace")
        if not username or not password:
            return self._refuse("anonymous", username)
        if username == self.server_user:
            ok = hmac.compare_digest(password.encode(), self.server_password.encode())
            return ok or self._refuse("bad_password", username)
        if not DEVICE_ID_RE.fullmatch(username):
            return self._refuse("bad_username", username)
        if client_id != device_client_id(username):
            return self._refuse("wrong_client_id", username)
        if will is not None and will != f"{self._base()}{username}/state":
            return self._refuse("foreign_will", username)
        secret = await self.device_password(username)
        if secret is None:
            return self._refuse("unknown_or_inactive", username)
        ok = hmac.compare_digest(password.encode(), secret.encode())
        return ok or self._refuse("bad_password", username)

    def permits(self, username: str | None, topic: str | None, action: str) -> bool:
        if not username or not topic:
            return False
        base = self._base()
        if username == self.server_user:
            return topic.startswith(base)
        own = f"{base}{username}/"
        if action in ("subscribe", "receive"):
            return topic == f"{own}cmd"
        if action == "publish":
            return topic in (f"{own}ack", f"{own}evt", f"{own}state")
        return False

    def _refuse(self, why: str, username: str | None) -> bool:
        self.reject(f"login_{why}", username)
        return False


# amqtt builds plugins from dotted class paths and plain config, so the plugins find their
# BrokerAccess here, under a key that is in their config.
_ACCESS: dict[str, BrokerAccess] = {}


class _SnapshotDict(dict[Any, Any]):
    """A dict whose iteration walks a copy of its keys or items.

    amqtt 0.12.1 walks its subscription table with awaits inside the loop (a connecting
    client's retained messages, a session's clean-up, the broadcast loop), so a subscribe
    from another client in between raised "dictionary changed size during iteration": the
    connecting client's session task died after its CONNACK and its SUBSCRIBE was never
    answered (seen as a test device that never came up)."""

    def __iter__(self) -> Any:
        return iter(list(super().keys()))

    def keys(self) -> Any:
        return list(super().keys())

    def items(self) -> Any:
        return list(super().items())

    def values(self) -> Any:
        return list(super().values())


def _guarded_broker_class() -> type:
    """amqtt's Broker, authenticating a CONNECT before it touches any session.

    amqtt 0.12.1 deletes (clean session) or takes over the session of a client id before it
    authenticates the connection, so an unauthenticated client could cut a device off by
    its client id. Here the CONNECT is authenticated first; the rest is amqtt's own session
    set-up, unchanged. Its subscription table is iterated over snapshots (_SnapshotDict), and
    a connecting client gets the retained messages of its own subscriptions only.
    """
    from amqtt.broker import Broker
    from amqtt.errors import MQTTError
    from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
    from amqtt.utils import gen_client_id

    class GuardedBroker(Broker):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            table: dict[str, list[tuple[Any, int]]] = self._subscriptions  # type: ignore[has-type]
            self._subscriptions = _SnapshotDict(table)

        async def _publish_retained_messages_for_subscription(
            self, subscription: tuple[str, int], session: Any
        ) -> None:
            # amqtt calls this on connect for every filter in the broker, anyone's: a
            # device then received every retained message those matched (other devices'
            # states). Only the connecting session's own filters are served.
            holders = self._subscriptions.get(subscription[0], ())
            if any(s.client_id == session.client_id for s, _ in holders):
                await super()._publish_retained_messages_for_subscription(subscription, session)

        async def _initialize_client_session(
            self, reader: Any, writer: Any, remote_address: str, remote_port: int
        ) -> tuple[Any, Any]:
            handler, session = await BrokerProtocolHandler.init_from_connect(
                reader, writer, self.plugins_manager
            )
            if not await self._authenticate(session, None):
                session.parent = 0
                handler.attach(session, reader, writer)
                with contextlib.suppress(Exception):
                    await handler.mqtt_connack_authorize(False)
                await writer.close()
                raise MQTTError("not authorized")
            if session.clean_session:
                if session.client_id:
                    await self._delete_session(session.client_id)
                else:
                    session.client_id = gen_client_id()
                session.parent = 0
            elif session.client_id in self._sessions:
                existing, _ = self._sessions[session.client_id]
                for attr in (
                    "will_flag",
                    "will_message",
                    "will_topic",
                    "will_qos",
                    "keep_alive",
                    "username",
                    "password",
                ):
                    setattr(existing, attr, getattr(session, attr))
                session = existing
                session.parent = 1
            else:
                session.parent = 0
            return handler, session

    return GuardedBroker


class AnxinAuthPlugin(BaseAuthPlugin):
    @dataclass
    class Config:
        access: str = ""

    async def authenticate(self, *, session: Any) -> bool:
        access = _ACCESS.get(self.config.access)
        if access is None or session is None:
            return False
        will = session.will_topic if session.will_flag else None
        return await access.authenticate(
            session.username, session.password, session.client_id, will
        )


class AnxinTopicPlugin(BaseTopicPlugin):
    @dataclass
    class Config:
        access: str = ""

    async def topic_filtering(
        self, *, session: Any = None, topic: str | None = None, action: Any = None
    ) -> bool:
        access = _ACCESS.get(self.config.access)
        if access is None or session is None:
            return False
        kind = str(action.value if action else "")
        allowed = access.permits(session.username, topic, kind)
        if not allowed and kind != "receive":  # receive: a filter that merely matched wider
            access.reject(f"acl_{kind}", session.username, topic)
        return allowed


class EmbeddedBroker:
    """amqtt in-process. `async with EmbeddedBroker(access=...) as b: ... b.url`.

    `url` carries no credentials (what devices and the demo are told); `server_url` is the
    server's own login. Without `access` every client is refused (there is no open mode).
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, access: BrokerAccess | None = None
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            # An in-process broker of a demo: never exposed beyond loopback.
            raise ValueError("the embedded broker binds to loopback only")
        self.host = host
        self.port = port
        self.access = access
        self._key = secrets.token_hex(8)
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def server_url(self) -> str:
        if self.access is None:
            return self.url
        user, pw = (
            quote(self.access.server_user, safe=""),
            quote(self.access.server_password, safe=""),
        )
        return f"mqtt://{user}:{pw}@{self.host}:{self.port}"

    async def disconnect_device(self, device_id: str) -> bool:
        """Cut a device's live session (its credentials changed): it must log in again."""
        if self._broker is None:
            return False
        found = False
        for client_id, (session, handler) in list(self._broker._sessions.items()):  # noqa: SLF001
            if client_id == device_client_id(device_id) or session.username == device_id:
                found = True
                with contextlib.suppress(Exception):
                    await handler.handle_connection_closed()
                with contextlib.suppress(Exception):
                    if handler.writer is not None:
                        await handler.writer.close()
        return found

    async def start(self) -> EmbeddedBroker:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        if self.access is not None:
            _ACCESS[self._key] = self.access
        plugins = {
            f"{__name__}.AnxinAuthPlugin": {"access": self._key},
            f"{__name__}.AnxinTopicPlugin": {"access": self._key},
        }
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": plugins,
        }
        self._broker = _guarded_broker_class()(config)
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
        _ACCESS.pop(self._key, None)

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


DYNSEC_PLUGIN_PATHS = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
)


def dynsec_plugin_path() -> str:
    """Mosquitto's dynamic-security plugin (Debian's mosquitto package ships it)."""
    for path in (os.environ.get("ANXIN_DYNSEC_PLUGIN", ""), *DYNSEC_PLUGIN_PATHS):
        if path and Path(path).exists():
            return path
    raise FileNotFoundError("mosquitto_dynamic_security.so not found (Debian package mosquitto)")


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
    dynsec_admin: tuple[str, str] | None = None,
    binary: str = "mosquitto",
    extra_conf: str = "",
    timeout: float = 10.0,
) -> PrivateMosquitto:
    """Run a private Mosquitto on 127.0.0.1 and wait until it accepts connections.

    With `users` (username -> password), anonymous access is off and the passwords are
    hashed with `mosquitto_passwd`; with `acl_root` the per-device `%u` ACL applies too.
    With `dynsec_admin` (username, password) it runs the dynamic-security plugin instead,
    initialised by `mosquitto_ctrl dynsec init` with that admin (the server's account):
    anonymous access off, every other login and ACL made at run time over $CONTROL.
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
        # A bridge confirms an event once it is claimed: this many unconfirmed events per
        # client is how many one bridge process can batch at once (docs/performance.md).
        "max_inflight_messages 1000",
        "max_packet_size 525312",  # protocol.MAX_MESSAGE_BYTES + room for topic and header
        f"log_dest file {workdir / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Started as root, mosquitto drops to user "mosquitto", which cannot read our
        # private (0700) temp dir: stay as the current user instead.
        lines.append(f"user {getpass.getuser()}")
    if dynsec_admin is not None:
        state = workdir / "dynamic-security.json"
        ctrl = shutil.which("mosquitto_ctrl") or "mosquitto_ctrl"
        subprocess.run(
            [ctrl, "dynsec", "init", str(state), *dynsec_admin],
            check=True,
            capture_output=True,
        )
        lines += [
            "allow_anonymous false",
            f"plugin {dynsec_plugin_path()}",
            f"plugin_opt_config_file {state}",
        ]
    elif users:
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
    if acl_root is not None and dynsec_admin is None:
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
