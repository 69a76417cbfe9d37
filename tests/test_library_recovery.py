"""The face library survives a process that dies between recording a change and pushing
it: the change is in the versioned log first, and the terminal's next heartbeat reports
the version it holds, so the server catches it up (domain/faces/library.py)."""

from __future__ import annotations

import pytest

from domain.faces.library import FACE_LIBRARY
from models import FaceDelivery, FaceDeliveryState, StaffRoleName
from tests.devices import register_device, simulator
from tests.helpers import approved_resident, make_staff, make_world, staff_headers
from tests.stack import Stack
from tests.test_faces_support import enroll_and_approve, eventually


async def test_a_change_whose_push_died_reaches_the_terminal_at_its_next_heartbeat(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await make_world()
    cid = world.community.id
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    app = await approved_resident(stack, world.rooms[0], admin_h)
    gate = await register_device(stack, cid, admin_h, kind="face_gate", name="南门")
    sync = stack.runtime.get(FACE_LIBRARY)
    async with simulator(stack, gate, heartbeat_s=3600) as g:
        await eventually(lambda: g.library_synced.is_set())
        # The process that approved the enrollment dies before its push goes out.
        with monkeypatch.context() as m:
            m.setattr(sync, "push_soon", lambda community_id: None)
            e = await enroll_and_approve(stack, app, cid, admin_h, "obama")
            pid = f"f{e['id']}"
            assert pid not in g.library
            [pending] = await FaceDelivery.filter(enrollment_id=e["id"], device_id=gate["id"])
            assert pending.state != FaceDeliveryState.ACKED
        # No push from anybody; the terminal's next heartbeat (its old version) brings it.
        await g.link.publish_state(g._state("online"))  # noqa: SLF001 - the heartbeat
        await eventually(lambda: pid in g.library)
        await sync.idle(cid)
        [done] = await FaceDelivery.filter(enrollment_id=e["id"], device_id=gate["id"])
        assert done.state == FaceDeliveryState.ACKED
