"""The police link over HTTP: agreements (operators), the upload record and link status
(admins and security), police alerts and outsider tracing (security role only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from fastapi.responses import Response
from pydantic import Field

from anxin.timefmt import zone
from api.contract import OPERATOR, STAFF, api_router
from api.deps import PrincipalDep, RuntimeDep
from api.schemas import BodyId, PathId, Strict
from auth.permissions import Action, authorize
from domain.access.snapshots import snapshot_store
from domain.police import agreements, alerts, tracing, uploads
from domain.privacy.service import register_export
from models import (
    Community,
    ExportState,
    LegalBasis,
    PoliceAgreement,
    PoliceAlertState,
    PoliceLinkState,
    ShareCategory,
    UploadState,
)

router = api_router("/api/v1", tags=[STAFF])

# A resident's data export lists what was shared about them with the police.
register_export("police_uploads", uploads.shared_about_resident)

Digits20 = Annotated[str, Field(pattern=r"^\d{20}$")]


class AgreementIn(Strict):
    platform_name: str = Field(min_length=1, max_length=100)
    base_url: str = Field(min_length=8, max_length=300)
    system_id: Digits20
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=128)
    center_code: str = Field(pattern=r"^\d{8}$")
    community_code: Digits20
    legal_basis: LegalBasis
    document_no: str = Field(min_length=1, max_length=100)
    categories: list[ShareCategory] = Field(min_length=1, max_length=len(ShareCategory))
    retention_days: int = Field(ge=1, le=agreements.MAX_RETENTION_DAYS)
    approved_by: str = Field(min_length=1, max_length=100)
    rate_limit_per_s: int = Field(500, ge=1, le=10_000)
    notify_url: str = Field("", max_length=300)


class WithdrawIn(Strict):
    reason: str = Field(min_length=2, max_length=200)


class AlertUpdate(Strict):
    state: Literal["acknowledged", "closed"]
    note: str = Field("", max_length=200)


class TraceIn(Strict):
    since: datetime
    until: datetime
    device_ids: list[BodyId] = Field(default_factory=list, max_length=200)
    kinds: list[Literal["resident", "visitor", "rider", "vehicle"]] = Field(
        default_factory=lambda: list(tracing.KINDS), min_length=1, max_length=4
    )
    reason: str = Field(min_length=4, max_length=200)
    case_no: str = Field(min_length=1, max_length=64)


class ExportIn(Strict):
    format: Literal["csv", "xlsx"] = "csv"


class DecisionIn(Strict):
    approve: bool
    note: str = Field("", max_length=200)


# -- agreements ---------------------------------------------------------------------------
@router.post(
    "/operator/communities/{community_id}/police-agreements", status_code=201, tags=[OPERATOR]
)
async def create_agreement(
    community_id: PathId, body: AgreementIn, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    terms = agreements.AgreementTerms(**body.model_dump())
    a = await agreements.create_agreement(principal, community_id, terms, runtime.keyring)
    return agreements.agreement_out(a)


@router.post("/operator/police-agreements/{agreement_id}/withdraw", tags=[OPERATOR])
async def withdraw_agreement(
    agreement_id: PathId, body: WithdrawIn, principal: PrincipalDep
) -> dict[str, Any]:
    cancelled = await agreements.withdraw_agreement(principal, agreement_id, body.reason)
    a = await PoliceAgreement.get(id=agreement_id)
    return {**agreements.agreement_out(a), "cancelled_uploads": cancelled}


@router.get("/staff/communities/{community_id}/police-agreements")
async def list_agreements(community_id: PathId, principal: PrincipalDep) -> list[dict[str, Any]]:
    rows = await agreements.list_agreements(principal, community_id)
    return [agreements.agreement_out(a) for a in rows]


@router.get("/staff/communities/{community_id}/police-link")
async def link_status(community_id: PathId, principal: PrincipalDep) -> dict[str, Any]:
    """Whether the link is registered, when it last spoke, and the queue by state."""
    if not principal.is_operator:
        authorize(principal, Action.POLICE_AGREEMENT_READ, community_id)
    a = await agreements.active_agreement(community_id)
    if a is None:
        return {"agreement": None, "registered": False, "uploads": {}}
    state = await PoliceLinkState.get_or_none(agreement_id=a.id)
    return {
        "agreement": a.id,
        "registered": bool(state and state.registered),
        "registered_at": state.registered_at if state else None,
        "last_keepalive_at": state.last_keepalive_at if state else None,
        "next_register_at": state.next_register_at if state else None,
        "last_error": state.last_error if state else "",
        "subscribed": bool(state and state.subscribe_id),
        "uploads": await uploads.upload_counts(a.id),
    }


@router.get("/staff/communities/{community_id}/police-uploads")
async def upload_record(
    community_id: PathId,
    principal: PrincipalDep,
    category: ShareCategory | None = None,
    state: UploadState | None = None,
    resident_id: Annotated[int | None, Query(gt=0, le=2**31 - 1)] = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10**7),
) -> list[dict[str, Any]]:
    rows = await uploads.upload_record(
        principal,
        community_id,
        category=category,
        state=state,
        resident_id=resident_id,
        limit=limit,
        offset=offset,
    )
    return [uploads.upload_out(u) for u in rows]


# -- police alerts (security role only) -------------------------------------------------
@router.get("/staff/communities/{community_id}/police-alerts")
async def list_alerts(
    community_id: PathId,
    principal: PrincipalDep,
    state: PoliceAlertState | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10**7),
) -> list[dict[str, Any]]:
    rows = await alerts.list_alerts(principal, community_id, state, limit, offset)
    return [await alerts.alert_out(a) for a in rows]


@router.post("/staff/police-alerts/{alert_id}")
async def handle_alert(
    alert_id: PathId, body: AlertUpdate, principal: PrincipalDep
) -> dict[str, Any]:
    a = await alerts.handle_alert(principal, alert_id, PoliceAlertState(body.state), body.note)
    return await alerts.alert_out(a)


@router.get("/staff/police-alerts/{alert_id}/capture")
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


@router.post("/staff/communities/{community_id}/trace")
async def trace(community_id: PathId, body: TraceIn, principal: PrincipalDep) -> dict[str, Any]:
    authorize(principal, Action.TRACE_QUERY, community_id)
    req = tracing.TraceRequest(
        since=await _in_zone(body.since, community_id),
        until=await _in_zone(body.until, community_id),
        device_ids=list(body.device_ids),
        kinds=list(body.kinds),
        reason=body.reason,
        case_no=body.case_no,
    )
    return await tracing.trace(principal, community_id, req)


@router.get("/staff/communities/{community_id}/trace-queries")
async def trace_queries(
    community_id: PathId,
    principal: PrincipalDep,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10**7),
) -> list[dict[str, Any]]:
    rows = await tracing.list_queries(principal, community_id, limit, offset)
    return [tracing.query_out(q) for q in rows]


@router.post("/staff/trace-queries/{query_id}/exports", status_code=201)
async def request_export(
    query_id: PathId, body: ExportIn, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    e = await tracing.request_export(
        principal, query_id, body.format, runtime.settings.police_trace_bulk_rows
    )
    return tracing.export_out(e)


@router.get("/staff/communities/{community_id}/trace-exports")
async def list_exports(
    community_id: PathId, principal: PrincipalDep, state: ExportState | None = None
) -> list[dict[str, Any]]:
    rows = await tracing.list_exports(principal, community_id, state)
    return [tracing.export_out(e) for e in rows]


@router.post("/staff/trace-exports/{export_id}/decision")
async def decide_export(
    export_id: PathId, body: DecisionIn, principal: PrincipalDep
) -> dict[str, Any]:
    e = await tracing.decide_export(principal, export_id, body.approve, body.note)
    return tracing.export_out(e)


@router.get("/staff/trace-exports/{export_id}/file")
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
