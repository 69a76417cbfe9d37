"""WebRTC through Janus (Debian's `janus` 1.1): one RTSP mountpoint per camera, pulled by
Janus from the camera's H.264 sub-stream and relayed to browsers without transcoding.

Janus is never exposed to viewers' signalling directly: the API checks the viewing
ticket and then speaks Janus's HTTP API on loopback, with a Janus signed token
(`token_auth` + `token_auth_secret`: "<expiry>,janus,<plugin>:<HMAC-SHA1>") valid until
the ticket expires, and the mountpoint's private pin. Only media (ICE/DTLS-SRTP) flows
from Janus to the browser. Each viewer session is destroyed when its ticket expires (and
Janus drops it within its session timeout if this process goes away first).

`video_janus = "managed"` runs Janus here on free loopback ports with a generated
configuration (tests, the demo, a one-box site); otherwise it is the URL of a Janus you
run with the same token secret and streaming admin key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from anxin.clock import clock
from domain.video.cameras import CameraSource
from video.backend import MediaError, WebRtcOffer
from video.process import die_with_parent

log = logging.getLogger(__name__)

PLUGIN = "janus.plugin.streaming"
LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
KEEPALIVE_S = 20.0
SESSION_TIMEOUT_S = 60


def signed_token(secret: str, expires_s: int, plugins: tuple[str, ...] = (PLUGIN,)) -> str:
    data = f"{expires_s},janus,{','.join(plugins)}"
    mac = hmac.new(secret.encode(), data.encode(), hashlib.sha1).digest()
    return f"{data}:{base64.b64encode(mac).decode()}"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ManagedJanus:
    """Janus run by this process: configuration written to `workdir`, loopback HTTP only,
    every plugin and transport but the streaming plugin and HTTP disabled."""

    def __init__(self, workdir: Path, token_secret: str, admin_key: str) -> None:
        self.workdir = workdir
        self.token_secret = token_secret
        self.admin_key = admin_key
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/janus"

    def _write_config(self) -> None:
        w = self.workdir
        shutil.rmtree(w, ignore_errors=True)
        w.mkdir(parents=True)
        plugins = sorted(p.name for p in (LIB / "plugins").glob("libjanus_*.so"))
        transports = sorted(p.name for p in (LIB / "transports").glob("libjanus_*.so"))
        (w / "janus.jcfg").write_text(f"""
general: {{
    configs_folder = "{w}"
    plugins_folder = "{LIB / "plugins"}"
    transports_folder = "{LIB / "transports"}"
    events_folder = "{LIB / "events"}"
    loggers_folder = "{LIB / "loggers"}"
    log_to_stdout = true
    debug_level = 3
    session_timeout = {SESSION_TIMEOUT_S}
    token_auth = true
    token_auth_secret = "{self.token_secret}"
    server_name = "anxin"
    protected_folders = ["/bin", "/boot", "/dev", "/etc", "/initrd", "/lib", "/lib32", "/lib64", "/proc", "/sbin", "/sys", "/usr", "/var"]
}}
plugins: {{ disable = "{",".join(p for p in plugins if "streaming" not in p)}" }}
transports: {{ disable = "{",".join(t for t in transports if "http" not in t)}" }}
events: {{ broadcast = false }}
loggers: {{ disable = "libjanus_jsonlog.so" }}
media: {{ rtp_port_range = "40000-49999" }}
nat: {{ nice_debug = false }}
""")  # noqa: E501
        (w / "janus.transport.http.jcfg").write_text(f"""
general: {{ json = "compact", base_path = "/janus", http = true, port = {self.port}, ip = "127.0.0.1", https = false }}
admin: {{ admin_http = false }}
""")  # noqa: E501
        (w / "janus.plugin.streaming.jcfg").write_text(f"""
general: {{ admin_key = "{self.admin_key}", rtp_port_range = "50000-59999", events = false }}
""")

    async def start(self) -> None:
        binary = shutil.which("janus")
        if binary is None:
            raise MediaError("janus is not installed (apt-get install janus)")
        self.port = _free_port()
        self._write_config()
        self.proc = await asyncio.create_subprocess_exec(
            binary, "--config", str(self.workdir / "janus.jcfg"),
            "--configs-folder", str(self.workdir),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=open(self.workdir / "janus.log", "wb"),  # noqa: SIM115, ASYNC230
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    break
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.get(f"{self.url}/info")
                    if r.status_code == 200:
                        return
                await asyncio.sleep(0.2)
        tail = (self.workdir / "janus.log").read_text(errors="replace")[-800:]
        await self.stop()
        raise MediaError(f"janus did not start: {tail}")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.proc = None


@dataclass
class Viewer:
    session: int
    handle: int
    camera_id: int
    expires_at_s: float
    token: str
    last_keepalive: float = field(default_factory=time.monotonic)


class JanusGateway:
    def __init__(
        self, url: str, token_secret: str, admin_key: str, managed: ManagedJanus | None = None
    ) -> None:
        self.url = url
        self.token_secret = token_secret
        self.admin_key = admin_key
        self.managed = managed
        self.http: httpx.AsyncClient | None = None
        self.viewers: dict[str, Viewer] = {}
        self.pins: dict[int, str] = {}
        self.mounted: dict[int, CameraSource] = {}
        self._reaper: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> JanusGateway:
        token_secret = settings.video_janus_token_secret or secrets.token_urlsafe(24)
        admin_key = settings.video_janus_admin_key or secrets.token_urlsafe(24)
        if settings.video_janus == "managed":
            managed = ManagedJanus(Path(settings.data_dir) / "janus", token_secret, admin_key)
            return cls("", token_secret, admin_key, managed)
        return cls(settings.video_janus.rstrip("/"), token_secret, admin_key)

    async def start(self) -> None:
        if self.managed is not None:
            await self.managed.start()
            self.url = self.managed.url
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(10, read=35))
        self._reaper = asyncio.create_task(self._reap())

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for sid in list(self.viewers):
            with contextlib.suppress(Exception):
                await self.close(sid)
        if self.http is not None:
            await self.http.aclose()
        if self.managed is not None:
            await self.managed.stop()

    # ------------------------------------------------------------ Janus HTTP API

    def _token(self, ttl_s: float = 60) -> str:
        return signed_token(self.token_secret, int(time.time() + ttl_s))

    async def _post(
        self, path: str, body: dict[str, Any], token: str | None = None
    ) -> dict[str, Any]:
        assert self.http is not None
        body = {**body, "transaction": secrets.token_hex(6), "token": token or self._token()}
        try:
            r = await self.http.post(f"{self.url}{path}", json=body)
        except httpx.HTTPError as exc:
            raise MediaError(f"janus unreachable: {exc}") from None
        data = r.json()
        if data.get("janus") == "error":
            raise MediaError(f"janus: {data.get('error', {}).get('reason', 'error')}")
        return data

    async def _session(self, token: str | None = None) -> tuple[int, int]:
        sid = (await self._post("", {"janus": "create"}, token))["data"]["id"]
        hid = (await self._post(f"/{sid}", {"janus": "attach", "plugin": PLUGIN}, token))["data"][
            "id"
        ]
        return sid, hid

    async def _destroy(self, sid: int, token: str | None = None) -> None:
        with contextlib.suppress(MediaError):
            await self._post(f"/{sid}", {"janus": "destroy"}, token)

    async def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        """A synchronous streaming-plugin request on a throwaway session."""
        sid, hid = await self._session()
        try:
            data = await self._post(f"/{sid}/{hid}", {"janus": "message", "body": body})
            result = data.get("plugindata", {}).get("data", {})
            if result.get("error"):
                raise MediaError(f"janus streaming: {result['error']}")
            return result
        finally:
            await self._destroy(sid)

    # ------------------------------------------------------------ mountpoints

    async def sync(self, sources: list[CameraSource]) -> None:
        wanted = {s.camera_id: s for s in sources}
        for cid in list(self.mounted):
            if cid not in wanted or wanted[cid] != self.mounted[cid]:
                with contextlib.suppress(MediaError):
                    await self._request(
                        {
                            "request": "destroy",
                            "id": cid,
                            "secret": self.admin_key,
                            "permanent": False,
                        }
                    )
                del self.mounted[cid]
                self.pins.pop(cid, None)
        missing = [s for cid, s in wanted.items() if cid not in self.mounted]
        # Each create connects to the camera (a dead one takes the connect timeout): in
        # parallel, a few at a time.
        gate = asyncio.Semaphore(8)

        async def one(source: CameraSource) -> None:
            async with gate:
                await self._mount(source)

        await asyncio.gather(*(one(s) for s in missing))

    async def _mount(self, source: CameraSource) -> None:
        cid = source.camera_id
        pin = secrets.token_urlsafe(12)
        with contextlib.suppress(MediaError):  # an earlier run's mountpoint: replace it
            await self._request({"request": "destroy", "id": cid, "secret": self.admin_key})
        url, user, password = _split(source.sub_url)
        try:
            await self._request(
                {
                    "request": "create",
                    "admin_key": self.admin_key,
                    "type": "rtsp",
                    "id": cid,
                    "name": f"camera-{source.uid}",
                    "url": url,
                    "rtsp_user": user,
                    "rtsp_pwd": password,
                    "audio": False,
                    "video": True,
                    # Connect now (DESCRIBE + SETUP): an offer needs the camera's SDP. An
                    # unreachable camera fails here and is retried at the next sync.
                    "rtsp_failcheck": True,
                    "rtsp_reconnect_delay": 3,
                    "rtsp_conn_timeout": 3,
                    "is_private": True,
                    "secret": self.admin_key,
                    "pin": pin,
                    "permanent": False,
                }
            )
        except MediaError as exc:
            log.warning("janus mountpoint for camera %s: %s", cid, exc)
            return
        self.mounted[cid] = source
        self.pins[cid] = pin

    # ------------------------------------------------------------ viewers

    async def offer(self, camera_id: int, expires_at_s: float) -> WebRtcOffer:
        pin = self.pins.get(camera_id)
        if pin is None:
            raise MediaError("camera not mounted in janus")
        token = signed_token(self.token_secret, int(expires_at_s) + 1)
        sid, hid = await self._session(token)
        try:
            await self._post(
                f"/{sid}/{hid}",
                {"janus": "message", "body": {"request": "watch", "id": camera_id, "pin": pin}},
                token,
            )
            jsep = await self._wait_jsep(sid, token)
        except BaseException:
            await self._destroy(sid, token)
            raise
        session_id = secrets.token_urlsafe(18)
        self.viewers[session_id] = Viewer(sid, hid, camera_id, expires_at_s, token)
        return WebRtcOffer(session_id, jsep["sdp"])

    async def _wait_jsep(self, sid: int, token: str, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        assert self.http is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = await self.http.get(
                    f"{self.url}/{sid}", params={"maxev": 5, "token": token}, timeout=timeout
                )
            except httpx.TimeoutException:
                continue
            except httpx.HTTPError as exc:
                raise MediaError(f"janus unreachable: {exc}") from None
            events = r.json()
            for event in events if isinstance(events, list) else [events]:
                data = event.get("plugindata", {}).get("data", {})
                if data.get("error"):
                    raise MediaError(f"janus streaming: {data['error']}")
                if event.get("jsep"):
                    return event["jsep"]
        raise MediaError("janus sent no offer in time")

    def _viewer(self, session_id: str, camera_id: int) -> Viewer:
        viewer = self.viewers.get(session_id)
        if viewer is None or viewer.camera_id != camera_id:
            raise MediaError("no such viewing session")
        return viewer

    async def answer(self, session_id: str, camera_id: int, sdp: str) -> None:
        viewer = self._viewer(session_id, camera_id)
        await self._post(
            f"/{viewer.session}/{viewer.handle}",
            {
                "janus": "message",
                "body": {"request": "start"},
                "jsep": {"type": "answer", "sdp": sdp},
            },
            viewer.token,
        )

    async def close(self, session_id: str) -> None:
        viewer = self.viewers.pop(session_id, None)
        if viewer is not None:
            await self._destroy(viewer.session, viewer.token)

    async def _reap(self) -> None:
        """End sessions whose ticket expired; keep the others alive."""
        while True:
            await asyncio.sleep(1.0)
            now = clock.time()
            for session_id, viewer in list(self.viewers.items()):
                try:
                    if viewer.expires_at_s <= now:
                        await self.close(session_id)
                    elif time.monotonic() - viewer.last_keepalive > KEEPALIVE_S:
                        viewer.last_keepalive = time.monotonic()
                        await self._post(f"/{viewer.session}", {"janus": "keepalive"}, viewer.token)
                except MediaError:
                    self.viewers.pop(session_id, None)
                except Exception:
                    log.exception("janus viewer %s", session_id)


def _split(url: str) -> tuple[str, str, str]:
    """Janus takes the RTSP credentials apart from the URL."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return (
        urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")),
        unquote(parts.username or ""),
        unquote(parts.password or ""),
    )
