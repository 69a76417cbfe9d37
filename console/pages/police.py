"""Console pages of the police link (docs/police-link.md):

- operators: data-sharing agreements per community (make, withdraw), link status;
- admins and security: the agreement's terms, the link status and the upload record;
- security only: police alerts (with the capture; acknowledge, close) and outsider
  tracing (query with reason and case number, exports, second-officer approvals).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import Response

from anxin.errors import invalid, not_found
from anxin.timefmt import zone
from auth.permissions import Action, authorize
from console import i18n, nav
from console.web import CommunityCtx, ConsoleRoute, OperatorCtx, redirect, render
from domain.access.snapshots import snapshot_store
from domain.police import agreements, alerts, tracing, uploads
from models import (
    Community,
    Device,
    LegalBasis,
    PoliceAgreement,
    PoliceAlertState,
    PoliceLinkState,
    ShareCategory,
)

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

nav.register(
    nav.NavItem(
        "police",
        "nav.police",
        "/console/c/{cid}/police",
        actions=(Action.POLICE_AGREEMENT_READ,),
        order=80,
    )
)
nav.register(
    nav.NavItem(
        "police_alerts",
        "nav.police_alerts",
        "/console/c/{cid}/police-alerts",
        actions=(Action.POLICE_ALERT_HANDLE,),
        order=81,
    )
)
nav.register(
    nav.NavItem(
        "trace", "nav.trace", "/console/c/{cid}/trace", actions=(Action.TRACE_QUERY,), order=82
    )
)
nav.register(
    nav.NavItem("ops_police", "nav.ops_police", "/console/ops/police", operator=True, order=80)
)

CATEGORY_TEXT = {
    ShareCategory.APES: ("采集设备", "capture devices"),
    ShareCategory.DOORS: ("门禁设备与门", "door devices and doors"),
    ShareCategory.FACE_CAPTURES: ("通行人脸抓拍（含图片）", "face captures with snapshot"),
    ShareCategory.VEHICLE_PASSAGES: ("车辆通行（车牌与图片）", "vehicle passages (plate, image)"),
    ShareCategory.VISITOR_REGISTRATIONS: ("访客登记", "visitor registrations"),
    ShareCategory.RESIDENT_REGISTRY: ("实有人口（住户）", "resident registry"),
    ShareCategory.VEHICLE_REGISTRY: ("登记车辆", "vehicle registry"),
}
BASIS_TEXT = {
    LegalBasis.PIPL_13_3: ("个保法第13条第3项（法定职责）", "PIPL art. 13(3), statutory duty"),
    LegalBasis.PIPL_26: ("个保法第26条（公共场所图像）", "PIPL art. 26, public-place images"),
    LegalBasis.PIPL_13_5: ("个保法第13条第5项（公共利益）", "PIPL art. 13(5), public interest"),
}
i18n.add(
    {
        "nav.police": ("公安联网", "Police link"),
        "nav.police_alerts": ("公安预警", "Police alerts"),
        "nav.trace": ("外来人员排查", "Outsider tracing"),
        "nav.ops_police": ("数据共享协议", "Data-sharing agreements"),
        "police.title": ("公安视图库联网", "Police platform link (GA/T 1400)"),
        "police.none": (
            "本小区没有生效的数据共享协议：不向公安平台发送任何数据。",
            "No active data-sharing agreement: nothing is sent to the police.",
        ),
        "police.terms": ("协议条款", "Agreement terms"),
        "police.platform": ("公安平台", "Platform"),
        "police.basis": ("法律依据", "Legal basis"),
        "police.document": ("文号", "Document no."),
        "police.categories": ("允许共享的数据", "Categories allowed"),
        "police.retention": ("保存期限（天）", "Retention (days)"),
        "police.approved_by": ("批准人", "Approved by"),
        "police.state": ("状态", "State"),
        "police.status": ("连接状态", "Link status"),
        "police.registered": ("已注册", "registered"),
        "police.not_registered": ("未注册", "not registered"),
        "police.last_keepalive": ("最近保活", "Last keepalive"),
        "police.last_error": ("最近错误", "Last error"),
        "police.queue": ("上传队列", "Upload queue"),
        "police.record": ("上传记录", "Upload record"),
        "police.object": ("对象编号", "Object id"),
        "police.category": ("类别", "Category"),
        "police.sent_at": ("发送时间", "Sent at"),
        "police.result": ("结果", "Result"),
        "police.withdraw": ("撤回协议", "Withdraw"),
        "police.reason": ("原因", "Reason"),
        "police.create": ("新建数据共享协议", "New data-sharing agreement"),
        "police.base_url": ("视图库地址", "VIID base URL"),
        "police.system_id": ("本系统编码（20位）", "Our system id (20 digits)"),
        "police.username": ("用户名", "User name"),
        "police.password": ("密码", "Password"),
        "police.center_code": ("中心编码（8位）", "Centre code (8 digits)"),
        "police.community_code": ("小区编码（20位）", "Community code (20 digits)"),
        "police.notify_url": ("预警接收地址", "Alert receive URL"),
        "police.save": ("保存协议", "Save agreement"),
        "police.communities": ("小区", "Community"),
        "alerts.title": ("公安布控预警", "Police disposition alerts"),
        "alerts.none": ("暂无预警。", "No alerts."),
        "alerts.time": ("时间", "Time"),
        "alerts.door": ("门", "Door"),
        "alerts.subject": ("事由", "Subject"),
        "alerts.capture": ("抓拍", "Capture"),
        "alerts.note": ("处置说明", "Note"),
        "alerts.ack": ("确认", "Acknowledge"),
        "alerts.close": ("关闭", "Close"),
        "trace.title": ("外来人员排查", "Outsider tracing"),
        "trace.since": ("开始时间", "From"),
        "trace.until": ("结束时间", "Until"),
        "trace.doors": ("门（不选为全部）", "Doors (none: all)"),
        "trace.kinds": ("人员类别", "Kinds"),
        "trace.reason": ("查询事由（必填）", "Reason (required)"),
        "trace.case_no": ("案件编号（必填）", "Case number (required)"),
        "trace.run": ("查询", "Search"),
        "trace.name": ("姓名", "Name"),
        "trace.phone": ("电话", "Phone"),
        "trace.plate": ("车牌", "Plate"),
        "trace.room": ("房号", "Room"),
        "trace.residents": ("住户", "Residents"),
        "trace.non_residents": (
            "非住户（访客、外卖快递、外来车辆）",
            "Non-residents (visitors, riders, vehicles)",
        ),
        "trace.export": ("申请导出", "Request export"),
        "trace.exports": ("导出申请", "Exports"),
        "trace.approve": ("批准", "Approve"),
        "trace.reject": ("驳回", "Reject"),
        "trace.download": ("下载", "Download"),
        "trace.queries": ("查询记录", "Query log"),
        "trace.note": (
            "每次查询都会记录事由与案件编号；超过{n}行的导出须由另一名治安人员批准。",
            "Every query records its reason and case number; exports over {n} rows "
            "need a second security officer's approval.",
        ),
        "kind.resident": ("住户", "resident"),
        "kind.visitor": ("访客", "visitor"),
        "kind.rider": ("外卖快递", "rider"),
        "kind.vehicle": ("车辆", "vehicle"),
    }
)


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


# -- community side: terms, status, record ------------------------------------------------
@router.get("/c/{cid}/police")
async def police_page(ctx: CommunityCtx) -> Response:
    assert ctx.cid is not None
    rows = await agreements.list_agreements(ctx.principal, ctx.cid)
    active = next((a for a in rows if a.state.value == "active"), None)
    state = await PoliceLinkState.get_or_none(agreement_id=active.id) if active else None
    record = await uploads.upload_record(
        ctx.principal, ctx.cid, category=None, state=None, resident_id=None, limit=100
    )
    return await render(
        ctx,
        "police.html",
        active="police",
        agreements=rows,
        current=active,
        state=state,
        counts=await uploads.upload_counts(active.id) if active else {},
        record=record,
        category_text=lambda c: _pick(CATEGORY_TEXT[ShareCategory(c)], ctx.lang),
        basis_text=lambda b: _pick(BASIS_TEXT[LegalBasis(b)], ctx.lang),
    )


# -- police alerts (security) -------------------------------------------------------------
@router.get("/c/{cid}/police-alerts")
async def alerts_page(ctx: CommunityCtx) -> Response:
    assert ctx.cid is not None
    rows = await alerts.list_alerts(ctx.principal, ctx.cid, limit=200)
    return await render(
        ctx,
        "police_alerts.html",
        active="police_alerts",
        alerts=[await alerts.alert_out(a) for a in rows],
    )


@router.get("/c/{cid}/police-alerts/{alert_id}/capture.jpg")
async def alert_capture(ctx: CommunityCtx, alert_id: int) -> Response:
    ref = await alerts.alert_capture_ref(ctx.principal, _id(alert_id))
    data = snapshot_store(ctx.runtime.settings).load(ref)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.post("/c/{cid}/police-alerts/{alert_id}")
async def alert_update(
    ctx: CommunityCtx,
    alert_id: int,
    state: Annotated[PoliceAlertState, Form()],
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if state == PoliceAlertState.OPEN:
        raise invalid("alert_state", "无效操作", "invalid state")
    await alerts.handle_alert(ctx.principal, _id(alert_id), state, note.strip())
    return redirect(f"/console/c/{ctx.cid}/police-alerts", ctx.request)


def _id(value: int) -> int:
    if not 0 < value <= 2**31 - 1:
        raise invalid("invalid_id", "编号无效", "invalid id")
    return value


# -- outsider tracing (security) ------------------------------------------------------------
async def _trace_vars(ctx: Any) -> dict[str, Any]:
    return {
        "doors": await Device.filter(community_id=ctx.cid).order_by("id"),
        "queries": await tracing.list_queries(ctx.principal, ctx.cid, limit=20),
        "exports": await tracing.list_exports(ctx.principal, ctx.cid, limit=100),
        "bulk_rows": ctx.runtime.settings.police_trace_bulk_rows,
        "kinds": tracing.KINDS,
    }


@router.get("/c/{cid}/trace")
async def trace_page(ctx: CommunityCtx) -> Response:
    assert ctx.cid is not None
    authorize(ctx.principal, Action.TRACE_QUERY, ctx.cid)
    return await render(
        ctx, "police_trace.html", active="trace", result=None, form={}, **await _trace_vars(ctx)
    )


def _local(value: str, tz: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise invalid("invalid_time", "时间格式无效", "invalid time") from None
    return when if when.tzinfo else when.replace(tzinfo=zone(tz))


@router.post("/c/{cid}/trace")
async def trace_run(
    ctx: CommunityCtx,
    since: Annotated[str, Form(max_length=40)],
    until: Annotated[str, Form(max_length=40)],
    reason: Annotated[str, Form(max_length=200)],
    case_no: Annotated[str, Form(max_length=64)],
    doors: Annotated[list[int] | None, Form()] = None,
    kinds: Annotated[list[str] | None, Form()] = None,
) -> Response:
    assert ctx.cid is not None
    chosen = [k for k in (kinds or list(tracing.KINDS)) if k in tracing.KINDS]
    req = tracing.TraceRequest(
        since=_local(since, ctx.tz),
        until=_local(until, ctx.tz),
        device_ids=[_id(d) for d in (doors or [])][:200],
        kinds=chosen,
        reason=reason,
        case_no=case_no,
    )
    result = await tracing.trace(ctx.principal, ctx.cid, req)
    form = {"since": since, "until": until, "reason": reason, "case_no": case_no}
    return await render(
        ctx, "police_trace.html", active="trace", result=result, form=form, **await _trace_vars(ctx)
    )


@router.post("/c/{cid}/trace-queries/{query_id}/export")
async def trace_export(
    ctx: CommunityCtx, query_id: int, format: Annotated[str, Form(pattern="^(csv|xlsx)$")]
) -> Response:
    await tracing.request_export(
        ctx.principal,
        _id(query_id),
        format,  # type: ignore[arg-type]
        ctx.runtime.settings.police_trace_bulk_rows,
    )
    return redirect(f"/console/c/{ctx.cid}/trace", ctx.request)


@router.post("/c/{cid}/trace-exports/{export_id}/decision")
async def trace_decision(
    ctx: CommunityCtx,
    export_id: int,
    approve: Annotated[str, Form(pattern="^(yes|no)$")],
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    await tracing.decide_export(ctx.principal, _id(export_id), approve == "yes", note.strip())
    return redirect(f"/console/c/{ctx.cid}/trace", ctx.request)


@router.get("/c/{cid}/trace-exports/{export_id}/file")
async def trace_file(ctx: CommunityCtx, export_id: int) -> Response:
    body, e = await tracing.download_export(ctx.principal, _id(export_id))
    media, name = tracing.export_file_meta(e)
    return Response(
        body,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


# -- operators: agreements --------------------------------------------------------------------
@router.get("/ops/police")
async def ops_police(ctx: OperatorCtx) -> Response:
    communities = await Community.all().order_by("id").limit(500)
    rows = []
    for c in communities:
        a = await agreements.active_agreement(c.id)
        st = await PoliceLinkState.get_or_none(agreement_id=a.id) if a else None
        rows.append({"community": c, "agreement": a, "state": st})
    return await render(ctx, "police_ops.html", active="ops_police", rows=rows)


@router.get("/ops/police/{community_id}")
async def ops_police_community(ctx: OperatorCtx, community_id: int) -> Response:
    community = await Community.get_or_none(id=_id(community_id))
    if community is None:
        raise not_found("community")
    return await render(
        ctx,
        "police_ops_community.html",
        active="ops_police",
        community=community,
        agreements=await agreements.list_agreements(ctx.principal, community.id),
        categories=[(c.value, _pick(CATEGORY_TEXT[c], ctx.lang)) for c in ShareCategory],
        bases=[(b.value, _pick(BASIS_TEXT[b], ctx.lang)) for b in LegalBasis],
        category_text=lambda c: _pick(CATEGORY_TEXT[ShareCategory(c)], ctx.lang),
    )


@router.post("/ops/police/{community_id}")
async def ops_police_create(
    ctx: OperatorCtx,
    community_id: int,
    platform_name: Annotated[str, Form(min_length=1, max_length=100)],
    base_url: Annotated[str, Form(min_length=8, max_length=300)],
    system_id: Annotated[str, Form(pattern=r"^\d{20}$")],
    username: Annotated[str, Form(min_length=1, max_length=64)],
    password: Annotated[str, Form(min_length=8, max_length=128)],
    center_code: Annotated[str, Form(pattern=r"^\d{8}$")],
    community_code: Annotated[str, Form(pattern=r"^\d{20}$")],
    legal_basis: Annotated[LegalBasis, Form()],
    document_no: Annotated[str, Form(min_length=1, max_length=100)],
    retention_days: Annotated[int, Form(ge=1, le=agreements.MAX_RETENTION_DAYS)],
    approved_by: Annotated[str, Form(min_length=1, max_length=100)],
    categories: Annotated[list[ShareCategory] | None, Form()] = None,
    notify_url: Annotated[str, Form(max_length=300)] = "",
    rate_limit_per_s: Annotated[int, Form(ge=1, le=10_000)] = 500,
) -> Response:
    terms = agreements.AgreementTerms(
        platform_name=platform_name.strip(),
        base_url=base_url.strip(),
        system_id=system_id,
        username=username.strip(),
        password=password,
        center_code=center_code,
        community_code=community_code,
        legal_basis=legal_basis,
        document_no=document_no,
        categories=list(categories or []),
        retention_days=retention_days,
        approved_by=approved_by,
        rate_limit_per_s=rate_limit_per_s,
        notify_url=notify_url.strip(),
    )
    await agreements.create_agreement(ctx.principal, _id(community_id), terms, ctx.runtime.keyring)
    return redirect(f"/console/ops/police/{community_id}", ctx.request)


@router.post("/ops/police/agreements/{agreement_id}/withdraw")
async def ops_police_withdraw(
    ctx: OperatorCtx,
    agreement_id: int,
    reason: Annotated[str, Form(min_length=2, max_length=200)],
) -> Response:
    await agreements.withdraw_agreement(ctx.principal, _id(agreement_id), reason.strip())
    a = await PoliceAgreement.get(id=agreement_id)
    return redirect(f"/console/ops/police/{a.community_id}", ctx.request)
