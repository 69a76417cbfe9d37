"""The police link's console pages over HTTP: operators make and withdraw agreements,
admins read the terms and the record, only security officers see alerts and trace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx

from anxin.clock import utcnow
from models import (
    AgreementState,
    AuditLog,
    PoliceAgreement,
    PoliceAlert,
    PoliceAlertState,
    TraceQuery,
)
from tests.console_helpers import anonymous_client, csrf_of
from tests.helpers import STAFF_PASSWORD
from tests.police_helpers import PASSWORD, police_site
from tests.stack import Stack


@asynccontextmanager
async def console_as(
    stack: Stack, username: str, landing: str
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A console session of `username` and its CSRF token, read from `landing`."""
    async with anonymous_client(stack) as client:
        r = await client.get("/console/login")
        r = await client.post(
            "/console/login",
            data={"username": username, "password": STAFF_PASSWORD, "csrf_token": csrf_of(r.text)},
        )
        assert r.status_code == 303, r.text
        r = await client.get(landing)
        assert r.status_code == 200, r.text
        yield client, csrf_of(r.text)


async def test_console_police_pages(stack: Stack) -> None:
    async with police_site(stack) as site:
        cid = site.cid
        operator = site.operator
        # The operator makes the agreement from the console.
        async with console_as(stack, operator.username, "/console/ops/police") as (client, csrf):
            r = await client.get("/console/ops/police")
            assert r.status_code == 200 and site.world.community.name in r.text
            r = await client.get(f"/console/ops/police/{cid}")
            assert r.status_code == 200
            form = {
                "csrf_token": csrf,
                "platform_name": "控制台视图库",
                "base_url": site.url,
                "system_id": "33010600002000000001",
                "username": site.username,
                "password": PASSWORD,
                "center_code": "33010600",
                "community_code": "33010600002160000001",
                "legal_basis": "pipl_13_3",
                "document_no": "控制台-1",
                "retention_days": "90",
                "approved_by": "物业 王",
                "categories": ["face_captures", "apes"],
                "notify_url": "http://anxin.test/VIID/SubscribeNotifications",
            }
            r = await client.post(f"/console/ops/police/{cid}", data=form)
            assert r.status_code == 303, r.text
            a = await PoliceAgreement.get(community_id=cid, state=AgreementState.ACTIVE)
            assert sorted(a.categories) == ["apes", "face_captures"]
            # Without the CSRF token nothing happens.
            r = await client.post(
                f"/console/ops/police/agreements/{a.id}/withdraw", data={"reason": "测试"}
            )
            assert r.status_code in (400, 403)
            assert (await PoliceAgreement.get(id=a.id)).state == AgreementState.ACTIVE

        # The admin reads the terms; the police alerts and tracing are not in the menu.
        async with console_as(stack, site.admin.username, f"/console/c/{cid}/police") as (
            client,
            _,
        ):
            r = await client.get(f"/console/c/{cid}/police")
            assert r.status_code == 200 and "控制台-1" in r.text
            assert f"/console/c/{cid}/police-alerts" not in r.text
            for path in (f"/console/c/{cid}/police-alerts", f"/console/c/{cid}/trace"):
                assert (await client.get(path)).status_code == 403

        # The security officer: an alert, acknowledged; a tracing query with an export.
        event = await site.passage()
        alert = await PoliceAlert.create(
            agreement_id=a.id,
            community_id=cid,
            notification_id="console-1",
            title="布控人员",
            access_event_id=event.id,
            device_id=site.gate.id,
        )
        async with console_as(stack, site.security.username, f"/console/c/{cid}/trace") as (
            client,
            csrf,
        ):
            r = await client.get(f"/console/c/{cid}/police-alerts")
            assert r.status_code == 200 and "布控人员" in r.text
            r = await client.get(f"/console/c/{cid}/police-alerts/{alert.id}/capture.jpg")
            assert r.status_code == 200 and r.content.startswith(b"\xff\xd8")
            r = await client.post(
                f"/console/c/{cid}/police-alerts/{alert.id}",
                data={"csrf_token": csrf, "state": "acknowledged", "note": "已核实"},
            )
            assert r.status_code == 303
            assert (await PoliceAlert.get(id=alert.id)).state == PoliceAlertState.ACKNOWLEDGED
            now = utcnow().astimezone()
            r = await client.post(
                f"/console/c/{cid}/trace",
                data={
                    "csrf_token": csrf,
                    "since": (now - timedelta(hours=1)).isoformat(timespec="minutes"),
                    "until": (now + timedelta(minutes=5)).isoformat(timespec="minutes"),
                    "reason": "控制台排查测试",
                    "case_no": "C-2026-1",
                    "kinds": ["resident", "visitor", "rider", "vehicle"],
                },
            )
            assert r.status_code == 200, r.text
            q = await TraceQuery.filter(community_id=cid).order_by("-id").first()
            assert q is not None and q.case_no == "C-2026-1" and q.result_count == 1
            r = await client.post(
                f"/console/c/{cid}/trace-queries/{q.id}/export",
                data={"csrf_token": csrf, "format": "csv"},
            )
            assert r.status_code == 303
            r = await client.get(f"/console/c/{cid}/trace")
            assert r.status_code == 200 and "C-2026-1" in r.text
        assert await AuditLog.filter(action="police.trace.export_requested").exists()

        # The operator withdraws it from the console.
        async with console_as(stack, operator.username, "/console/ops/police") as (client, csrf):
            r = await client.post(
                f"/console/ops/police/agreements/{a.id}/withdraw",
                data={"csrf_token": csrf, "reason": "到期"},
            )
            assert r.status_code == 303
        assert (await PoliceAgreement.get(id=a.id)).state == AgreementState.WITHDRAWN
