"""The FastAPI application: one factory for the server, the demo and the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from anxin.runtime import Runtime
from anxin.settings import Settings, get_settings
from api import health
from api.access.routes import router as access_router
from api.accounts.routes import router as accounts_router
from api.announcements.routes import router as announcements_router
from api.audit_log.routes import router as audit_log_router
from api.cards.routes import router as cards_router
from api.community.routes import router as community_router
from api.devices.routes import router as devices_router
from api.doors.routes import router as doors_router
from api.errors import install_error_handlers
from api.faces.routes import router as faces_router
from api.households.routes import router as households_router
from api.identity.routes import router as identity_router
from api.metrics import Metrics, RequestMetricsMiddleware
from api.metrics import router as metrics_router
from api.middleware import RequestContextMiddleware
from api.notifications.realtime import router as realtime_router
from api.notifications.routes import router as notifications_router
from api.passes.routes import router as passes_router
from api.passes.routes import share_router as pass_share_router
from api.police.routes import router as police_router
from api.privacy.routes import router as privacy_router
from api.security import ClientAddressMiddleware, SecurityHeadersMiddleware, parse_networks
from api.video.routes import router as video_router
from api.visitors.routes import router as visitors_router
from auth.wechat import WeChatClient
from console import install as install_console
from notifications.service import install as install_notifications
from video.service import install as install_video


class WeChatService:
    """Owns the WeChat client for the process (its token cache shared through Redis)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.client: WeChatClient | None = None

    async def start(self) -> None:
        s = self._runtime.settings
        self.client = WeChatClient(
            s.wechat_base_url,
            s.wechat_appid,
            s.wechat_secret,
            redis=self._runtime.redis,
            redis_prefix=s.redis_prefix,
        )

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def build_runtime(settings: Settings, *, owns_database: bool = True) -> Runtime:
    """Wire the services one process runs; each capability adds its own here."""
    from device_bridge import face_handlers, handlers, pass_handlers
    from device_bridge.service import DeviceBridge

    runtime = Runtime(settings, owns_database=owns_database)
    runtime.add("wechat", WeChatService(runtime))
    install_notifications(runtime)  # realtime hub, dispatcher, scheduler
    bridge = runtime.add("bridge", DeviceBridge(runtime))
    handlers.register(bridge)
    pass_handlers.register(bridge)  # passes, codes, plates, intercom (+ their jobs)
    face_handlers.register(runtime, bridge)
    install_video(runtime)  # media backend, captures on events, health
    if settings.run_police_link:  # normally its own process: `anxin police-link`
        from police_link.service import PoliceLink

        runtime.add("police_link", PoliceLink(runtime))
    return runtime


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = runtime or build_runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Anxin 安心 API",
        version="1.0",
        description="智慧安防小区后端 · Smart secure community backend",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.metrics = Metrics(runtime)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    # Outermost last: the client address first, then headers on every answer (errors too).
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(ClientAddressMiddleware, trusted=parse_networks(settings.trusted_proxies))
    install_error_handlers(app)
    for router in (
        health.router,
        metrics_router,
        identity_router,
        households_router,
        community_router,
        devices_router,
        access_router,
        accounts_router,
        cards_router,
        audit_log_router,
        announcements_router,
        faces_router,
        privacy_router,
        notifications_router,
        realtime_router,
        doors_router,
        passes_router,
        pass_share_router,
        visitors_router,
        video_router,
        police_router,
    ):
        app.include_router(router)
    # Device-initiated HTTP (ZKTeco PUSH shape) for terminals without MQTT.
    app.include_router(runtime.get("bridge").http_push.router(), include_in_schema=False)
    install_console(app)  # the staff and operator console at /console/
    # The police platform's disposition notifications (GA/T 1400, Digest-authenticated).
    from police_link.receiver import router as viid_receiver

    app.include_router(viid_receiver())
    return app
