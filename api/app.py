"""The FastAPI application around a process runtime: routes, middleware, error mapping,
the console. The runtime comes from the composition root (boot/roles.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from anxin.runtime import Runtime
from api import health
from api.access.routes import router as access_router
from api.accounts.routes import router as accounts_router
from api.announcements.routes import router as announcements_router
from api.audit_log.routes import router as audit_log_router
from api.cards.routes import router as cards_router
from api.community.routes import router as community_router
from api.contract import TAGS, check_operation_ids, operation_id
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
from device_bridge.http_push_routes import http_push_router
from device_bridge.service import BRIDGE
from police_link.receiver import router as viid_receiver

API_VERSION = "1.0"
API_DESCRIPTION = """智慧安防小区后端 · Smart secure community backend.

Conventions (docs/api-changes.md lists what changed):
- Errors: `{"error": {"code", "message", "message_zh", "message_en", "request_id",
  "details"}}` for every 4xx/5xx; `message` follows Accept-Language (zh, en; q-values
  honoured), else the resident's own setting, else Chinese.
- Lists: `{"items": [...], "next": cursor}`; pass `next` back as `cursor`; `limit` is
  bounded; order is stable (by id).
- Times: ISO 8601 with the community's UTC offset; `timezone` names the zone.
- Retries: `Idempotency-Key` on remote open, intercom accept, pass creation and
  enrollment: the same key returns the first result and never acts twice.
"""


def create_app(runtime: Runtime) -> FastAPI:
    """The HTTP adapter around a runtime the composition root built (boot.roles.build_app)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Anxin 安心 API",
        version=API_VERSION,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=TAGS,
        generate_unique_id_function=operation_id,
    )
    app.state.runtime = runtime
    app.state.metrics = Metrics(runtime)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    # Outermost last: the client address first, then headers on every answer (errors too).
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(
        ClientAddressMiddleware, trusted=parse_networks(runtime.settings.trusted_proxies)
    )
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
    app.include_router(http_push_router(runtime.get(BRIDGE).http_push), include_in_schema=False)
    # The police platform's disposition notifications (GA/T 1400, Digest-authenticated).
    app.include_router(viid_receiver(), include_in_schema=False)  # GA/T 1400, not our API
    check_operation_ids(app)
    return app
