"""Console pages over HTTP: the import with its progress and per-row errors, the
residents' directory, the charts' data."""

from __future__ import annotations

import asyncio

from models import AccessCard, Invitation, Membership, MembershipState, Resident, StaffRoleName
from tests.console_helpers import console_client
from tests.helpers import approved_resident, make_staff, make_world, new_resident, staff_headers
from tests.stack import Stack


async def _poll(client, url: str) -> str:  # type: ignore[no-untyped-def]
    for _ in range(200):
        r = await client.get(url, headers={"hx-request": "true"})
        assert r.status_code == 200, r.text
        if 'data-state="running"' not in r.text:
            return r.text
        await asyncio.sleep(0.05)
    raise AssertionError("import did not finish")


async def test_import_shows_progress_then_the_result_or_each_rows_errors(stack: Stack) -> None:
    world = await make_world()
    cid = world.community.id
    admin = await make_staff(world.community, StaffRoleName.ADMIN)
    good = "楼栋,单元,房号,姓名,手机号,身份\n" + "".join(
        f"8栋,1单元,{100 + i},住户{i},1390000{i:04d},业主\n" for i in range(60)
    )
    bad = (
        "楼栋,单元,房号,姓名,手机号,身份\n"
        "8栋,1单元,101,张三,12345,业主\n"
        "8栋,,102,李四,13900001111,房东\n"
    )
    async with console_client(stack, admin.username) as (client, csrf):
        r = await client.post(
            f"/console/c/{cid}/setup/import",
            data={"csrf_token": csrf},
            files={"file": ("bad.csv", bad.encode(), "text/csv")},
            headers={"hx-request": "true"},
        )
        assert r.status_code == 200 and "import-status" in r.text
        job = r.text.split(f"/console/c/{cid}/setup/import/")[1].split('"')[0]
        text = await _poll(client, f"/console/c/{cid}/setup/import/{job}")
        assert 'data-state="failed"' in text and "import-errors" in text
        assert text.count("<tr>") >= 3  # one line per problem, rows 2 and 3
        assert not await Membership.filter(community_id=cid, room__building__name="8栋").exists()

        r = await client.post(
            f"/console/c/{cid}/setup/import",
            data={"csrf_token": csrf},
            files={"file": ("good.csv", good.encode(), "text/csv")},
            headers={"hx-request": "true"},
        )
        job = r.text.split(f"/console/c/{cid}/setup/import/")[1].split('"')[0]
        text = await _poll(client, f"/console/c/{cid}/setup/import/{job}")
        assert 'data-state="finished"' in text and "60" in text
        # An import invites; nobody is a member until they accept in the mini-program.
        assert await Invitation.filter(community_id=cid).count() == 60
        assert not await Membership.filter(community_id=cid, room__building__name="8栋").exists()
        app = await new_resident(stack)
        assert (await app.bind_phone("13900000042")).status_code == 200
        [inv] = (await app.get("/api/v1/me/invitations")).json()["items"]
        assert (await app.post(f"/api/v1/me/invitations/{inv['id']}/accept")).status_code == 200

        # The directory finds them; a resident's record; move-out and a card from there.
        r = await client.get(f"/console/c/{cid}/residents", params={"q": "住户42"})
        assert "住户42" in r.text and "住户41" not in r.text
        resident = await Resident.get(name="住户42")
        r = await client.get(f"/console/c/{cid}/residents/{resident.id}")
        assert r.status_code == 200 and "8栋 1单元 142" in r.text
        r = await client.post(
            f"/console/c/{cid}/residents/{resident.id}/cards",
            data={"csrf_token": csrf, "card_no": "00ab cd12"},
        )
        assert r.status_code == 303
        assert await AccessCard.filter(resident_id=resident.id, card_no="00ABCD12").exists()
        m = await Membership.get(resident_id=resident.id, community_id=cid)
        r = await client.post(
            f"/console/c/{cid}/memberships/{m.id}/end",
            data={"csrf_token": csrf, "rid": resident.id, "reason": "合同到期"},
        )
        assert r.status_code == 303
        assert (await Membership.get(id=m.id)).state == MembershipState.ENDED


async def test_charts_speak_the_viewers_language_and_role(stack: Stack) -> None:
    world = await make_world()
    cid = world.community.id
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    await approved_resident(stack, world.rooms[0], admin_h)
    approver = await make_staff(world.community, StaffRoleName.APPROVER)
    guard = await make_staff(world.community, StaffRoleName.GUARD)
    async with console_client(stack, guard.username) as (client, _):
        data = (await client.get(f"/console/c/{cid}/charts.json")).json()
        assert set(data) == {"by_hour", "by_day", "refusals", "devices"}
        assert len(data["by_hour"]["categories"]) == 24
        client.cookies.set("anxin_lang", "en", path="/console")
        data = (await client.get(f"/console/c/{cid}/charts.json")).json()
        assert data["by_day"]["title"] == "Entries and refusals, last 7 days"
    async with console_client(stack, approver.username) as (client, _):
        # An approver reads no access log and no devices: no such charts for them.
        assert (await client.get(f"/console/c/{cid}/charts.json")).json() == {}
        page = await client.get(f"/console/c/{cid}/")
        assert 'data-stat="pending"' in page.text and 'data-stat="entries_today"' not in page.text
