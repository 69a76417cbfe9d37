"""What every console page shares: the request context, rendering, security headers,
CSRF, and turning errors into pages.

`ConsoleRoute` is the route class of every console router: it adds the security headers
(strict CSP: scripts and styles only from this server, no inline code, no eval), and it
renders a domain error (`anxin.errors`) or a form validation error as an HTML page (or, for an htmx
request, as a message in the page's flash area) instead of the API's JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from anxin.errors import DomainError, Forbidden, not_found
from anxin.runtime import Runtime
from anxin.timefmt import zone
from api.errors import http_status
from auth.permissions import Action, Principal, load_principal
from console import i18n, nav, session
from models import Community

STATIC_URL = "/console/static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; "  # live view: hls.js feeds the <video> through a blob: URL
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}

_template_dirs: list[Path] = [Path(__file__).parent / "templates"]
_env: Environment | None = None


def add_template_dir(path: Path) -> None:
    """Another package's console templates (video, police link): searched after ours."""
    global _env
    if path not in _template_dirs:
        _template_dirs.append(path)
        _env = None


def env() -> Environment:
    global _env
    if _env is None:
        _env = Environment(
            loader=ChoiceLoader([FileSystemLoader(str(p)) for p in _template_dirs]),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return _env


class LoginRequired(Exception):
    pass


class CsrfFailed(Exception):
    pass


@dataclass
class Ctx:
    """One console request: who, in which language, in which community."""

    request: Request
    runtime: Runtime
    principal: Principal
    session: session.Session
    lang: str
    community: Community | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cid(self) -> int | None:
        return self.community.id if self.community else None

    @property
    def tz(self) -> str:
        return self.community.timezone if self.community else "Asia/Shanghai"

    def t(self, key: str) -> str:
        return i18n.t(key, self.lang)

    def may(self, action: Action) -> bool:
        return nav.may(self.principal, action, self.cid)

    def local(self, value: Any, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        if value is None:
            return ""
        return value.astimezone(zone(self.tz)).strftime(fmt)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


async def _csrf_ok(request: Request, expected: str) -> bool:
    given = request.headers.get(session.CSRF_HEADER)
    if not given:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(session.CSRF_FIELD)
            given = value if isinstance(value, str) else None
    return session.token_matches(expected, given)


async def staff_ctx(request: Request) -> Ctx:
    """The signed-in staff member; every state-changing request must carry the CSRF
    token of their session (form field or X-CSRF-Token header) or nothing happens."""
    runtime: Runtime = request.app.state.runtime
    sess = await session.load(runtime, request)
    if sess is None:
        raise LoginRequired()
    try:
        principal = await load_principal("staff", sess.staff_id)
    except DomainError:
        await session.destroy(runtime, sess)  # disabled or deleted account
        raise LoginRequired() from None
    if request.method not in ("GET", "HEAD") and not await _csrf_ok(request, sess.csrf):
        raise CsrfFailed()
    return Ctx(request, runtime, principal, sess, i18n.request_lang(request))


StaffCtx = Annotated[Ctx, Depends(staff_ctx)]


async def community_ctx(cid: int, ctx: StaffCtx) -> Ctx:
    """A page of community `cid`: only for staff who hold a role there; for anyone
    else the community does not exist (as in the API)."""
    if cid < 1 or cid > 2**31 - 1 or cid not in ctx.principal.roles:
        raise not_found("community")
    community = await Community.get_or_none(id=cid)
    if community is None:
        raise not_found("community")
    ctx.community = community
    return ctx


CommunityCtx = Annotated[Ctx, Depends(community_ctx)]


def require_any(ctx: Ctx, *actions: Action) -> None:
    """A page that only shows what the domain functions allow still needs one right to
    be shown at all."""
    if not any(ctx.may(a) for a in actions):
        raise Forbidden("forbidden", "当前岗位无此权限", "your role does not allow this")


def operator_ctx(ctx: StaffCtx) -> Ctx:
    if not ctx.principal.is_operator:
        raise Forbidden("forbidden", "仅限运营人员", "operators only")
    return ctx


OperatorCtx = Annotated[Ctx, Depends(operator_ctx)]


def base_vars(request: Request, lang: str, ctx: Ctx | None) -> dict[str, Any]:
    communities = ctx.extra.get("communities", []) if ctx else []
    return {
        "ctx": ctx,
        "lang": lang,
        "t": lambda key: i18n.t(key, lang),
        "static": lambda path: f"{STATIC_URL}/{path}",
        "csrf": ctx.session.csrf if ctx else "",
        "nav": nav.visible(ctx.principal, ctx.cid) if ctx else [],
        "communities": communities,
        "path": request.url.path,
        "query": request.url.query,
        "quote": quote,
    }


async def _communities(ctx: Ctx) -> list[Community]:
    ids = sorted(ctx.principal.roles)
    return await Community.filter(id__in=ids).order_by("id") if ids else []


async def render(
    ctx: Ctx, template: str, status: int = 200, headers: dict[str, str] | None = None, **values: Any
) -> HTMLResponse:
    if "communities" not in ctx.extra and not template.startswith("_"):
        ctx.extra["communities"] = await _communities(ctx)
    done = ctx.request.query_params.get("done", "")
    if done.startswith("done.") and "flash" not in values:
        values["flash"], values["kind"], values["message"] = True, "ok", ctx.t(done)
    page = env().get_template(template)
    html = page.render(**base_vars(ctx.request, ctx.lang, ctx), **values)
    return HTMLResponse(html, status_code=status, headers=headers)


def render_public(
    request: Request, template: str, status: int = 200, **values: Any
) -> HTMLResponse:
    lang = i18n.request_lang(request)
    html = env().get_template(template).render(**base_vars(request, lang, None), **values)
    return HTMLResponse(html, status_code=status)


def redirect(url: str, request: Request | None = None) -> Response:
    """After a successful form post: 303 for a plain form, HX-Redirect for htmx."""
    if request is not None and is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


async def done(ctx: Ctx, url: str, key: str = "done.saved", **values: Any) -> Response:
    """The answer to a successful form: for htmx the `_done.html` fragment (which replaces
    the form's item), else a redirect back to `url` that shows the message."""
    if is_htmx(ctx.request):
        return await render(ctx, "_done.html", message=ctx.t(key), **values)
    sep = "&" if "?" in url else "?"
    return redirect(f"{url}{sep}done={key}")


def safe_next(value: str | None) -> str:
    """Only a console path: never an open redirect to another site."""
    if value and value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/"


def _error_page(request: Request, status: int, message: str) -> Response:
    lang = i18n.request_lang(request)
    if is_htmx(request):
        html = env().get_template("_flash.html").render(kind="error", message=message)
        return HTMLResponse(
            html,
            status_code=200,  # htmx swaps only 2xx by default; the flash says what failed
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
        )
    html = (
        env()
        .get_template("error.html")
        .render(**base_vars(request, lang, None), status=status, message=message)
    )
    return HTMLResponse(html, status_code=status)


def _validation_message(exc: RequestValidationError, lang: str) -> str:
    fields = sorted({str(e.get("loc", ("", ""))[-1]) for e in exc.errors()})
    head = "请检查填写内容" if lang == "zh" else "Please check the form"
    return f"{head}: {', '.join(fields)}"


class ConsoleRoute(APIRoute):
    """Route class of every console router: security headers, HTML errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            lang = i18n.request_lang(request)
            try:
                response = await handler(request)
            except LoginRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                url = f"/console/login?next={quote(safe_next(target))}"
                if is_htmx(request):
                    response = Response(status_code=401, headers={"HX-Redirect": url})
                elif request.method in ("GET", "HEAD"):
                    response = RedirectResponse(url, status_code=303)
                else:
                    response = _error_page(request, 401, i18n.t("login.title", lang))
            except CsrfFailed:
                response = _error_page(request, 403, i18n.t("error.csrf", lang))
            except DomainError as err:
                response = _error_page(
                    request, http_status(err), err.en if lang == "en" else err.zh
                )
            except RequestValidationError as exc:
                response = _error_page(request, 422, _validation_message(exc, lang))
            for key, value in SECURITY_HEADERS.items():
                response.headers.setdefault(key, value)
            return response

        return console_handler
