"""The video service of a process: owns the media backend, keeps it pulling the enabled
cameras, takes snapshots and clips when access events and alarms are announced, writes
camera health, and purges captures past their retention.

It listens on the bus (`access.event`, `alarm.raised`, `video.camera.changed`), so the
bridge knows nothing of cameras. Several processes may hear the same announcement: the
capture row's unique key (domain.video.captures) lets one of them take it. Run the media
backend in one process per site (the one with `ANXIN_VIDEO_BACKEND` set).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from anxin.bus import run_subscriber
from anxin.channels import ACCESS_EVENT, ALARM_RAISED, VIDEO_CAMERA_CHANGED
from anxin.clock import utcnow
from anxin.runtime import Key, Runtime
from anxin.scheduler import JobContext, registry
from auth.permissions import Action, Principal, scoped_row
from domain.video import cameras, captures, tickets, viewing
from domain.video.cameras import active_sources, set_health
from domain.video.store import capture_store
from domain.video.tickets import Ticket
from models import AlarmKind, Camera, CaptureKind, VideoCapture
from video.backend import (
    MediaBackend,
    MediaError,
    NoMediaBackend,
    NoMediaServer,
    WebRtcOffer,
)

log = logging.getLogger(__name__)

HEALTH_EVERY_S = 10.0
RESYNC_EVERY_S = 60.0
PURGE_JOB = "purge_video_captures"


class NotWatchable(MediaError):
    """Browsers cannot play this camera's sub-stream (H.265) without transcoding."""


def build_backend(settings: Any) -> MediaBackend:
    kind = settings.video_backend.strip().lower()
    if kind in ("", "none"):
        return NoMediaBackend()
    if kind == "local":
        from video.local import LocalMediaBackend

        janus = None
        if settings.video_janus:
            from video.janus import JanusGateway

            janus = JanusGateway.from_settings(settings)
        return LocalMediaBackend(settings, janus=janus)
    raise RuntimeError(f"ANXIN_VIDEO_BACKEND={kind!r}: expected '' or 'local' (docs/video.md)")


class VideoService:
    def __init__(self, runtime: Runtime, backend: MediaBackend) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.backend = backend
        self.keyring = runtime.keyring
        self.store = capture_store(self.settings)
        self._tasks: list[asyncio.Task[Any]] = []
        self._captures: set[asyncio.Task[Any]] = set()
        self._resync = asyncio.Event()

    @property
    def configured(self) -> bool:
        return self.backend.configured

    async def start(self) -> None:
        await self.backend.start()
        if not self.backend.configured:
            return
        await self.sync()
        bus = self.runtime.bus
        self._tasks = [
            asyncio.create_task(run_subscriber(bus, ACCESS_EVENT, self._on_access_event)),
            asyncio.create_task(run_subscriber(bus, ALARM_RAISED, self._on_alarm)),
            asyncio.create_task(run_subscriber(bus, VIDEO_CAMERA_CHANGED, self._on_camera_changed)),
            asyncio.create_task(self._health_loop()),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._captures]:
            task.cancel()
        for task in [*self._tasks, *self._captures]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.backend.stop()

    async def sync(self) -> None:
        await self.backend.sync(await active_sources(self.keyring))

    # ------------------------------------------------------------ live view (both adapters)

    async def open_live(
        self, principal: Principal, camera_id: int, reason: str
    ) -> tuple[Ticket, Camera, list[str]]:
        """A viewing ticket (audited with `reason`) and the protocols to use with it.
        NoMediaServer without a backend; NotWatchable for a stream browsers cannot play."""
        camera = await cameras.get_camera(principal, camera_id)  # not found before 503
        if not self.backend.configured:
            raise NoMediaServer(NoMediaBackend.MESSAGE)
        protocols = self.backend.live_protocols(camera.id) if camera.enabled else []
        if camera.enabled and not protocols:
            raise NotWatchable("the sub-stream is not H.264")
        s = self.settings
        ticket, camera = await viewing.issue_live_ticket(
            principal, camera_id, reason, tickets.ticket_key(s), s.video_ticket_ttl_s
        )
        return ticket, camera, protocols

    def check_ticket(self, token: str, camera_id: int, viewer_id: int | None = None) -> Ticket:
        """The ticket, if genuine, unexpired, for this camera (and, for WebRTC signalling,
        issued to this viewer); TicketError otherwise."""
        ticket = tickets.verify(tickets.ticket_key(self.settings), token, camera_id)
        if viewer_id is not None and ticket.viewer_id != viewer_id:
            raise tickets.TicketError("ticket issued to someone else")
        return ticket

    async def _viewer_may_watch(self, token: str, camera_id: int, principal: Principal) -> Ticket:
        """The ticket is theirs and for this camera, and they still may watch it (a role
        taken away since the ticket was issued counts at once)."""
        ticket = self.check_ticket(token, camera_id, principal.id)
        await scoped_row(principal, Action.VIDEO_LIVE, Camera, camera_id, "camera")
        return ticket

    async def webrtc_start(self, token: str, camera_id: int, principal: Principal) -> WebRtcOffer:
        ticket = await self._viewer_may_watch(token, camera_id, principal)
        return await self.backend.webrtc_offer(camera_id, ticket.expires_at_s)

    async def webrtc_answer(
        self, token: str, camera_id: int, principal: Principal, session_id: str, sdp: str
    ) -> None:
        await self._viewer_may_watch(token, camera_id, principal)
        await self.backend.webrtc_answer(session_id, camera_id, sdp)

    async def webrtc_stop(
        self, token: str, camera_id: int, principal: Principal, session_id: str
    ) -> None:
        self.check_ticket(token, camera_id, principal.id)
        await self.backend.webrtc_close(session_id)

    async def wait_idle(self) -> None:
        """Until every capture under way is done (tests, the benchmark)."""
        while self._captures:
            await asyncio.gather(*list(self._captures), return_exceptions=True)

    # ------------------------------------------------------------ events

    async def _on_camera_changed(self, _: str, message: dict[str, Any]) -> None:
        self._resync.set()

    async def _on_access_event(self, _: str, message: dict[str, Any]) -> None:
        rows = await captures.plan_access_event(
            int(message["id"]),
            int(message["community_id"]),
            message.get("device_id"),
            datetime.now(UTC),
        )
        self._spawn(rows)

    async def _on_alarm(self, _: str, message: dict[str, Any]) -> None:
        try:
            kind = AlarmKind(str(message.get("kind")))
        except ValueError:
            return
        rows = await captures.plan_alarm(
            int(message["alarm_id"]),
            int(message["community_id"]),
            message.get("device_id"),
            kind,
            datetime.now(UTC),
            self.settings,
        )
        self._spawn(rows)

    def _spawn(self, rows: list[VideoCapture]) -> None:
        for row in rows:
            task = asyncio.create_task(self.capture(row))
            self._captures.add(task)
            task.add_done_callback(self._captures.discard)

    async def capture(self, row: VideoCapture) -> VideoCapture:
        """Take what the row asks for and store it encrypted; failures are written down."""
        try:
            if row.kind == CaptureKind.SNAPSHOT:
                data, taken_at = await self.backend.snapshot(row.camera_id)
                row.start_at = row.end_at = taken_at
                await row.save(update_fields=["start_at", "end_at"])
            else:
                data = await self.backend.clip(row.camera_id, row.start_at, row.end_at)
            return await captures.complete(row, data, self.store)
        except (MediaError, ValueError) as exc:
            log.warning("capture %s (camera %s) failed: %s", row.id, row.camera_id, exc)
            await captures.fail(row, str(exc))
            return row

    # ------------------------------------------------------------ health

    async def _health_loop(self) -> None:
        since_sync = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._resync.wait(), HEALTH_EVERY_S)
            try:
                if self._resync.is_set() or since_sync >= RESYNC_EVERY_S:
                    self._resync.clear()
                    since_sync = 0.0
                    await self.sync()
                since_sync += HEALTH_EVERY_S
                await self.write_health()
            except Exception:
                log.exception("video health/sync failed")

    async def write_health(self) -> None:
        now = utcnow()
        for source in await active_sources(self.keyring):
            health = self.backend.health(source.camera_id)
            if health is not None:
                await set_health(
                    source.camera_id,
                    reachable=health.reachable,
                    last_frame_at=health.last_frame_at,
                    error=health.error,
                    at=now,
                )


def register_jobs() -> None:
    async def purge(ctx: JobContext) -> int:
        await captures.fail_interrupted()
        return await captures.purge_expired(
            ctx.runtime.settings, capture_store(ctx.runtime.settings)
        )

    registry.add_job(PURGE_JOB, purge, seconds=600, replace=True)


VIDEO: Key[VideoService] = Key("video")


def install(runtime: Runtime) -> None:
    register_jobs()
    runtime.provide(VIDEO, VideoService(runtime, build_backend(runtime.settings)))
