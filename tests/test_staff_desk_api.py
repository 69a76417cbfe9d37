"""Access cards, the audit log and property notices, through the API."""

from __future__ import annotations

import httpx

from models import AccessCard, AuditLog, Notification, Resident, StaffRoleName
from notifications.wechat_templates import default_templates
from tests.devices import register_device, simulator
from tests.helpers import approved_resident, make_staff, make_world, staff_headers
from tests.stack import Stack
from tests.test_faces_support import eventually

V1 = "/api/v1/staff"


async def test_cards_are_issued_and_revoked_and_the_gate_follows(stack: Stack) -> None:
    world = await make_world()
    cid = world.community.id
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    approver_h = await staff_headers(
        stack, await make_staff(world.community, StaffRoleName.APPROVER)
    )
    guard_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.GUARD))
    app = await approved_resident(stack, world.rooms[0], admin_h)
    resident = await Resident.get(openid=app.openid)
    r = await stack.client.post(
        f"{V1}/communities/{cid}/cards",
        json={"resident_id": resident.id, "card_no": "ab:cd:12:34"},
        headers=approver_h,
    )
    assert r.status_code == 201, r.text
    card = r.json()
    assert card["card_no"] == "ABCD1234" and card["active"]
    again = await stack.client.post(
        f"{V1}/communities/{cid}/cards",
        json={"resident_id": resident.id, "card_no": "ABCD1234"},
        headers=admin_h,
    )
    assert again.status_code == 409
    assert (
        await stack.client.post(
            f"{V1}/communities/{cid}/cards",
            json={"resident_id": resident.id, "card_no": "12"},
            headers=admin_h,
        )
    ).status_code == 422
    stranger = await Resident.create(name="路人")
    r = await stack.client.post(
        f"{V1}/communities/{cid}/cards",
        json={"resident_id": stranger.id, "card_no": "FFFF0001"},
        headers=admin_h,
    )
    assert r.status_code == 404
    r = await stack.client.post(
        f"{V1}/communities/{cid}/cards",
        json={"resident_id": resident.id, "card_no": "FFFF0002"},
        headers=guard_h,
    )
    assert r.status_code == 403

    gate = await register_device(stack, cid, admin_h, kind="face_gate")
    async with simulator(stack, gate) as sim:
        await sim.swipe_card("ABCD1234")
        assert (await sim.wait_opened()).reason == "resident"
        r = await stack.client.post(
            f"{V1}/cards/{card['id']}/revoke", json={"reason": "卡片遗失"}, headers=admin_h
        )
        assert r.status_code == 200 and r.json()["active"] is False
        await sim.swipe_card("ABCD1234")
        await sim.flush()
    assert not (await AccessCard.get(id=card["id"])).active
    assert await AuditLog.filter(action="card.revoked", target_id=str(card["id"])).exists()

    # The audit log: admins read it; others may not.
    r = await stack.client.get(
        f"{V1}/communities/{cid}/audit-log", params={"action": "card."}, headers=admin_h
    )
    assert r.status_code == 200
    actions = [row["action"] for row in r.json()["items"]]
    assert actions[:2] == ["card.revoked", "card.issued"]
    assert r.json()["items"][0]["details"]["reason"] == "卡片遗失"
    r = await stack.client.get(f"{V1}/communities/{cid}/audit-log", headers=guard_h)
    assert r.status_code == 403


async def test_a_notice_reaches_the_chosen_part_of_the_community(stack: Stack) -> None:
    world = await make_world(buildings=2, units=1, rooms_per_unit=1)
    cid = world.community.id
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    in_b1 = await approved_resident(stack, world.rooms[0], admin_h)
    in_b2 = await approved_resident(stack, world.rooms[1], admin_h)
    ids = {
        "b1": (await Resident.get(openid=in_b1.openid)).id,
        "b2": (await Resident.get(openid=in_b2.openid)).id,
    }
    # b1 agreed (in WeChat) to receive notices as subscribe messages.
    template = default_templates()["property_notice"].template_id
    async with httpx.AsyncClient(base_url=stack.wechat_url) as wx:
        r = await wx.post(
            "/__mock__/subscribe",
            json={"openid": in_b1.openid, "template_id": template, "action": "accept"},
        )
        assert r.status_code == 200, r.text
    r = await in_b1.post(
        "/api/v1/me/subscriptions", json={"template_id": template, "accepted": True}
    )
    assert r.status_code == 200, r.text
    r = await stack.client.post(
        f"{V1}/communities/{cid}/notices",
        json={
            "title": "停水通知",
            "body": "周二 9:00-12:00 1栋停水检修。",
            "building_ids": [world.buildings[0].id],
        },
        headers=admin_h,
    )
    assert r.status_code == 201, r.text
    assert r.json()["rooms"] == 1

    async def delivered() -> Notification | None:
        return await Notification.filter(
            recipient_id=ids["b1"], recipient_type="resident", event_type="property_notice"
        ).first()

    note = await eventually(delivered)
    assert note.title_zh == "物业通知：停水通知" and "停水检修" in note.body_zh
    assert not await Notification.filter(
        recipient_id=ids["b2"], event_type="property_notice"
    ).exists()
    mine = await in_b1.get("/api/v1/notifications")
    assert "停水通知" in mine.text

    async def on_wechat() -> list[dict]:
        async with httpx.AsyncClient(base_url=stack.wechat_url) as wx:
            got = await wx.get("/__mock__/messages", params={"openid": in_b1.openid})
        return got.json()

    [message] = await eventually(on_wechat)
    assert message["data"]["thing1"]["value"] == "停水通知"
    listed = await stack.client.get(f"{V1}/communities/{cid}/notices", headers=admin_h)
    assert listed.json()["items"][0]["title"] == "停水通知"
    other = await make_world()
    r = await stack.client.post(
        f"{V1}/communities/{cid}/notices",
        json={"title": "x", "body": "y", "building_ids": [other.buildings[0].id]},
        headers=admin_h,
    )
    assert r.status_code == 404
    guard_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.GUARD))
    r = await stack.client.post(
        f"{V1}/communities/{cid}/notices", json={"title": "x", "body": "y"}, headers=guard_h
    )
    assert r.status_code == 403
