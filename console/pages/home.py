"""The console's landing: the community home page with its charts."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from auth.permissions import Action
from console import i18n, labels, nav
from console.web import CommunityCtx, ConsoleRoute, StaffCtx, redirect, render
from domain.dashboard import service as dashboard

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

nav.register(nav.NavItem("home", "nav.home", "/console/c/{cid}/", order=10))

i18n.add(
    {
        "nav.home": ("首页", "Home"),
        "home.title": ("小区概况", "Community at a glance"),
        "home.entries_today": ("今日通行", "Entries today"),
        "home.refused_today": ("今日拒绝", "Refused today"),
        "home.open_alarms": ("未处理告警", "Open alarms"),
        "home.devices": ("设备在线 / 离线", "Devices online / offline"),
        "home.pending": ("待审核（住户 / 人脸）", "Pending (members / faces)"),
        "home.faces": ("持有人脸信息人数 / 备案阈值", "People with face data / filing threshold"),
        "chart.by_hour": ("近24小时通行（按方式）", "Entries in the last 24 hours, by method"),
        "chart.by_day": ("近7天通行与拒绝", "Entries and refusals, last 7 days"),
        "chart.refusals": ("近7天拒绝原因", "Refusal reasons, last 7 days"),
        "chart.devices": ("设备离线次数（近7天）", "Device offline events (7 days)"),
        "chart.granted": ("放行", "granted"),
        "chart.refused": ("拒绝", "refused"),
        "chart.table": ("图表数据", "Chart data"),
    }
)


@router.get("/")
async def landing(ctx: StaffCtx) -> Response:
    """Operators land on the overview; staff on their first community."""
    if ctx.principal.is_operator:
        return redirect("/console/ops/")
    if not ctx.principal.roles:
        return await render(ctx, "empty.html")
    return redirect(f"/console/c/{min(ctx.principal.roles)}/")


@router.get("/c/{cid}/")
async def home(ctx: CommunityCtx) -> Response:
    assert ctx.community is not None
    summary = await dashboard.summary(ctx.principal, ctx.community)
    return await render(ctx, "home.html", active="home", s=summary)


@router.get("/c/{cid}/charts.json")
async def charts(ctx: CommunityCtx) -> JSONResponse:
    """Series for the home page's charts, in the viewer's language."""
    assert ctx.community is not None
    lang, out = ctx.lang, {}
    if ctx.may(Action.ACCESS_LOG_READ):
        by_hour = await dashboard.entries_by_hour(ctx.principal, ctx.community)
        out["by_hour"] = {
            "title": ctx.t("chart.by_hour"),
            "categories": [f"{h:02d}" for h in by_hour["hours"]],
            "series": [
                {"name": labels.pick(labels.METHODS, m, lang), "data": data}
                for m, data in by_hour["series"].items()
            ],
            "stack": True,
        }
        by_day = await dashboard.entries_by_day(ctx.principal, ctx.community)
        out["by_day"] = {
            "title": ctx.t("chart.by_day"),
            "categories": [d[5:] for d, _, _ in by_day],
            "series": [
                {"name": ctx.t("chart.granted"), "data": [g for _, g, _ in by_day]},
                {"name": ctx.t("chart.refused"), "data": [r for _, _, r in by_day]},
            ],
        }
        refusals = await dashboard.refusals_by_reason(ctx.principal, ctx.community)
        out["refusals"] = {
            "title": ctx.t("chart.refusals"),
            "pie": [{"name": labels.reason(r, lang), "value": n} for r, n in refusals],
        }
    if ctx.may(Action.DEVICE_READ):
        devices = await dashboard.device_health(ctx.principal, ctx.community)
        out["devices"] = {
            "title": ctx.t("chart.devices"),
            "categories": [d["name"] for d in devices],
            "series": [
                {"name": ctx.t("chart.devices"), "data": [d["offline_events"] for d in devices]}
            ],
            "horizontal": True,
        }
    return JSONResponse(out, headers={"cache-control": "no-store"})
