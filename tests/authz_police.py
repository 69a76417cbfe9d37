"""Authz matrix entries for the police link (merged into tests/authz_table.py TABLE).

None of the matrix's roles may touch police alerts or tracing: those belong to the
security role (tests/test_police_alerts.py checks it can). Agreements are made and
withdrawn by a city operator only; property admins may read the terms and the upload
record (who received what about their residents).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from anxin.clock import utcnow
from models import (
    ExportState,
    LegalBasis,
    PoliceAgreement,
    PoliceAlert,
    StaffAccount,
    TraceExport,
    TraceQuery,
)
from tests.authz_table import ADMIN, OUTSIDER, V1, Call, Ctx, Rule

NOBODY: frozenset[str] = frozenset()
OPERATOR_ONLY = {OUTSIDER: 403}  # not a community question: refused before any lookup


async def _staff_id(ctx: Ctx) -> int:
    staff = await StaffAccount.filter(username=ctx.staff_login[0]).first()
    return staff.id if staff else 1


async def _agreement(ctx: Ctx) -> PoliceAgreement:
    return await PoliceAgreement.create(
        community_id=ctx.world.community.id,
        platform_name="矩阵视图库",
        base_url="http://127.0.0.1:9",
        system_id="3" * 20,
        username="matrix",
        password_enc=b"",
        center_code="33010600",
        community_code="3" * 20,
        legal_basis=LegalBasis.PIPL_13_3,
        document_no=f"M-{secrets.token_hex(3)}",
        categories=["apes"],
        retention_days=30,
        approved_by="matrix",
        created_by_id=1,
    )


def _agreement_body() -> dict[str, object]:
    return {
        "platform_name": "矩阵视图库",
        "base_url": "http://127.0.0.1:9",
        "system_id": "3" * 20,
        "username": "matrix",
        "password": "matrix-password",
        "center_code": "33010600",
        "community_code": "3" * 20,
        "legal_basis": "pipl_13_3",
        "document_no": "M-1",
        "categories": ["apes"],
        "retention_days": 30,
        "approved_by": "matrix",
    }


async def p_create(ctx: Ctx, role: str) -> Call:
    return Call(params={"community_id": ctx.world.community.id}, json=_agreement_body())


async def p_withdraw(ctx: Ctx, role: str) -> Call:
    a = await _agreement(ctx)
    return Call(params={"agreement_id": a.id}, json={"reason": "矩阵"})


async def p_community(ctx: Ctx, role: str) -> Call:
    return Call(params={"community_id": ctx.world.community.id})


async def _alert(ctx: Ctx) -> PoliceAlert:
    return await PoliceAlert.create(
        agreement_id=1,
        community_id=ctx.world.community.id,
        notification_id=f"M-{secrets.token_hex(8)}",
    )


async def p_alert(ctx: Ctx, role: str) -> Call:
    return Call(params={"alert_id": (await _alert(ctx)).id}, json={"state": "acknowledged"})


async def p_alert_capture(ctx: Ctx, role: str) -> Call:
    return Call(params={"alert_id": (await _alert(ctx)).id})


async def p_trace(ctx: Ctx, role: str) -> Call:
    now = utcnow()
    return Call(
        params={"community_id": ctx.world.community.id},
        json={
            "since": (now - timedelta(hours=1)).isoformat(),
            "until": now.isoformat(),
            "reason": "矩阵测试事由",
            "case_no": "M-1",
        },
    )


async def _query(ctx: Ctx) -> TraceQuery:
    now = utcnow()
    return await TraceQuery.create(
        community_id=ctx.world.community.id,
        staff_id=await _staff_id(ctx),
        reason="矩阵",
        case_no="M",
        since=now - timedelta(hours=1),
        until=now,
    )


async def p_export_request(ctx: Ctx, role: str) -> Call:
    return Call(params={"query_id": (await _query(ctx)).id}, json={"format": "csv"})


async def _export(ctx: Ctx, state: ExportState) -> TraceExport:
    q = await _query(ctx)
    return await TraceExport.create(
        query_id=q.id,
        community_id=ctx.world.community.id,
        requested_by_id=q.staff_id,
        format="csv",
        rows=0,
        bulk=True,
        state=state,
    )


async def p_decision(ctx: Ctx, role: str) -> Call:
    e = await _export(ctx, ExportState.PENDING)
    return Call(params={"export_id": e.id}, json={"approve": True})


async def p_file(ctx: Ctx, role: str) -> Call:
    e = await _export(ctx, ExportState.APPROVED)
    return Call(params={"export_id": e.id})


STAFF_READ = frozenset({ADMIN})

RULES: dict[tuple[str, str], Rule] = {
    ("POST", f"{V1}/operator/communities/{{community_id}}/police-agreements"): Rule(
        "staff", NOBODY, p_create, ok=201, deny=OPERATOR_ONLY
    ),
    ("POST", f"{V1}/operator/police-agreements/{{agreement_id}}/withdraw"): Rule(
        "staff", NOBODY, p_withdraw, deny=OPERATOR_ONLY
    ),
    ("GET", f"{V1}/staff/communities/{{community_id}}/police-agreements"): Rule(
        "staff", STAFF_READ, p_community
    ),
    ("GET", f"{V1}/staff/communities/{{community_id}}/police-link"): Rule(
        "staff", STAFF_READ, p_community
    ),
    ("GET", f"{V1}/staff/communities/{{community_id}}/police-uploads"): Rule(
        "staff", STAFF_READ, p_community
    ),
    ("GET", f"{V1}/staff/communities/{{community_id}}/police-alerts"): Rule(
        "staff", NOBODY, p_community
    ),
    ("POST", f"{V1}/staff/police-alerts/{{alert_id}}"): Rule("staff", NOBODY, p_alert),
    ("GET", f"{V1}/staff/police-alerts/{{alert_id}}/capture"): Rule(
        "staff", NOBODY, p_alert_capture
    ),
    ("POST", f"{V1}/staff/communities/{{community_id}}/trace"): Rule("staff", NOBODY, p_trace),
    ("GET", f"{V1}/staff/communities/{{community_id}}/trace-queries"): Rule(
        "staff", NOBODY, p_community
    ),
    ("GET", f"{V1}/staff/communities/{{community_id}}/trace-exports"): Rule(
        "staff", NOBODY, p_community
    ),
    ("POST", f"{V1}/staff/trace-queries/{{query_id}}/exports"): Rule(
        "staff", NOBODY, p_export_request, ok=201
    ),
    ("POST", f"{V1}/staff/trace-exports/{{export_id}}/decision"): Rule("staff", NOBODY, p_decision),
    ("GET", f"{V1}/staff/trace-exports/{{export_id}}/file"): Rule("staff", NOBODY, p_file),
}
