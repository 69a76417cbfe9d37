"""Route lookup by path prefix: a request tries only the routes that can match its path.

Starlette (and FastAPI's router) try every route in order until one matches: with about
240 routes, a request for a route near the end of the table spent more CPU finding it than
a small request spends on its own work. `RouteIndex` sits where the router starts matching
and hands each request the same routes in the same order, minus those that cannot match
its path: a route whose path starts with literal segments is listed under them (its first
`DEPTH`, or all of them when it is shorter), and a route that starts with a parameter, a
mount, or anything else is tried for every path, in its place. When nothing in that list
matches, the router's own full walk runs (redirects for a trailing slash, low-priority
routes, the 404), so every answer is the one the plain router would give.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Mount, Router
from starlette.types import Receive, Scope, Send

DEPTH = 3  # /api/v1/<area>: enough to tell the API's areas apart


def _literal_prefix(route: BaseRoute) -> tuple[tuple[str, ...], bool] | None:
    """(the route's leading literal segments, whether they are its whole path), or None
    when it may match any path (a mount at the root, a host, an included router)."""
    # A mount matches its path and anything below it; other routes their whole path.
    mount = isinstance(route, Mount)
    path = getattr(route, "path" if mount else "path_format", None)
    if not isinstance(path, str) or not path.startswith("/"):
        return None  # a mount at the root, a host, an included router: any path
    segments = path.split("/")[1:]
    literal: list[str] = []
    for segment in segments[:DEPTH]:
        if "{" in segment:
            return tuple(literal), False
        literal.append(segment)
    return tuple(literal), not mount and len(segments) <= DEPTH


class RouteIndex:
    """The router's matching, narrowed by path prefix (install with `install(router)`)."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.full_walk = router.app
        self._built_for: tuple[int, int] | None = None
        self._exact: dict[tuple[str, ...], list[tuple[int, BaseRoute]]] = {}
        self._under: dict[tuple[str, ...], list[tuple[int, BaseRoute]]] = {}
        self._lists: dict[tuple[str, ...], list[BaseRoute]] = {}

    def _build(self) -> None:
        exact: dict[tuple[str, ...], list[tuple[int, BaseRoute]]] = {}
        under: dict[tuple[str, ...], list[tuple[int, BaseRoute]]] = {}
        for i, route in enumerate(self.router.routes):
            found = _literal_prefix(route)
            if found is None:
                under.setdefault((), []).append((i, route))
            else:
                prefix, whole = found
                if whole or len(prefix) == DEPTH:
                    exact.setdefault(prefix, []).append((i, route))
                else:
                    under.setdefault(prefix, []).append((i, route))
        self._exact, self._under, self._lists = exact, under, {}
        self._built_for = (id(self.router.routes), len(self.router.routes))

    def candidates(self, path: str) -> list[BaseRoute]:
        """Every route that may match `path`, in the router's order."""
        if self._built_for != (id(self.router.routes), len(self.router.routes)):
            self._build()
        key = tuple(path.split("/")[1 : DEPTH + 1])
        cached = self._lists.get(key)
        if cached is not None:
            return cached
        found = list(self._exact.get(key, ()))
        for n in range(min(len(key), DEPTH - 1) + 1):
            found.extend(self._under.get(key[:n], ()))
        routes = [route for _, route in sorted(found, key=lambda item: item[0])]
        if key in self._exact:  # a key of the table, not of a caller's path: bounded
            self._lists[key] = routes
        return routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.full_walk(scope, receive, send)
            return
        partial: tuple[BaseRoute, MutableMapping[str, Any]] | None = None
        for route in self.candidates(get_route_path(scope)):
            match, child_scope = route.matches(scope)
            if match == Match.FULL:
                partial = (route, child_scope)
                break
            if match == Match.PARTIAL and partial is None:
                partial = (route, child_scope)
        if partial is None:
            await self.full_walk(scope, receive, send)
            return
        route, child_scope = partial
        scope.setdefault("router", self.router)
        scope.update(child_scope)
        await route.handle(scope, receive, send)


def install(router: Router) -> RouteIndex:
    """Match `router`'s requests through a `RouteIndex` (routes added later count too)."""
    index = RouteIndex(router)
    router.middleware_stack = index
    return index
