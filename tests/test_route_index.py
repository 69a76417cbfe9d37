"""The route index picks, for every path of the route table, the route the router's own
walk over every route picks (and leaves misses to that walk)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Match

from anxin.settings import Settings
from api.route_index import RouteIndex
from boot.roles import build_app


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return build_app(Settings())


def _scope(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [],
    }


def _first(routes: list[BaseRoute], method: str, path: str) -> tuple[Match, BaseRoute | None]:
    """What the router's loop picks: the first full match, else the first partial one."""
    partial: BaseRoute | None = None
    for route in routes:
        match, _ = route.matches(_scope(method, path))
        if match == Match.FULL:
            return match, route
        if match == Match.PARTIAL and partial is None:
            partial = route
    return (Match.PARTIAL, partial) if partial is not None else (Match.NONE, None)


def _samples(app: FastAPI) -> list[tuple[str, str]]:
    """A concrete path for every route of the table (and some that match nothing)."""
    out: list[tuple[str, str]] = []
    for route in iter_route_contexts(app.routes):  # the console's included routers too
        path = getattr(route, "path_format", None) or getattr(route, "path", None)
        if not isinstance(path, str) or not path:
            continue
        concrete = re.sub(r"\{[^}:]+:path\}", "a/b.css", path)
        concrete = re.sub(r"\{[^}]+\}", "1", concrete)
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            out.append((method, concrete))
        out.append(("PATCH", concrete))  # a method the route may not take: 405 or another
        out.append(("GET", concrete + "/"))  # trailing slash: the walk's redirect, or a 404
    out += [("GET", "/"), ("GET", "/api/v1/nope"), ("GET", "/nope/a/b/c/d"), ("GET", "")]
    return out


def test_every_path_gets_the_route_the_full_walk_gets(app: FastAPI) -> None:
    index = RouteIndex(app.router)
    samples = _samples(app)
    assert len(samples) > 500
    for method, path in samples:
        expected = _first(app.router.routes, method, path)
        got = _first(index.candidates(path), method, path)
        assert got == expected, (method, path)


def test_the_index_follows_routes_added_later(app: FastAPI) -> None:
    index = RouteIndex(app.router)
    assert _first(index.candidates("/late/route/x"), "GET", "/late/route/x")[0] == Match.NONE

    @app.get("/late/route/{x}")
    async def late(x: str) -> dict[str, str]:
        return {"x": x}

    try:
        match, route = _first(index.candidates("/late/route/x"), "GET", "/late/route/x")
        assert match == Match.FULL and getattr(route, "endpoint", None) is late
    finally:
        app.router.routes.pop()


def test_a_request_tries_few_routes(app: FastAPI) -> None:
    """The point of it: a resident's request is matched against a handful of routes."""
    index = RouteIndex(app.router)
    total = len(app.router.routes)
    for path in ("/api/v1/me", "/api/v1/doors", "/api/v1/passes", "/api/v1/doors/7/open"):
        assert len(index.candidates(path)) < total / 4, path
