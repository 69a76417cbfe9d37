"""The FastAPI application around a process runtime: routes, middleware, error mapping,
the console. The runtime comes from the composition root (boot/roles.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute

from anxin.runtime import Runtime
from api import health, route_index
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
        # No OpenTelemetry here (metrics are Prometheus, /metrics): without this FastAPI
        # asks the OpenTelemetry globals on every request whether they were configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
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
        add_routes(app, router)
    # Device-initiated HTTP (ZKTeco PUSH shape) for terminals without MQTT.
    add_routes(app, http_push_router(runtime.get(BRIDGE).http_push), include_in_schema=False)
    # The police platform's disposition notifications (GA/T 1400, Digest-authenticated).
    add_routes(app, viid_receiver(), include_in_schema=False)  # GA/T 1400, not our API
    route_index.install(app.router)  # each request tries only the routes its path may match
    check_operation_ids(app)
    return app


def add_routes(app: FastAPI, router: APIRouter, *, include_in_schema: bool = True) -> None:
    """Put every route of `router` (and of the routers it includes) on the app itself, as
    `include_router` did before FastAPI 0.16x: one flat list, matched in order.

    `include_router` now keeps a tree of included routers and walks it on every request
    (twice per level, re-reading every sub-router's version), which cost more CPU than a
    small request's own work (0.3-0.6 ms to reach a route near the end of the table).
    Our routers carry their prefix and tags themselves and are included with no prefix,
    tags or dependencies, so the flat copy serves exactly what the tree did."""
    for route in _leaf_routes(router):
        if isinstance(route, APIRoute):
            app.router.add_api_route(
                route.path,
                route.endpoint,
                response_model=route.response_model,
                status_code=route.status_code,
                tags=list(route.tags),
                dependencies=list(route.dependencies),
                summary=route.summary,
                description=route.description,
                response_description=route.response_description,
                responses=dict(route.responses),
                deprecated=route.deprecated,
                methods=sorted(route.methods or ()),
                operation_id=route.operation_id,
                response_model_include=route.response_model_include,
                response_model_exclude=route.response_model_exclude,
                response_model_by_alias=route.response_model_by_alias,
                response_model_exclude_unset=route.response_model_exclude_unset,
                response_model_exclude_defaults=route.response_model_exclude_defaults,
                response_model_exclude_none=route.response_model_exclude_none,
                include_in_schema=include_in_schema and route.include_in_schema,
                response_class=route.response_class,
                name=route.name,
                route_class_override=type(route),
                callbacks=route.callbacks,
                openapi_extra=route.openapi_extra,
                generate_unique_id_function=route.generate_unique_id_function,
                strict_content_type=route.strict_content_type,
            )
        elif isinstance(route, APIWebSocketRoute):
            app.router.add_api_websocket_route(
                route.path, route.endpoint, route.name, dependencies=route.dependencies
            )
        else:
            app.router.routes.append(route)


def _leaf_routes(router: APIRouter) -> list[BaseRoute]:
    """The routes of `router` in matching order, included routers expanded in place."""
    out: list[BaseRoute] = []
    for route in router.routes:
        inner = getattr(route, "original_router", None)  # FastAPI's _IncludedRouter
        if inner is None:
            out.append(route)
            continue
        context = route.include_context  # type: ignore[attr-defined]
        if context.prefix or context.dependencies or context.tags:
            raise RuntimeError(f"{inner}: include it without prefix, tags or dependencies")
        out.extend(_leaf_routes(inner))
    return out
