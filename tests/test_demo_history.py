"""The demo's week of history: enough for the charts, added once."""

from __future__ import annotations

from datetime import timedelta

from anxin.clock import utcnow
from boot.demo import seed_demo, seed_demo_devices
from boot.demo_history import seed_history
from models import (
    AccessEvent,
    AccessResult,
    Alarm,
    AlarmState,
    Community,
    Membership,
    MembershipState,
    StaffAccount,
)
from tests.stack import Stack


async def test_a_week_of_history_once(stack: Stack) -> None:
    info = await seed_demo("demo-password-123")
    await seed_demo_devices(stack.settings, info.community_id)
    cid = info.community_id
    already = await AccessEvent.filter(community_id=cid).exists()
    added = await seed_history(cid)
    if already:  # another test seeded this database's demo first
        assert added == 0
        return
    assert added > 1000
    events = AccessEvent.filter(community_id=cid)
    assert await events.filter(created_at__gte=utcnow() - timedelta(hours=30)).exists()
    assert await events.filter(created_at__lt=utcnow() - timedelta(days=5)).exists()
    assert not await events.filter(created_at__gt=utcnow()).exists()
    refused = await events.filter(result=AccessResult.DENIED).count()
    assert 0 < refused < added / 4
    assert await Alarm.filter(community_id=cid, state=AlarmState.OPEN).exists()
    assert await Membership.filter(community_id=cid, state=MembershipState.PENDING).count() >= 3
    assert await Community.filter(name="和谐家园").exists()
    assert (await StaffAccount.get(username="operator")).is_operator
    assert await seed_history(cid) == 0
