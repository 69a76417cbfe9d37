"""Exception handlers: every error leaves the API in the one format of `anxin.errors`.

The one place a domain error's kind becomes an HTTP status (`HTTP_STATUS`)."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from anxin.context import current_request_id
from anxin.errors import (
    BadRequest,
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unavailable,
    Unsupported,
    UpstreamFailed,
    UpstreamTimeout,
)
from anxin.i18n import Language, choose
from models.base import AppendOnlyError

log = logging.getLogger(__name__)


HTTP_STATUS: dict[type[DomainError], int] = {
    BadRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    TooLarge: 413,
    Unsupported: 415,
    Invalid: 422,
    RateLimited: 429,
    UpstreamFailed: 502,
    Unavailable: 503,
    UpstreamTimeout: 504,
}


class HttpError(DomainError):
    """An error only the HTTP layer has (method not allowed, internal error): its status
    is part of it. Domain code raises the kinds of `anxin.errors` instead."""

    kind = "http"

    def __init__(self, code: str, zh: str, en: str, status: int, details: object = None) -> None:
        super().__init__(code, zh, en, details)
        self.status = status


def http_status(err: DomainError) -> int:
    if isinstance(err, HttpError):
        return err.status
    for cls in type(err).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400


def request_lang(request: Request) -> Language:
    """Accept-Language when it names zh or en, else the signed-in resident's setting."""
    stored = getattr(request.state, "language", None)
    return choose(request.headers.get("accept-language"), stored)


def _request_id(request: Request) -> str:
    return current_request_id() or str(request.scope.get("state", {}).get("request_id", ""))


def _respond(request: Request, err: DomainError) -> JSONResponse:
    headers = {}
    status = http_status(err)
    if status == 429 and isinstance(err.details, dict) and err.details.get("retry_after"):
        # Whole seconds, rounded up: waiting exactly this long must be enough.
        headers["Retry-After"] = str(max(1, math.ceil(float(err.details["retry_after"]))))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        err.body(request_lang(request), _request_id(request)),
        status_code=status,
        headers=headers,
    )


_HTTP_CODES = {
    400: ("bad_request", "请求无效", "bad request"),
    401: ("unauthorized", "请先登录", "login required"),
    403: ("forbidden", "无权执行此操作", "not allowed"),
    404: ("not_found", "未找到该记录", "not found"),
    405: ("method_not_allowed", "不支持该请求方法", "method not allowed"),
    413: ("payload_too_large", "上传内容过大", "payload too large"),
    415: ("unsupported_media_type", "不支持的内容类型", "unsupported media type"),
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        return _respond(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        caller = getattr(request.state, "caller", None)
        if caller is not None and not getattr(request.state, "principal_read", False):
            # A route that reads its caller with its own rows (api.deps.get_caller) never
            # ran: read the caller now, so a refused account is refused (401) before its
            # input is judged and the answer is in the resident's language, as elsewhere.
            from api.deps import principal_of

            try:
                await principal_of(request, caller)
            except DomainError as refused:
                return _respond(request, refused)
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        err = Invalid("validation_error", "请求参数有误", "request validation failed", details)
        return _respond(request, err)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, zh, en = _HTTP_CODES.get(exc.status_code, ("http_error", "请求失败", str(exc.detail)))
        return _respond(request, HttpError(code, zh, en, exc.status_code))

    @app.exception_handler(AppendOnlyError)
    async def append_only(request: Request, exc: AppendOnlyError) -> JSONResponse:
        log.error("append-only violation: %s", exc)
        return _respond(
            request, HttpError("internal_error", "服务器内部错误", "internal error", 500)
        )

    @app.exception_handler(Exception)
    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        response = _respond(
            request, HttpError("internal_error", "服务器内部错误", "internal error", 500)
        )
        # Sent by Starlette's outermost middleware, past RequestContextMiddleware's header.
        if rid := _request_id(request):
            response.headers["X-Request-ID"] = rid
        return response
