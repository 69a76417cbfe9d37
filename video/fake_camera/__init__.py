"""Start the fake gate camera (rtsp_server.py, run with Debian's python3) from Python:
tests, the demo and bench/video.py use it.

    async with fake_camera(user="admin", password="x") as cam:
        cam.sub_url  # rtsp://127.0.0.1:PORT/sub (no credentials in it)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from video.process import die_with_parent

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
LOG_DIR = Path(tempfile.gettempdir())  # python3-gi is a Debian package, not in the venv
DEBIAN_PACKAGES = (
    "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly"
)


class FakeCameraUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class FakeCamera:
    host: str
    port: int
    user: str
    password: str

    @property
    def main_url(self) -> str:
        return f"rtsp://{self.host}:{self.port}/main"

    @property
    def sub_url(self) -> str:
        return f"rtsp://{self.host}:{self.port}/sub"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> bool:
    probe = (
        "import gi; gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
        "assert Gst.ElementFactory.find('x264enc')"
    )
    try:
        return (
            subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=20).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.asynccontextmanager
async def fake_camera(
    *, user: str = "", password: str = "", pattern: str = "smpte", fps: int = 15
) -> AsyncIterator[FakeCamera]:
    port = free_port()
    args = [
        SYSTEM_PYTHON,
        str(SERVER),
        "--port",
        str(port),
        "--pattern",
        pattern,
        "--fps",
        str(fps),
    ]
    if user:
        args += ["--user", user, "--password", password]
    try:
        log_file = open(LOG_DIR / f"fake-camera-{port}.log", "wb")  # noqa: SIM115, ASYNC230
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=log_file, preexec_fn=die_with_parent
        )
    except OSError as exc:
        raise FakeCameraUnavailable(f"{SYSTEM_PYTHON}: {exc}") from None
    try:
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
        except TimeoutError:
            line = b""
        if not line.startswith(b"READY"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 2)
            err = (LOG_DIR / f"fake-camera-{port}.log").read_bytes()[-2000:]
            raise FakeCameraUnavailable(
                f"fake camera did not start ({err.decode(errors='replace').strip()[-300:]}); "
                f"apt-get install {DEBIAN_PACKAGES}"
            )
        yield FakeCamera("127.0.0.1", port, user, password)
    finally:
        log_file.close()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
