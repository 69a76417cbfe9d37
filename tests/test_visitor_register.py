"""The visitor register for staff: filters and the CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from anxin.clock import utcnow
from models import StaffRoleName
from tests.devices import simulator
from tests.helpers import make_staff, staff_headers
from tests.passes_helpers import create_pass, make_site, wait_events
from tests.stack import Stack


async def test_register_lists_visits_filters_and_exports_csv(stack: Stack) -> None:
    site = await make_site(stack)
    cid = site.world.community.id
    guard_h = await staff_headers(
        stack, await make_staff(site.world.community, StaffRoleName.GUARD)
    )
    visitor = await create_pass(site, visitor_name="张三", visitor_phone="13812345678")
    delivery = await create_pass(site, kind="delivery")
    async with simulator(stack, site.gate) as gate:
        await gate.scan_qr(visitor["token"])
        await gate.wait_opened(1)
        await gate.scan_qr(delivery["token"])
        await gate.wait_opened(2)
        await gate.swipe_card("NOT-A-VISIT")  # not a visit: never in the register
        await wait_events(site.gate["id"], 3)

    url = f"/api/v1/staff/communities/{cid}/visitor-register"
    rows = (await stack.client.get(url, headers=guard_h)).json()["items"]
    assert sorted(r["method"] for r in rows) == ["delivery", "pass"]
    pass_row = next(r for r in rows if r["method"] == "pass")
    assert pass_row["visitor_name"] == "张三" and pass_row["visitor_phone"] == "138****5678"
    assert pass_row["room"] == "1栋1单元101" and pass_row["time"].endswith("+08:00")

    only = (await stack.client.get(url, headers=guard_h, params={"method": "delivery"})).json()[
        "items"
    ]
    assert [r["method"] for r in only] == ["delivery"]
    today = utcnow().date()
    tomorrow = today + timedelta(days=2)
    none = await stack.client.get(url, headers=guard_h, params={"since": str(tomorrow)})
    assert none.json() == {"items": [], "next": None}
    other_room = (
        await stack.client.get(url, headers=guard_h, params={"room_id": site.world.rooms[1].id})
    ).json()
    assert other_room == {"items": [], "next": None}

    r = await stack.client.get(f"{url}.csv", headers=guard_h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert table[0][0] == "时间 Time" and len(table) == 3
    assert any("张三" in row for row in table[1:])

    # Residents and other communities' staff cannot read it.
    assert (await site.resident.get(url)).status_code == 403
    other = await make_site(stack)
    assert (await stack.client.get(url, headers=other.admin_h)).status_code == 404
