"""Sign-in, sign-out and the language switch.

Sign-in goes through the API's own staff login (`login_staff`): the same password check,
the same lockout per (username, address) and per username, the same audit rows. The
refresh token that call issues is revoked at once: the console keeps its own session.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from anxin.errors import DomainError
from api.errors import http_status
from console import i18n, session
from console.web import ConsoleRoute, StaffCtx, redirect, render_public, safe_next
from domain.identity.service import login_staff, logout

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.app.state.runtime.settings.is_production


def _login_page(request: Request, next_url: str, error: str = "", status: int = 200) -> Response:
    token = request.cookies.get(session.PRE_COOKIE) or secrets.token_urlsafe(32)
    response = render_public(
        request, "login.html", status=status, next_url=next_url, error=error, login_csrf=token
    )
    session.set_cookie(response, session.PRE_COOKIE, token, _secure(request), 3600)
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/console/") -> Response:
    return _login_page(request, safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=500)] = "/console/",
) -> Response:
    runtime = request.app.state.runtime
    lang = i18n.request_lang(request)
    next_url = safe_next(next)
    # Double-submit token: the sign-in form's hidden field must match its own cookie.
    if not session.token_matches(request.cookies.get(session.PRE_COOKIE, ""), csrf_token):
        return _login_page(request, next_url, i18n.t("error.csrf", lang), 403)
    client_ip = request.client.host if request.client else ""
    try:
        staff, pair = await login_staff(runtime, username.strip(), password, client_ip)
    except DomainError as err:
        return _login_page(request, next_url, err.en if lang == "en" else err.zh, http_status(err))
    await logout(pair.refresh_token)
    sid, _ = await session.create(runtime, staff.id)
    response = RedirectResponse(next_url, status_code=303)
    session.set_cookie(response, session.COOKIE, sid, _secure(request), session.SESSION_TTL_S)
    response.delete_cookie(session.PRE_COOKIE, path="/console")
    return response


@router.post("/logout")
async def logout_view(ctx: StaffCtx) -> Response:
    await session.destroy(ctx.runtime, ctx.session)
    response = redirect("/console/login", ctx.request)
    response.delete_cookie(session.COOKIE, path="/console")
    return response


@router.get("/lang/{lang}")
async def switch_language(request: Request, lang: str, next: str = "/console/") -> Response:
    response = RedirectResponse(safe_next(next), status_code=303)
    if lang in i18n.LANGS:
        response.set_cookie(
            i18n.LANG_COOKIE, lang, max_age=365 * 86400, path="/console", samesite="strict"
        )
    return response
