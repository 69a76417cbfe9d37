"""The app's routes as data, read from its route table (a new route shows up by itself),
and requests built from their parameters: bad values of each kind, and minimal bodies
that pass validation so that one bad field reaches the handler."""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel


@dataclass(frozen=True)
class Param:
    name: str
    annotation: Any

    @property
    def is_int(self) -> bool:
        return _base(self.annotation) is int


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str
    path_params: tuple[Param, ...]
    query_params: tuple[Param, ...]
    body: Any  # the body's annotation (a pydantic model, a list …) or None
    body_kind: str  # "json" | "form" | "none"

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def _flat(dependant: Any, kind: str) -> list[Any]:
    out = list(getattr(dependant, kind))
    for sub in dependant.dependencies:
        out += _flat(sub, kind)
    return out


def _api_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):  # FastAPI's wrapper of an included router
            context = getattr(route, "include_context", None)
            inner = prefix + (getattr(context, "prefix", "") or "")
            yield from _api_routes(route.original_router.routes, inner)
        elif hasattr(route, "routes") and hasattr(route, "path") and not hasattr(route, "app"):
            yield from _api_routes(route.routes, prefix + route.path)


def route_table(app: Any) -> list[RouteInfo]:
    seen: dict[str, RouteInfo] = {}
    for path, route in _api_routes(app.router.routes):
        body_params = _flat(route.dependant, "body_params")
        body_kind = "none"
        body = None
        if body_params:
            body_kind = "json"
            if any(
                type(p.field_info).__name__ in ("File", "Form", "UploadFile") for p in body_params
            ):
                body_kind = "form"
            body = route.body_field.field_info.annotation if route.body_field else None
            if len(body_params) > 1 and body_kind == "json":
                body = None  # embedded several: no single model to fill
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            info = RouteInfo(
                method,
                path,
                tuple(
                    dict.fromkeys(
                        Param(p.name, p.field_info.annotation)
                        for p in _flat(route.dependant, "path_params")
                    )
                ),
                tuple(
                    Param(p.alias or p.name, p.field_info.annotation)
                    for p in _flat(route.dependant, "query_params")
                ),
                body,
                body_kind,
            )
            seen.setdefault(info.id, info)
    return sorted(seen.values(), key=lambda r: r.id)


def _base(annotation: Any) -> Any:
    """int for `int`, `int | None`, `Annotated[int, …]`."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _base(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base(args[0]) if len(args) == 1 else annotation
    return annotation


def sample(annotation: Any) -> Any:
    """A plausible valid value (best effort: validation may still refuse it)."""
    base = _base(annotation)
    origin = typing.get_origin(base)
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return next(iter(base)).value
    if isinstance(base, type) and issubclass(base, BaseModel):
        return minimal_body(base)
    if origin in (list, set, frozenset, tuple):
        return []
    if origin is dict or base is dict:
        return {}
    if origin is typing.Literal:
        return typing.get_args(base)[0]
    return {
        bool: False,
        int: 1,
        float: 1.0,
        str: "x",
        dt.date: "2030-01-01",
        dt.datetime: "2030-01-01T08:00:00+08:00",
    }.get(base, "x")


def minimal_body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        (f.alias or name): sample(f.annotation)
        for name, f in model.model_fields.items()
        if f.is_required()
    }


def int_fields(model: Any) -> list[tuple[str, bool]]:
    """(field, is a list of ints) for the body model's integer fields."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    out = []
    for name, f in model.model_fields.items():
        base = _base(f.annotation)
        if base is int:
            out.append((f.alias or name, False))
        elif typing.get_origin(base) in (list, set, tuple) and any(
            _base(a) is int for a in typing.get_args(base)
        ):
            out.append((f.alias or name, True))
    return out
