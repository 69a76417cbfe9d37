"""Prometheus metrics at `/metrics`: requests, device messages (accepted and rejected, by
kind), door decisions, commands and events in flight, the notification outbox, devices.

Who may read it: a scraper on the same host (loopback peer, no forwarding header: a request
that came through a reverse proxy on this host is not local), or anyone presenting
`Authorization: Bearer <ANXIN_METRICS_TOKEN>` when that is set. Everyone else gets 404, as
if there were no such route: the figures tell an outsider how busy which doors are.

Every app has its own registry (several apps share one test process).
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tortoise.functions import Count

from anxin.errors import not_found
from anxin.runtime import Runtime
from device_bridge.service import BRIDGE
from models import Device, DeviceEventClaim, DeviceEventState, OutboxEvent

FORWARDING_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip")
# Transport counters that are traffic, not rejections (the rest of `stats` are rejections).
TRAFFIC = ("events", "acks", "commands", "expired", "late_ack")


class _DeviceCollector(Collector):
    """Counters the bridge keeps in memory, read at scrape time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Any]:
        rejected = CounterMetricFamily(
            "anxin_device_messages_rejected",
            "Device messages (and broker logins) refused, by where and why",
            labels=["source", "kind"],
        )
        traffic = CounterMetricFamily(
            "anxin_device_messages",
            "Device messages handled, by transport",
            labels=["source", "kind"],
        )
        decisions = CounterMetricFamily(
            "anxin_door_decisions", "Door decisions written, by result", labels=["result"]
        )
        in_flight = GaugeMetricFamily(
            "anxin_device_events_in_flight", "Device events being handled in this process"
        )
        pending = GaugeMetricFamily(
            "anxin_device_commands_pending", "Commands sent and not yet acknowledged or expired"
        )
        bridge = self.runtime.get(BRIDGE) if self.runtime.has(BRIDGE) else None
        if bridge is not None:
            sources = [("mqtt", bridge.transport), ("http_push", bridge.http_push)]
            for source, transport in sources:
                if transport is None:
                    continue
                for kind, n in transport.reject.counts.items():
                    rejected.add_metric([source, kind], n)
                for kind in TRAFFIC:
                    traffic.add_metric([source, kind], transport.stats.get(kind, 0))
            for kind, n in bridge.reject.counts.items():
                rejected.add_metric(["bridge", kind], n)
            if bridge.broker is not None and bridge.broker.access is not None:
                for kind, n in bridge.broker.access.reject.counts.items():
                    rejected.add_metric(["broker", kind], n)
            for result in ("granted", "denied"):
                decisions.add_metric([result], bridge.stats.get(result, 0))
            in_flight.add_metric([], len(bridge._inflight))  # noqa: SLF001
            pending.add_metric(
                [],
                sum(t.pending_count() for _, t in sources if t is not None),
            )
        yield from (rejected, traffic, decisions, in_flight, pending)


class Metrics:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "anxin_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "anxin_http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.outbox = Gauge(
            "anxin_outbox_events", "Notification outbox by state", ["state"], registry=r
        )
        self.devices = Gauge("anxin_devices", "Devices by status", ["status"], registry=r)
        self.online = Gauge("anxin_devices_online", "Devices online now", registry=r)
        self.claims = Gauge(
            "anxin_device_event_claims_unfinished",
            "Device events claimed and not finished (a crash leaves them for the resume loop)",
            registry=r,
        )
        r.register(_DeviceCollector(runtime))
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def refresh(self) -> None:
        """The gauges that live in the database (read at scrape time)."""
        for row in await OutboxEvent.annotate(n=Count("id")).group_by("state").values("state", "n"):
            self.outbox.labels(str(row["state"])).set(row["n"])
        for row in await Device.annotate(n=Count("id")).group_by("status").values("status", "n"):
            self.devices.labels(str(row["status"])).set(row["n"])
        self.online.set(await Device.filter(online=True).count())
        self.claims.set(await DeviceEventClaim.filter(state=DeviceEventState.HANDLING).count())

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # The labelled children are looked up once per (method, route, status): `labels()`
        # validates and locks on every call. Routes are templates, so this stays small.
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        series[0].inc()
        series[1].observe(seconds)


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by its route template (never the raw path: ids
    in paths would make a series per id)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - start)


def may_read(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[7:].encode(), token.encode())
    if any(h in dict(request.scope.get("headers", [])) for h in FORWARDING_HEADERS):
        return False  # came through a proxy: not a local scraper, whatever the peer
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    if not may_read(request, runtime.settings.metrics_token):
        raise not_found("route")
    m: Metrics = request.app.state.metrics
    await m.refresh()
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
