"""Police alerts (disposition hits from the fake platform) and outsider tracing: seen and
used by the security role only, every step recorded, bulk exports approved by a second
officer. Both backends."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import httpx
from openpyxl import load_workbook

from anxin.clock import utcnow
from models import (
    AccessMethod,
    AuditLog,
    OutboxEvent,
    PassKind,
    PoliceAlert,
    PoliceUpload,
    TraceQuery,
    VisitorPass,
)
from tests.helpers import approved_resident, error_code
from tests.police_helpers import PASSWORD, police_site
from tests.stack import Stack


async def test_a_disposition_becomes_an_alert_for_the_security_role_only(stack: Stack) -> None:
    async with police_site(stack) as site:
        a = await site.agree(["face_captures"])
        event = await site.passage()
        link = site.link()
        try:
            await link.run_once()
        finally:
            await link.stop()
        (face_id,) = site.fake.received("/VIID/Faces")
        assert site.fake.subscriptions  # subscribed at registration, to our receive address
        (sub,) = site.fake.subscriptions.values()
        assert sub["ReceiveAddr"] == "http://anxin.test/VIID/SubscribeNotifications"

        site.fake.deliver_transport = httpx.ASGITransport(app=stack.app)
        # Wrong credentials: refused, nothing recorded.
        site.fake.deliver_auth = (site.username, "not-the-password")
        r = await site.fake.raise_disposition(face_id)
        assert r.status_code == 401
        assert await PoliceAlert.filter(community_id=site.cid).count() == 0

        site.fake.deliver_auth = (site.username, PASSWORD)
        r = await site.fake.raise_disposition(face_id, notification_id="N-0001", title="在逃人员")
        assert r.status_code == 200, r.text
        statuses = r.json()["ResponseStatusListObject"]["ResponseStatusObject"]
        assert statuses[0]["StatusCode"] == 0
        # Redelivered: still OK, still one alert.
        r = await site.fake.raise_disposition(face_id, notification_id="N-0001")
        assert r.json()["ResponseStatusListObject"]["ResponseStatusObject"][0]["StatusCode"] == 0
        assert await PoliceAlert.filter(community_id=site.cid).count() == 1

        # The security officer sees it with the capture it refers to.
        r = await stack.client.get(
            f"/api/v1/staff/communities/{site.cid}/police-alerts", headers=site.security_h
        )
        assert r.status_code == 200
        (alert,) = r.json()["items"]
        assert alert["title"] == "在逃人员" and alert["state"] == "open"
        assert alert["object_id"] == face_id and alert["door"] == "东门"
        assert alert["capture"]["access_event_id"] == event.id
        r = await stack.client.get(
            f"/api/v1/staff/police-alerts/{alert['id']}/capture", headers=site.security_h
        )
        assert r.status_code == 200 and r.content.startswith(b"\xff\xd8")
        # Notified to the security role, nobody else.
        (out,) = await OutboxEvent.filter(dedupe_key=f"police_alert:{alert['id']}")
        assert out.recipients["staff_roles"] == ["security"]
        assert not out.recipients["residents"] and not out.recipients["rooms"]

        # Ordinary property staff and residents see nothing of it.
        for h in (site.admin_h, site.guard_h):
            for path in (
                f"/api/v1/staff/communities/{site.cid}/police-alerts",
                f"/api/v1/staff/police-alerts/{alert['id']}/capture",
            ):
                r = await stack.client.get(path, headers=h)
                assert r.status_code == 403, (path, r.status_code)
            r = await stack.client.get(f"/api/v1/staff/communities/{site.cid}/alarms", headers=h)
            assert r.status_code == 200 and all(
                x["kind"] != "police_alert" for x in r.json()["items"]
            )
        resident = await approved_resident(stack, site.world.rooms[0], site.admin_h)
        r = await stack.client.get(
            f"/api/v1/staff/communities/{site.cid}/police-alerts", headers=resident.headers
        )
        assert r.status_code == 403

        # Acknowledge, then close: recorded.
        for state in ("acknowledged", "closed"):
            r = await stack.client.post(
                f"/api/v1/staff/police-alerts/{alert['id']}",
                json={"state": state, "note": "已通知派出所"},
                headers=site.security_h,
            )
            assert r.status_code == 200 and r.json()["state"] == state
        r = await stack.client.post(
            f"/api/v1/staff/police-alerts/{alert['id']}",
            json={"state": "acknowledged"},
            headers=site.security_h,
        )
        assert r.status_code == 409
        actions = set(
            await AuditLog.filter(
                target_type="police_alert", target_id=str(alert["id"])
            ).values_list("action", flat=True)
        )
        assert {
            "police.alert.received",
            "police.alert.acknowledged",
            "police.alert.closed",
            "police.alert.capture_viewed",
        } <= actions

        # A notification about an object that is not ours raises nothing.
        body = {
            "DispositionNotificationListObject": {
                "DispositionNotificationObject": [
                    {"NotificationID": "N-X", "CntObjectID": "9" * 48, "Title": "x"}
                ]
            }
        }
        r = await httpx.AsyncClient(
            transport=httpx.ASGITransport(app=stack.app), base_url="http://anxin.test"
        ).post(
            "/VIID/DispositionNotifications",
            content=json.dumps(body).encode(),
            auth=httpx.DigestAuth(site.username, PASSWORD),
        )
        assert r.status_code == 200
        assert r.json()["ResponseStatusListObject"]["ResponseStatusObject"][0]["StatusCode"] != 0
        assert await PoliceAlert.filter(community_id=site.cid).count() == 1
        assert await PoliceUpload.filter(agreement_id=a["id"]).count() == 1


async def _tracing_world(site) -> dict[str, int]:  # type: ignore[no-untyped-def]
    resident = await site.resident("赵六", "13600000003")
    room = site.world.rooms[1]
    now = utcnow()
    visitor = await VisitorPass.create(
        community=site.world.community,
        room=room,
        created_by=resident,
        kind=PassKind.VISITOR,
        visitor_name="访客甲",
        visitor_phone="=HYPERLINK(1)",
        valid_from=now - timedelta(hours=1),
        valid_until=now + timedelta(hours=4),
        max_uses=2,
        share_token=f"trace-{resident.id}",
    )
    t = now - timedelta(minutes=30)
    await site.passage(resident_id=resident.id, room_id=room.id, occurred_at=t, image=False)
    await site.passage(
        method=AccessMethod.QR,
        reason="visitor_pass",
        pass_id=visitor.id,
        room_id=room.id,
        occurred_at=t,
        image=False,
    )
    await site.passage(method=AccessMethod.QR, reason="delivery_pass", occurred_at=t, image=False)
    await site.passage(
        method=AccessMethod.PLATE,
        plate="浙C00001",
        reason="unknown_plate_visitor",
        occurred_at=t,
        image=False,
    )
    # A resident's registered car is a resident's entry; a car leaving is no entry at all.
    await site.passage(
        method=AccessMethod.PLATE,
        plate="浙A88888",
        reason="registered_plate",
        room_id=room.id,
        occurred_at=t,
        image=False,
    )
    await site.passage(
        method=AccessMethod.PLATE,
        plate="浙A88888",
        reason="vehicle_exit",
        occurred_at=t,
        image=False,
    )
    return {"resident": resident.id, "visitor_pass": visitor.id}


async def test_tracing_is_audited_and_bulk_exports_need_a_second_approver(stack: Stack) -> None:
    async with police_site(stack) as site:
        ids = await _tracing_world(site)
        now = utcnow()
        body = {
            "since": (now - timedelta(hours=2)).isoformat(),
            "until": (now + timedelta(minutes=1)).isoformat(),
            "device_ids": [site.gate.id, site.barrier.id],
            "reason": "排查盗窃案嫌疑人出入",
            "case_no": "A3301062026120001",
        }
        url = f"/api/v1/staff/communities/{site.cid}/trace"
        # Only the security role; reason and case number are required.
        for h in (site.admin_h, site.guard_h):
            assert (await stack.client.post(url, json=body, headers=h)).status_code == 403
        r = await stack.client.post(
            url, json={k: v for k, v in body.items() if k != "case_no"}, headers=site.security_h
        )
        assert r.status_code == 422
        r = await stack.client.post(url, json={**body, "reason": "  "}, headers=site.security_h)
        assert r.status_code == 422
        assert await TraceQuery.filter(community_id=site.cid).count() == 0

        r = await stack.client.post(url, json=body, headers=site.security_h)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["count"] == 5
        res, car = out["residents"]
        assert res["kind"] == "resident" and res["name"] == "赵六"
        assert car["kind"] == "vehicle" and car["plate"] == "浙A88888"
        kinds = sorted(x["kind"] for x in out["non_residents"])
        assert kinds == ["rider", "vehicle", "visitor"]
        vis = next(x for x in out["non_residents"] if x["kind"] == "visitor")
        assert vis["name"] == "访客甲" and vis["room"].endswith("201")
        q = await TraceQuery.get(id=out["query_id"])
        assert (q.reason, q.case_no, q.result_count) == (body["reason"], body["case_no"], 5)
        assert await AuditLog.filter(action="police.trace.query", target_id=str(q.id)).exists()
        # Only the chosen doors: the barrier alone gives only the vehicle.
        r = await stack.client.post(
            url, json={**body, "device_ids": [site.barrier.id]}, headers=site.security_h
        )
        assert [x["kind"] for x in r.json()["non_residents"]] == ["vehicle"]
        assert [x["plate"] for x in r.json()["residents"]] == ["浙A88888"]

        # A small export goes at once (audited); CSV with formula cells defused.
        r = await stack.client.post(
            f"/api/v1/staff/trace-queries/{q.id}/exports",
            json={"format": "csv"},
            headers=site.security_h,
        )
        assert r.status_code == 201 and r.json()["state"] == "approved"
        small = r.json()["id"]
        r = await stack.client.get(
            f"/api/v1/staff/trace-exports/{small}/file", headers=site.security_h
        )
        assert r.status_code == 200
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert len(rows) == 6 and "'=HYPERLINK(1)" in sum(rows, [])
        # Someone else cannot download it.
        r = await stack.client.get(
            f"/api/v1/staff/trace-exports/{small}/file", headers=site.security2_h
        )
        assert r.status_code == 403

        # A bulk export waits for a second officer.
        stack.runtime.settings.police_trace_bulk_rows = 2
        try:
            r = await stack.client.post(
                f"/api/v1/staff/trace-queries/{q.id}/exports",
                json={"format": "xlsx"},
                headers=site.security_h,
            )
        finally:
            stack.runtime.settings.police_trace_bulk_rows = 200
        assert r.status_code == 201 and r.json()["state"] == "pending" and r.json()["bulk"]
        bulk = r.json()["id"]
        r = await stack.client.get(
            f"/api/v1/staff/trace-exports/{bulk}/file", headers=site.security_h
        )
        assert r.status_code == 409 and error_code(r) == "approval_required"
        decide = f"/api/v1/staff/trace-exports/{bulk}/decision"
        r = await stack.client.post(decide, json={"approve": True}, headers=site.security_h)
        assert r.status_code == 403  # not one's own request
        for h in (site.admin_h, site.guard_h):
            assert (
                await stack.client.post(decide, json={"approve": True}, headers=h)
            ).status_code == 403
        r = await stack.client.post(
            decide, json={"approve": True, "note": "案情需要"}, headers=site.security2_h
        )
        assert r.status_code == 200 and r.json()["state"] == "approved"
        r = await stack.client.post(decide, json={"approve": False}, headers=site.security2_h)
        assert r.status_code == 409
        r = await stack.client.get(
            f"/api/v1/staff/trace-exports/{bulk}/file", headers=site.security_h
        )
        assert r.status_code == 200
        wb = load_workbook(io.BytesIO(r.content))
        assert wb.active.max_row == 6
        actions = set(
            await AuditLog.filter(
                community_id=site.cid, action__startswith="police.trace"
            ).values_list("action", flat=True)
        )
        assert {
            "police.trace.query",
            "police.trace.export_requested",
            "police.trace.export_approved",
            "police.trace.export_downloaded",
        } <= actions
        # The query log is there for review.
        r = await stack.client.get(
            f"/api/v1/staff/communities/{site.cid}/trace-queries", headers=site.security2_h
        )
        assert [x["case_no"] for x in r.json()["items"]][-1] == "A3301062026120001"
        assert ids["resident"]
