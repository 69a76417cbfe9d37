"""A week of believable history for the demo, so the console's charts mean something.

Residents with approved memberships, a week of door decisions (morning and evening
peaks, the usual mix of methods, a share of refusals with their reasons), a few alarms
and pending household requests, and a second community so the operator overview has
more than one row. Runs once: nothing is added when the community already has entries.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from anxin.clock import utcnow
from anxin.timefmt import zone
from models import (
    AccessEvent,
    AccessMethod,
    AccessResult,
    Alarm,
    AlarmKind,
    AlarmState,
    Building,
    City,
    Community,
    Device,
    DeviceKind,
    Membership,
    MembershipRole,
    MembershipState,
    Resident,
    Room,
    Unit,
)

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛"]
# Share of entries per local hour: a residential gate's day.
HOURLY = [1, 1, 0, 0, 0, 1, 4, 9, 10, 6, 4, 4, 5, 4, 3, 3, 4, 7, 10, 9, 7, 5, 3, 2]
GRANTED_MIX = [
    (AccessMethod.FACE, "resident", 62),
    (AccessMethod.CARD, "resident", 12),
    (AccessMethod.REMOTE, "remote_open", 8),
    (AccessMethod.QR, "visitor_pass", 6),
    (AccessMethod.QR, "delivery_pass", 5),
    (AccessMethod.CODE, "household_code", 3),
    (AccessMethod.PLATE, "registered_plate", 4),
]
REFUSED_MIX = [
    (AccessMethod.FACE, "unknown_person", 40),
    (AccessMethod.QR, "pass_expired", 15),
    (AccessMethod.CODE, "code_wrong", 12),
    (AccessMethod.CARD, "unknown_card", 10),
    (AccessMethod.FACE, "moved_out", 8),
    (AccessMethod.QR, "pass_wrong_door", 8),
    (AccessMethod.PLATE, "not_a_resident", 7),
]


def _pick(rng: random.Random, mix: list[tuple[AccessMethod, str, int]]) -> tuple[AccessMethod, str]:
    method, reason, _ = rng.choices(mix, weights=[w for _, _, w in mix])[0]
    return method, reason


async def _residents(rng: random.Random, community: Community, count: int) -> list[Membership]:
    rooms = await Room.filter(community=community).order_by("id")
    members = []
    for i in range(min(count, len(rooms))):
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(["", *GIVEN])
        resident = await Resident.create(name=name, phone=f"1380000{i:04d}")
        members.append(
            await Membership.create(
                resident=resident,
                room=rooms[i],
                community=community,
                role=MembershipRole.OWNER if i % 3 else MembershipRole.FAMILY,
                state=MembershipState.APPROVED,
            )
        )
    return members


async def _entries(
    rng: random.Random,
    community: Community,
    devices: list[Device],
    members: list[Membership],
    per_day: int,
) -> int:
    tz = zone(community.timezone)
    now = utcnow()
    today = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    doors = [d for d in devices if d.methods] or devices
    rows = []
    for back in range(6, -1, -1):
        day = today - timedelta(days=back)
        for _ in range(int(per_day * rng.uniform(0.85, 1.15))):
            hour = rng.choices(range(24), weights=HOURLY)[0]
            at: datetime = day + timedelta(hours=hour, seconds=rng.randrange(3600))
            if at > now:
                continue
            refused = rng.random() < 0.07
            method, reason = _pick(rng, REFUSED_MIX if refused else GRANTED_MIX)
            member = (
                rng.choice(members)
                if members and reason in ("resident", "remote_open", "household_code")
                else None
            )
            at_utc = at.astimezone(now.tzinfo)
            rows.append(
                AccessEvent(
                    community_id=community.id,
                    device_id=rng.choice(doors).id,
                    method=method,
                    result=AccessResult.DENIED if refused else AccessResult.GRANTED,
                    reason=reason,
                    resident_id=member.resident_id if member else None,
                    room_id=member.room_id if member else None,
                    score=round(rng.uniform(0.55, 0.85), 3)
                    if method == AccessMethod.FACE and not refused
                    else None,
                    occurred_at=at_utc,
                    created_at=at_utc,
                )
            )
    rows.sort(key=lambda e: e.created_at)
    await AccessEvent.bulk_create(rows, batch_size=500)
    return len(rows)


async def _alarms(rng: random.Random, community: Community, devices: list[Device]) -> None:
    now = utcnow()
    kinds = [
        (AlarmKind.HELD_OPEN, AlarmState.CLOSED, 5),
        (AlarmKind.FORCED_OPEN, AlarmState.ACKNOWLEDGED, 3),
        (AlarmKind.DEVICE_OFFLINE, AlarmState.CLOSED, 2),
        (AlarmKind.FENCE, AlarmState.OPEN, 0),
        (AlarmKind.HELD_OPEN, AlarmState.OPEN, 0),
    ]
    for kind, state, days_ago in kinds:
        at = now - timedelta(days=days_ago, hours=rng.randrange(1, 10))
        device = rng.choice(devices)
        await Alarm.create(
            community_id=community.id,
            device_id=device.id,
            kind=kind,
            state=state,
            details={"demo": True},
            note="已现场处理" if state != AlarmState.OPEN else "",
            handled_at=at + timedelta(minutes=12) if state != AlarmState.OPEN else None,
            created_at=at,
            updated_at=at,
        )


async def _pending(rng: random.Random, community: Community) -> None:
    taken = set(await Membership.filter(community=community).values_list("room_id", flat=True))
    free = [r for r in await Room.filter(community=community).order_by("-id") if r.id not in taken]
    for room, role, note in zip(
        free,
        (MembershipRole.TENANT, MembershipRole.FAMILY, MembershipRole.OWNER),
        ("新租户，合同已上传", "业主的母亲", "刚交房"),
        strict=False,
    ):
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        resident = await Resident.create(name=name)
        await Membership.create(
            resident=resident, room=room, community=community, role=role, note=note
        )


async def _second_community(city: City) -> tuple[Community, list[Device]]:
    community, created = await Community.get_or_create(
        city=city,
        name="和谐家园",
        defaults={"name_en": "Harmony Homes", "address": "示范市和平路8号"},
    )
    if created:
        for b in range(1, 3):
            building = await Building.create(community=community, name=f"{b}号楼")
            unit = await Unit.create(building=building, community=community, name="1单元")
            await Room.bulk_create(
                [
                    Room(unit=unit, building=building, community=community, number=f"{f}0{d}")
                    for f in range(1, 7)
                    for d in (1, 2)
                ]
            )
    devices = await Device.filter(community=community)
    if not devices:
        for uid, kind, name, methods in (
            ("gate", DeviceKind.FACE_GATE, "东门人脸闸机", ["face", "card", "qr", "remote"]),
            ("barrier", DeviceKind.BARRIER_GATE, "车行道闸", ["plate", "qr", "remote"]),
        ):
            devices.append(
                await Device.create(
                    device_uid=f"demo-c{community.id}-{uid}",
                    community=community,
                    kind=kind,
                    name=name,
                    methods=methods,
                )
            )
    return community, list(devices)


async def seed_history(community_id: int, seed: int = 7) -> int:
    """A week of history for the demo community (and a second one); returns entries added."""
    community = await Community.get(id=community_id).prefetch_related("city")
    if await AccessEvent.filter(community_id=community_id).exists():
        return 0
    rng = random.Random(seed)
    devices = list(await Device.filter(community_id=community_id))
    members = await _residents(rng, community, 40)
    added = await _entries(rng, community, devices, members, per_day=260)
    await _alarms(rng, community, devices)
    await _pending(rng, community)
    other, other_devices = await _second_community(community.city)
    other_members = await _residents(rng, other, 12)
    added += await _entries(rng, other, other_devices, other_members, per_day=90)
    await _alarms(rng, other, other_devices)
    return added
