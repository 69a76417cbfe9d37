"""Console pages, one module per area.

Adding a page (also from another package, e.g. video/ or police_link/):
1. a module with `router = APIRouter(prefix="/console", route_class=ConsoleRoute,
   include_in_schema=False)`; its routes take `ctx: CommunityCtx` (pages under
   `/console/c/{cid}/...`) or `ctx: OperatorCtx` (`/console/ops/...`), call domain
   functions with `ctx.principal`, and return `await render(ctx, "x.html", active="key")`;
2. `nav.register(NavItem(...))` at import time for its menu entry, and
   `i18n.add({...})` for its texts (zh, en);
3. its templates `{% extends "base.html" %}` (another package adds its template folder
   with `console.web.add_template_dir`);
4. its module name in `PAGE_MODULES` below.
State-changing routes are POST; the CSRF check is in `staff_ctx`, so a form only needs
`{% include "_csrf.html" %}`.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter

PAGE_MODULES = [
    "console.pages.home",
    "console.pages.approvals",
    "console.pages.residents",
    "console.pages.access",
    "console.pages.alarms",
    "console.pages.devices",
    "console.pages.visitors",
    "console.pages.setup",
    "console.pages.ops",
    "console.pages.records",
    "console.pages.police",
    "console.pages.video",
]


def routers() -> list[APIRouter]:
    return [importlib.import_module(name).router for name in PAGE_MODULES]
