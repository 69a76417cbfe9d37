"""The API's conventions, in one place, so that every route follows them by construction.

- Errors: one body (`ErrorBody`), declared for every status an operation can return.
  `errors(409, 504)` builds the `responses=` entries; `ContractRoute` adds the statuses
  every operation of its kind can return (400 malformed, 401/403 with a bearer token,
  404 with a path id, 422 with any input).
- Operation ids: the endpoint function's name in camelCase (`open_door` -> `openDoor`),
  checked unique when the app is built (`check_operation_ids`).
- Tags: who calls it: resident, staff, operator, device.
- Lists: `Page[T]` = `{"items": [...], "next": cursor-or-null}`, page size `limit`
  (1..PAGE_MAX, default PAGE_DEFAULT), ordered by id (stable), keyset cursors. A route
  pages a collection in the database with `keyset_page` (the domain function takes
  `limit` and `before`/`after` as keywords), one already in memory with `page_list`.
- Times: ISO 8601 with the community's UTC offset (`LocalTime`), and the zone name beside
  them where a person reads them (`timezone`).
- Paths: kebab-case, checked by tests/test_api_contract.py.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, FastAPI, Query
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field, WithJsonSchema

from anxin.errors import invalid
from api.deps import Bearer
from domain.community.zone import community_timezone

RESIDENT = "resident"
STAFF = "staff"
OPERATOR = "operator"
DEVICE = "device"
TAGS = [
    {"name": RESIDENT, "description": "住户小程序 · the resident mini-program"},
    {"name": STAFF, "description": "物业人员 · property staff (console)"},
    {"name": OPERATOR, "description": "平台运营 · platform operators and health checks"},
    {"name": DEVICE, "description": "设备 · gates, terminals and their keys"},
]


# ---------------------------------------------------------------- errors


class ErrorInfo(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. `not_found`")
    message: str = Field(description="in the caller's language (Accept-Language, or theirs)")
    message_zh: str
    message_en: str
    request_id: str | None = Field(description="also in the X-Request-ID header")
    details: Any = Field(None, description="per code: field errors, retry_after, ...")


class ErrorBody(BaseModel):
    """Every 4xx and 5xx response."""

    error: ErrorInfo


_STATUS_TEXT = {
    400: "请求无效 · malformed request (e.g. a NUL byte)",
    401: "未登录或令牌失效 · missing, expired or revoked token",
    403: "无权执行 · not allowed for this caller",
    404: "未找到 · not found (also what the caller may not see)",
    409: "状态冲突 · conflicts with the current state",
    410: "已失效 · expired or used up",
    413: "内容过大 · payload too large",
    415: "不支持的类型 · unsupported media type",
    422: "参数有误 · validation failed (details: the fields)",
    429: "过于频繁 · rate limited (Retry-After header)",
    502: "设备拒绝 · the device refused",
    503: "暂不可用 · a dependency is unavailable",
    504: "设备未响应 · the device did not answer in time",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entries for these error statuses, each with the real error body."""
    return {
        s: {"model": ErrorBody, "description": _STATUS_TEXT.get(s, "error")}
        for s in sorted(set(statuses))
    }


def _walk(dependant: Dependant) -> Iterable[Dependant]:
    yield dependant
    for dep in dependant.dependencies:
        yield from _walk(dep)


def _has_input(dependant: Dependant) -> bool:
    return any(
        d.path_params or d.query_params or d.header_params or d.cookie_params or d.body_params
        for d in _walk(dependant)
    )


def _authenticated(dependant: Dependant) -> bool:
    return any(isinstance(d.call, Bearer) for d in _walk(dependant))


class ContractRoute(APIRoute):
    """Adds the error statuses every operation of its kind can return to `responses`."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        auto = {400}
        if _authenticated(self.dependant):
            auto |= {401, 403}
        if self.dependant.path_params:
            auto.add(404)
        extra = self.openapi_extra or {}
        if _has_input(self.dependant) or "requestBody" in extra:
            auto.add(422)
        for status, spec in errors(*auto).items():
            self.responses.setdefault(status, spec)


def api_router(prefix: str = "", *, tags: Sequence[str]) -> APIRouter:
    """Every router of the API: ContractRoute for its routes, tags from TAGS."""
    unknown = set(tags) - {t["name"] for t in TAGS}
    if unknown or not tags:
        raise ValueError(f"tags must be among {[t['name'] for t in TAGS]}: {tags}")
    return APIRouter(prefix=prefix, tags=list(tags), route_class=ContractRoute)


def operation_id(route: APIRoute) -> str:
    head, *rest = route.name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def check_operation_ids(app: FastAPI) -> None:
    """Every documented operation is a ContractRoute with a distinct readable id (the TS
    client's method names); raises at start-up otherwise."""
    paths = app.openapi().get("paths", {})
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        documented = context.path in paths
        if documented and isinstance(route, APIRoute) and not isinstance(route, ContractRoute):
            raise RuntimeError(f"{route.path}: build its router with api.contract.api_router")
    seen: dict[str, str] = {}
    for path, operations in paths.items():
        for method, operation in operations.items():
            oid = operation.get("operationId", "")
            where = f"{method.upper()} {path}"
            if oid in seen:
                raise RuntimeError(f"operation id {oid!r} used by {seen[oid]} and {where}")
            seen[oid] = where


# ---------------------------------------------------------------- times

# Shown in the community's zone with its offset: "2026-11-25T23:05:00+08:00".
LocalTime = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 with the community's UTC offset",
        }
    ),
]


async def community_tz(community_id: int) -> str:
    """The community's IANA zone name, in which its times are shown."""
    return await community_timezone(community_id)


# ---------------------------------------------------------------- lists

PAGE_DEFAULT = 50
PAGE_MAX = 200
T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a collection, in a stable order; pass `next` back as `cursor`."""

    items: list[T]
    next: str | None = Field(description="cursor of the next page; null on the last one")


Limit = Annotated[int, Query(ge=1, le=PAGE_MAX, description="page size")]
Cursor = Annotated[
    str | None,
    Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$", description="`next` of the last page"),
]


def encode_cursor(key: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": key}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)["k"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise invalid("invalid_cursor", "分页游标无效", "invalid page cursor") from exc
    if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key < 2**63:
        raise invalid("invalid_cursor", "分页游标无效", "invalid page cursor")
    return key


def page_of(
    items: Sequence[T], limit: int, key: Callable[[T], int] | None = None
) -> tuple[list[T], str | None]:
    """`items` fetched as limit + 1 rows in page order: the page, and the next cursor."""
    rows = list(items[:limit])
    if len(items) <= limit or not rows:
        return rows, None
    last = rows[-1]
    return rows, encode_cursor(key(last) if key else last.id)  # type: ignore[attr-defined]


def page_list(
    items: Iterable[T],
    cursor: str | None,
    limit: int,
    key: Callable[[T], int],
    *,
    descending: bool = False,
) -> tuple[list[T], str | None]:
    """A page of a small collection already in memory, ordered by `key` (an id)."""
    after = decode_cursor(cursor)
    ordered = sorted(items, key=key, reverse=descending)
    if after is not None:
        ordered = [i for i in ordered if (key(i) < after if descending else key(i) > after)]
    return page_of(ordered, limit, key)


async def keyset_page(
    fetch: Callable[[int, int | None], Awaitable[Sequence[T]]],
    cursor: str | None,
    limit: int,
    key: Callable[[T], int] | None = None,
) -> tuple[list[T], str | None]:
    """The one way a route pages a collection in the database: `fetch(n, key)` returns up
    to n rows in page order past `key` (the cursor's id; None on the first page), e.g.
    `lambda n, before: service.list_x(principal, cid, limit=n, before=before)`. One row
    more than the page is asked for, so the last page says so (`next` null)."""
    rows = await fetch(limit + 1, decode_cursor(cursor))
    return page_of(rows, limit, key)


async def page_query(
    queryset: Any, cursor: str | None, limit: int, *, descending: bool = False
) -> tuple[list[Any], str | None]:
    """A keyset page of a Tortoise queryset ordered by id (stable under inserts)."""

    async def fetch(n: int, past: int | None) -> list[Any]:
        q = queryset
        if past is not None:
            q = q.filter(id__lt=past) if descending else q.filter(id__gt=past)
        return list(await q.order_by("-id" if descending else "id").limit(n))

    return await keyset_page(fetch, cursor, limit)


# ---------------------------------------------------------------- paths

KEBAB_SEGMENT = re.compile(r"^([a-z0-9]+(-[a-z0-9]+)*(\.[a-z0-9]+)?|\{[a-z_]+\})$")
