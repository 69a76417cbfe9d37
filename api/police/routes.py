"""The police link over HTTP: agreements (operators), the upload record and link status
(admins and security), police alerts and outsider tracing (security role only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import Response

from anxin.timefmt import local_iso, zone
from api.contract import (
    OPERATOR,
    PAGE_DEFAULT,
    STAFF,
    Cursor,
    Limit,
    Page,
    api_router,
    community_tz,
    errors,
    keyset_page,
    page_list,
)
from api.deps import PrincipalDep, RuntimeDep
from api.police.schemas import (
    AgreementIn,
    AgreementOut,
    AlertUpdate,
    DecisionIn,
    ExportIn,
    ExportOut,
    LinkStatusOut,
    PoliceAlertOut,
    TraceIn,
    TraceOut,
    TraceQueryOut,
    UploadOut,
    WithdrawIn,
    WithdrawnOut,
)
from api.schemas import INT32_MAX, PathId
from auth.permissions import Action, authorize
from domain.access.snapshots import snapshot_store
from domain.police import agreements, alerts, tracing, uploads
from domain.privacy.service import register_export
from models import (
    Community,
    ExportState,
    PoliceAgreement,
    PoliceAlertState,
    PoliceLinkState,
    PoliceUpload,
    ShareCategory,
    TraceExport,
    TraceQuery,
    UploadState,
)

router = api_router("/api/v1", tags=[STAFF])

# A resident's data export lists what was shared about them with the police.
register_export("police_uploads", uploads.shared_about_resident)

JPEG: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
        "description": "the gate's photo",
    }
}
EXPORT_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                "schema": {"type": "string", "format": "binary"}
            },
        },
        "description": "the export (CSV or xlsx)",
    }
}


def agreement_out(a: PoliceAgreement, tz: str) -> AgreementOut:
    terms = agreements.agreement_out(a)
    return AgreementOut(
        **{
            **terms,
            "approved_at": local_iso(a.approved_at, tz),
            "withdrawn_at": local_iso(a.withdrawn_at, tz),
        },
        timezone=tz,
    )


def upload_out(u: PoliceUpload, tz: str) -> UploadOut:
    return UploadOut(
        **{
            **uploads.upload_out(u),
            "queued_at": local_iso(u.created_at, tz),
            "sent_at": local_iso(u.sent_at, tz),
        },
        timezone=tz,
    )


def query_out(q: TraceQuery, tz: str) -> TraceQueryOut:
    return TraceQueryOut(
        **{
            **tracing.query_out(q),
            "since": local_iso(q.since, tz),
            "until": local_iso(q.until, tz),
            "created_at": local_iso(q.created_at, tz),
        },
        timezone=tz,
    )


def export_out(e: TraceExport, tz: str) -> ExportOut:
    return ExportOut(
        **{
            **tracing.export_out(e),
            "decided_at": local_iso(e.decided_at, tz),
            "downloaded_at": local_iso(e.downloaded_at, tz),
        },
        timezone=tz,
    )


# -- agreements ---------------------------------------------------------------------------
@router.post(
    "/operator/communities/{community_id}/police-agreements",
    status_code=201,
    tags=[OPERATOR],
    response_model=AgreementOut,
    responses=errors(409),
    summary="签订数据共享协议 · set a community's data-sharing agreement",
)
async def create_agreement(
    community_id: PathId, body: AgreementIn, principal: PrincipalDep, runtime: RuntimeDep
) -> AgreementOut:
    terms = agreements.AgreementTerms(**body.model_dump())
    a = await agreements.create_agreement(principal, community_id, terms, runtime.keyring)
    return agreement_out(a, await community_tz(a.community_id))


@router.post(
    "/operator/police-agreements/{agreement_id}/withdraw",
    tags=[OPERATOR],
    response_model=WithdrawnOut,
    responses=errors(409),
    summary="撤回协议 · withdraw an agreement (queued uploads are cancelled)",
)
async def withdraw_agreement(
    agreement_id: PathId, body: WithdrawIn, principal: PrincipalDep
) -> WithdrawnOut:
    cancelled = await agreements.withdraw_agreement(principal, agreement_id, body.reason)
    a = await PoliceAgreement.get(id=agreement_id)
    out = agreement_out(a, await community_tz(a.community_id))
    return WithdrawnOut(**out.model_dump(), cancelled_uploads=cancelled)


@router.get(
    "/staff/communities/{community_id}/police-agreements",
    response_model=Page[AgreementOut],
    summary="数据共享协议 · the community's agreements, newest first",
)
async def list_agreements(
    community_id: PathId,
    principal: PrincipalDep,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[AgreementOut]:
    rows, nxt = page_list(
        await agreements.list_agreements(principal, community_id),
        cursor,
        limit,
        lambda a: a.id,
        descending=True,
    )
    tz = await community_tz(community_id)
    return Page(items=[agreement_out(a, tz) for a in rows], next=nxt)


@router.get(
    "/staff/communities/{community_id}/police-link",
    response_model=LinkStatusOut,
    summary="联网状态 · registered, last heard from, and the upload queue by state",
)
async def link_status(community_id: PathId, principal: PrincipalDep) -> LinkStatusOut:
    if not principal.is_operator:
        authorize(principal, Action.POLICE_AGREEMENT_READ, community_id)
    a = await agreements.active_agreement(community_id)
    if a is None:
        return LinkStatusOut(agreement=None, registered=False, uploads={})
    state = await PoliceLinkState.get_or_none(agreement_id=a.id)
    tz = await community_tz(community_id)
    return LinkStatusOut(
        agreement=a.id,
        registered=bool(state and state.registered),
        registered_at=local_iso(state.registered_at, tz) if state else None,
        last_keepalive_at=local_iso(state.last_keepalive_at, tz) if state else None,
        next_register_at=local_iso(state.next_register_at, tz) if state else None,
        last_error=state.last_error if state else "",
        subscribed=bool(state and state.subscribe_id),
        uploads=await uploads.upload_counts(a.id),
    )


@router.get(
    "/staff/communities/{community_id}/police-uploads",
    response_model=Page[UploadOut],
    summary="上传记录 · what was sent to the police, newest first",
)
async def upload_record(
    community_id: PathId,
    principal: PrincipalDep,
    category: ShareCategory | None = None,
    state: UploadState | None = None,
    resident_id: Annotated[int | None, Query(gt=0, le=INT32_MAX)] = None,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[UploadOut]:
    rows, nxt = await keyset_page(
        lambda n, before: uploads.upload_record(
            principal,
            community_id,
            category=category,
            state=state,
            resident_id=resident_id,
            limit=n,
            before=before,
        ),
        cursor,
        limit,
    )
    tz = await community_tz(community_id)
    return Page(items=[upload_out(u, tz) for u in rows], next=nxt)


# -- police alerts (security role only) -------------------------------------------------
@router.get(
    "/staff/communities/{community_id}/police-alerts",
    response_model=Page[PoliceAlertOut],
    summary="公安布控预警 · police disposition alerts, newest first",
)
async def list_alerts(
    community_id: PathId,
    principal: PrincipalDep,
    state: PoliceAlertState | None = None,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[PoliceAlertOut]:
    rows, nxt = await keyset_page(
        lambda n, before: alerts.list_alerts(
            principal, community_id, state=state, limit=n, before=before
        ),
        cursor,
        limit,
    )
    return Page(items=[PoliceAlertOut(**await alerts.alert_out(a)) for a in rows], next=nxt)


@router.post(
    "/staff/police-alerts/{alert_id}",
    response_model=PoliceAlertOut,
    responses=errors(409),
    summary="处置预警 · acknowledge or close a police alert",
)
async def handle_alert(
    alert_id: PathId, body: AlertUpdate, principal: PrincipalDep
) -> PoliceAlertOut:
    a = await alerts.handle_alert(principal, alert_id, PoliceAlertState(body.state), body.note)
    return PoliceAlertOut(**await alerts.alert_out(a))


@router.get(
    "/staff/police-alerts/{alert_id}/capture",
    response_class=Response,
    responses=JPEG,
    summary="预警抓拍 · the gate's photo of the alert (JPEG)",
)
async def alert_capture(alert_id: PathId, principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    ref = await alerts.alert_capture_ref(principal, alert_id)
    data = snapshot_store(runtime.settings).load(ref)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


# -- outsider tracing (security role only) ----------------------------------------------
async def _in_zone(value: datetime, community_id: int) -> datetime:
    """A time without an offset is the community's local time."""
    if value.tzinfo is not None:
        return value
    community = await Community.get_or_none(id=community_id)
    return value.replace(tzinfo=zone(community.timezone if community else "Asia/Shanghai"))


@router.post(
    "/staff/communities/{community_id}/trace",
    response_model=TraceOut,
    summary="外来人员追溯 · who came in through which door (reason and case audited)",
)
async def trace(community_id: PathId, body: TraceIn, principal: PrincipalDep) -> TraceOut:
    authorize(principal, Action.TRACE_QUERY, community_id)
    req = tracing.TraceRequest(
        since=await _in_zone(body.since, community_id),
        until=await _in_zone(body.until, community_id),
        device_ids=list(body.device_ids),
        kinds=list(body.kinds),
        reason=body.reason,
        case_no=body.case_no,
    )
    return TraceOut(**await tracing.trace(principal, community_id, req))


@router.get(
    "/staff/communities/{community_id}/trace-queries",
    response_model=Page[TraceQueryOut],
    summary="追溯记录 · past trace queries, newest first",
)
async def trace_queries(
    community_id: PathId,
    principal: PrincipalDep,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[TraceQueryOut]:
    rows, nxt = await keyset_page(
        lambda n, before: tracing.list_queries(principal, community_id, limit=n, before=before),
        cursor,
        limit,
    )
    tz = await community_tz(community_id)
    return Page(items=[query_out(q, tz) for q in rows], next=nxt)


@router.post(
    "/staff/trace-queries/{query_id}/exports",
    status_code=201,
    response_model=ExportOut,
    summary="申请导出 · export a query's rows (a bulk one waits for a second officer)",
)
async def request_export(
    query_id: PathId, body: ExportIn, principal: PrincipalDep, runtime: RuntimeDep
) -> ExportOut:
    e = await tracing.request_export(
        principal, query_id, body.format, runtime.settings.police_trace_bulk_rows
    )
    return export_out(e, await community_tz(e.community_id))


@router.get(
    "/staff/communities/{community_id}/trace-exports",
    response_model=Page[ExportOut],
    summary="导出申请 · trace exports, newest first",
)
async def list_exports(
    community_id: PathId,
    principal: PrincipalDep,
    state: ExportState | None = None,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[ExportOut]:
    rows, nxt = await keyset_page(
        lambda n, before: tracing.list_exports(
            principal, community_id, state=state, limit=n, before=before
        ),
        cursor,
        limit,
    )
    tz = await community_tz(community_id)
    return Page(items=[export_out(e, tz) for e in rows], next=nxt)


@router.post(
    "/staff/trace-exports/{export_id}/decision",
    response_model=ExportOut,
    responses=errors(409),
    summary="审批导出 · a second officer approves or rejects a bulk export",
)
async def decide_export(export_id: PathId, body: DecisionIn, principal: PrincipalDep) -> ExportOut:
    e = await tracing.decide_export(principal, export_id, body.approve, body.note)
    return export_out(e, await community_tz(e.community_id))


@router.get(
    "/staff/trace-exports/{export_id}/file",
    response_class=Response,
    responses={**EXPORT_FILE, **errors(409)},
    summary="下载导出 · download an approved export (the requester only, once logged)",
)
async def download_export(export_id: PathId, principal: PrincipalDep) -> Response:
    body, e = await tracing.download_export(principal, export_id)
    media, name = tracing.export_file_meta(e)
    return Response(
        body,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
