"""Console matrix entries for the police link (merged into tests/authz_console.py TABLE).

Alerts and tracing: the security role alone. The terms and the upload record: the
community's admin and security. Agreements: city operators only.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import httpx

from anxin.clock import utcnow
from domain.access.snapshots import snapshot_store
from models import (
    AccessEvent,
    AccessMethod,
    AccessResult,
    AgreementState,
    City,
    Community,
    ExportState,
    LegalBasis,
    PoliceAgreement,
    PoliceAlert,
    PoliceAlertState,
    TraceExport,
    TraceQuery,
)
from tests.authz_console import ADMIN, OP, SECURITY, Call, Ctx, Rule, device

C = "/console/c/{cid}"
S = frozenset({SECURITY})
AS = frozenset({ADMIN, SECURITY})
OPS = {"scope": "operator"}
# The smallest thing that starts like a JPEG; the capture route does not decode it.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


async def _alert(ctx: Ctx) -> PoliceAlert:
    cid = ctx.world.community.id
    door = await device(ctx)
    ref = snapshot_store(ctx.stack.settings).save(cid, "matrix", JPEG)
    event = await AccessEvent.create(
        community_id=cid,
        device_id=door.id,
        method=AccessMethod.FACE,
        result=AccessResult.GRANTED,
        reason="resident",
        snapshot_ref=ref,
    )
    return await PoliceAlert.create(
        agreement_id=1,
        community_id=cid,
        notification_id=f"cm-{secrets.token_hex(8)}",
        access_event_id=event.id,
        device_id=door.id,
    )


async def p_alert(ctx: Ctx, role: str) -> Call:
    a = await _alert(ctx)
    return Call(
        params={"cid": ctx.world.community.id, "alert_id": a.id},
        form={"state": "acknowledged", "note": "矩阵"},
    )


async def v_alert(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    a = await PoliceAlert.get(id=call.params["alert_id"])
    assert a.state == PoliceAlertState.ACKNOWLEDGED


async def p_trace(ctx: Ctx, role: str) -> Call:
    now = utcnow()
    return Call(
        params={"cid": ctx.world.community.id},
        form={
            "since": (now - timedelta(hours=1)).isoformat(),
            "until": now.isoformat(),
            "reason": "矩阵排查事由",
            "case_no": "CM-1",
        },
    )


async def _query(ctx: Ctx, staff_id: int) -> TraceQuery:
    now = utcnow()
    return await TraceQuery.create(
        community_id=ctx.world.community.id,
        staff_id=staff_id,
        reason="矩阵",
        case_no="CM",
        since=now - timedelta(hours=1),
        until=now,
    )


def _security_id(ctx: Ctx) -> int:
    return ctx.staff[SECURITY].id


async def p_export(ctx: Ctx, role: str) -> Call:
    q = await _query(ctx, _security_id(ctx))  # the officer exports their own query
    return Call(params={"cid": ctx.world.community.id, "query_id": q.id}, form={"format": "csv"})


async def _export(ctx: Ctx, requester: int, state: ExportState) -> TraceExport:
    q = await _query(ctx, requester)
    return await TraceExport.create(
        query_id=q.id,
        community_id=ctx.world.community.id,
        requested_by_id=requester,
        format="csv",
        rows=500,
        bulk=True,
        state=state,
    )


async def p_decision(ctx: Ctx, role: str) -> Call:
    # Requested by another officer's account (the admin's id stands in): a second approver.
    e = await _export(ctx, ctx.staff[ADMIN].id, ExportState.PENDING)
    return Call(params={"cid": ctx.world.community.id, "export_id": e.id}, form={"approve": "yes"})


async def v_decision(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    e = await TraceExport.get(id=call.params["export_id"])
    assert e.state == ExportState.APPROVED and e.approver_id == _security_id(ctx)


async def p_file(ctx: Ctx, role: str) -> Call:
    e = await _export(ctx, _security_id(ctx), ExportState.APPROVED)
    return Call(params={"cid": ctx.world.community.id, "export_id": e.id})


async def _fresh_community() -> Community:
    city, _ = await City.get_or_create(name="测试市", defaults={"name_en": "Test City"})
    return await Community.create(city=city, name=f"协议小区-{secrets.token_hex(3)}")


async def p_ops_community(ctx: Ctx, role: str) -> Call:
    return Call(params={"community_id": ctx.world.community.id})


async def p_ops_create(ctx: Ctx, role: str) -> Call:
    c = await _fresh_community()  # a community of its own: one active agreement each
    return Call(
        params={"community_id": c.id},
        form={
            "platform_name": "矩阵视图库",
            "base_url": "http://127.0.0.1:9",
            "system_id": "3" * 20,
            "username": "matrix",
            "password": "matrix-password",
            "center_code": "33010600",
            "community_code": "3" * 20,
            "legal_basis": "pipl_13_3",
            "document_no": "CM-1",
            "retention_days": "30",
            "approved_by": "matrix",
            "categories": ["apes"],
        },
        state={"community_id": c.id},
    )


async def v_ops_create(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert await PoliceAgreement.exists(
        community_id=call.state["community_id"], state=AgreementState.ACTIVE
    )


async def p_ops_withdraw(ctx: Ctx, role: str) -> Call:
    c = await _fresh_community()
    a = await PoliceAgreement.create(
        community_id=c.id,
        platform_name="矩阵视图库",
        base_url="http://127.0.0.1:9",
        system_id="3" * 20,
        username="matrix",
        password_enc=b"",
        center_code="33010600",
        community_code="3" * 20,
        legal_basis=LegalBasis.PIPL_13_3,
        document_no="CM-2",
        categories=["apes"],
        retention_days=30,
        approved_by="matrix",
        created_by_id=1,
    )
    return Call(params={"agreement_id": a.id}, form={"reason": "矩阵撤回"})


async def v_ops_withdraw(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    a = await PoliceAgreement.get(id=call.params["agreement_id"])
    assert a.state == AgreementState.WITHDRAWN


RULES: dict[tuple[str, str], Rule] = {
    ("GET", f"{C}/police"): Rule(AS),
    ("GET", f"{C}/police-alerts"): Rule(S),
    ("GET", f"{C}/police-alerts/{{alert_id}}/capture.jpg"): Rule(S, p_alert),
    ("POST", f"{C}/police-alerts/{{alert_id}}"): Rule(S, p_alert, ok=303, verify=v_alert),
    ("GET", f"{C}/trace"): Rule(S),
    ("POST", f"{C}/trace"): Rule(S, p_trace),
    ("POST", f"{C}/trace-queries/{{query_id}}/export"): Rule(S, p_export, ok=303),
    ("POST", f"{C}/trace-exports/{{export_id}}/decision"): Rule(
        S, p_decision, ok=303, verify=v_decision
    ),
    ("GET", f"{C}/trace-exports/{{export_id}}/file"): Rule(S, p_file),
    ("GET", "/console/ops/police"): Rule(OP, **OPS),
    ("GET", "/console/ops/police/{community_id}"): Rule(OP, p_ops_community, **OPS),
    ("POST", "/console/ops/police/{community_id}"): Rule(
        OP, p_ops_create, ok=303, verify=v_ops_create, **OPS
    ),
    ("POST", "/console/ops/police/agreements/{agreement_id}/withdraw"): Rule(
        OP, p_ops_withdraw, ok=303, verify=v_ops_withdraw, **OPS
    ),
}
