"""One ffmpeg reader per camera: the sub-stream copied (never transcoded) into a rolling
buffer of one-second MPEG-TS segments on disk.

That one open stream serves everything: live HLS is the newest segments of the buffer,
a snapshot decodes the newest frame of the segment being written (tens of milliseconds,
instead of ~2 s for a cold RTSP connect and keyframe wait), and a clip collects the
segments around an alarm (the pre-roll is already in the buffer) and joins them with
`ffmpeg -c copy`. The buffer holds `video_buffer_s` seconds and is deleted as it rolls; it
is plain (not encrypted) because it lives less than a minute, so put `data_dir` on a
disk only the service can read (or a tmpfs).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av

from domain.video.cameras import CameraSource
from video.backend import CameraHealth, MediaError
from video.process import die_with_parent

log = logging.getLogger(__name__)

PLAYLIST = "buffer.m3u8"
SEGMENT = re.compile(r"^s(\d{1,12})\.ts$")
_CREDS = re.compile(r"//[^/@\s]*@")
FRESH_S = 5.0  # a camera whose newest frame is older than this is not reachable
LIVE_SEGMENTS = 3  # what the live playlist offers a viewer: the live edge, not the buffer


def redact(text: str) -> str:
    return _CREDS.sub("//***@", text)


@dataclass(frozen=True)
class Segment:
    name: str
    start: datetime
    duration: float

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration)

    @property
    def seq(self) -> int:
        m = SEGMENT.match(self.name)
        return int(m.group(1)) if m else -1


def parse_playlist(text: str) -> list[Segment]:
    out: list[Segment] = []
    start: datetime | None = None
    duration = 0.0
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            value = line.split(":", 1)[1]
            with contextlib.suppress(ValueError):
                start = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
        elif line.startswith("#EXTINF:"):
            with contextlib.suppress(ValueError):
                duration = float(line[8:].split(",", 1)[0])
        elif SEGMENT.match(line) and start is not None:
            out.append(Segment(line, start, duration))
            start = start + timedelta(seconds=duration)
    return out


def jpeg_of_newest_frame(paths: list[Path]) -> tuple[bytes, float] | None:
    """Decode the newest segment that has a frame; JPEG of its last frame + file mtime."""
    for path in paths:
        last = None
        try:
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    last = frame
        except (av.error.FFmpegError, OSError, ValueError):
            pass  # the segment being written ends mid-packet: keep what decoded
        if last is not None:
            buf = io.BytesIO()
            last.to_image().save(buf, "JPEG", quality=85)
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                mtime = time.time()
            return buf.getvalue(), mtime
    return None


class CameraRecorder:
    def __init__(
        self,
        source: CameraSource,
        root: Path,
        *,
        ffmpeg: str,
        segment_s: int,
        buffer_s: int,
    ) -> None:
        self.source = source
        self.dir = root / source.uid
        self.ffmpeg = ffmpeg
        self.segment_s = segment_s
        self.list_size = max(4, buffer_s // max(1, segment_s))
        self.proc: asyncio.subprocess.Process | None = None
        self.error = ""
        self.started_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # ------------------------------------------------------------ process

    def _command(self) -> list[str]:
        return [
            self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
            "-rtsp_transport", "tcp", "-timeout", "5000000",
            "-i", self.source.sub_url,
            "-map", "0:v:0", "-c", "copy",
            "-f", "hls", "-hls_time", str(self.segment_s),
            "-hls_list_size", str(self.list_size),
            "-hls_flags", "delete_segments+program_date_time+omit_endlist",
            "-hls_segment_filename", str(self.dir / "s%d.ts"),
            str(self.dir / PLAYLIST),
        ]  # fmt: skip

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"recorder-{self.source.uid}")

    async def _run(self) -> None:
        backoff = 1.0
        while not self._stopping:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True, exist_ok=True)
            self.started_at = time.time()
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    *self._command(),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    preexec_fn=die_with_parent,
                )
            except OSError as exc:
                self.error = f"cannot run ffmpeg: {exc}"
                log.error("camera %s: %s", self.source.camera_id, self.error)
                await asyncio.sleep(30)
                continue
            assert self.proc.stderr is not None
            async for raw in self.proc.stderr:
                line = redact(raw.decode(errors="replace").strip())
                if line:
                    self.error = line[:200]
            await self.proc.wait()
            if self._stopping:
                break
            ran = time.time() - self.started_at
            log.warning(
                "camera %s reader exited (%s): %s",
                self.source.camera_id,
                self.proc.returncode,
                self.error,
            )
            backoff = 1.0 if ran > 30 else min(backoff * 2, 30.0)
            await asyncio.sleep(backoff)

    async def stop(self) -> None:
        self._stopping = True
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ buffer

    def segments(self) -> list[Segment]:
        """Complete segments in the buffer, oldest first."""
        try:
            text = (self.dir / PLAYLIST).read_text()
        except (FileNotFoundError, UnicodeDecodeError):
            return []
        return parse_playlist(text)

    def _newest_files(self) -> list[Path]:
        """Segment files newest first, the one being written included."""
        try:
            names = [n for n in os.listdir(self.dir) if SEGMENT.match(n)]
        except FileNotFoundError:
            return []
        names.sort(key=lambda n: int(SEGMENT.match(n).group(1)), reverse=True)  # type: ignore[union-attr]
        return [self.dir / n for n in names[:3]]

    def health(self) -> CameraHealth:
        files = self._newest_files()
        last = None
        if files:
            with contextlib.suppress(FileNotFoundError):
                last = datetime.fromtimestamp(files[0].stat().st_mtime, UTC)
        running = self.proc is not None and self.proc.returncode is None
        fresh = last is not None and time.time() - last.timestamp() < FRESH_S
        return CameraHealth(running and fresh, last, "" if running and fresh else self.error)

    async def snapshot(self) -> tuple[bytes, datetime]:
        result = await asyncio.to_thread(jpeg_of_newest_frame, self._newest_files())
        if result is None:
            raise MediaError(self.error or "no frame buffered yet")
        data, mtime = result
        if time.time() - mtime > FRESH_S:
            raise MediaError(self.error or "camera stream stalled")
        return data, datetime.fromtimestamp(mtime, UTC)

    async def wait_ready(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        """Until the buffer has a complete segment (for tests and the demo)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.segments():
                return
            await asyncio.sleep(0.1)
        raise MediaError(self.error or "camera gave no video in time")

    async def clip(self, start: datetime, end: datetime, timeout_s: float = 15.0) -> bytes:
        """Collect the segments covering [start, end] as they are written (hard links, so
        the rolling buffer cannot delete them underneath), then join and cut them."""
        work = Path(tempfile.mkdtemp(prefix="clip-", dir=self.dir.parent))
        try:
            got: dict[str, Segment] = {}
            deadline = end.timestamp() + timeout_s
            while True:
                for seg in self.segments():
                    if seg.name in got or seg.end <= start or seg.start >= end:
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        os.link(self.dir / seg.name, work / seg.name)
                        got[seg.name] = seg
                if got and max(s.end for s in got.values()) >= end:
                    break
                if time.time() > deadline:
                    break
                await asyncio.sleep(min(0.5, self.segment_s / 2))
            if not got:
                raise MediaError(self.error or "nothing buffered for that time")
            ordered = sorted(got.values(), key=lambda s: s.seq)
            first = ordered[0].start
            offset = max(0.0, (start - first).total_seconds())
            length = (end - max(start, first)).total_seconds()
            listing = work / "list.txt"
            listing.write_text("".join(f"file '{s.name}'\n" for s in ordered))
            out = work / "clip.mp4"
            proc = await asyncio.create_subprocess_exec(
                self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
                "-f", "concat", "-safe", "0", "-ss", f"{offset:.3f}", "-i", str(listing),
                "-t", f"{length:.3f}", "-c", "copy", "-movflags", "+faststart",
                "-f", "mp4", str(out),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await proc.communicate()
            if proc.returncode != 0 or not out.exists():
                raise MediaError(f"joining the clip failed: {redact(err.decode()[-200:])}")
            return out.read_bytes()
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # ------------------------------------------------------------ live HLS

    def live_playlist(self) -> str:
        segs = self.segments()[-LIVE_SEGMENTS:]
        if not segs:
            raise MediaError(self.error or "no video buffered yet")
        target = max(1, int(max(s.duration for s in segs) + 0.999))
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{target}",
            f"#EXT-X-MEDIA-SEQUENCE:{segs[0].seq}",
        ]
        for s in segs:
            lines += [f"#EXTINF:{s.duration:.3f},", s.name]
        return "\n".join(lines) + "\n"

    def live_segment(self, name: str) -> bytes:
        """A segment of the live edge only: a live ticket does not open the whole buffer."""
        live = {s.name for s in self.segments()[-(LIVE_SEGMENTS + 2) :]}
        if name not in live:
            raise MediaError("segment not live")
        try:
            return (self.dir / name).read_bytes()
        except FileNotFoundError:
            raise MediaError("segment gone") from None
