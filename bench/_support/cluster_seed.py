"""Seed a running cluster's database (run as `python -m bench._support.cluster_seed N`
with the cluster's environment): one community, an admin and a guard, N residents each
with a home, an IC card and a signed access token, gates and a fence with their device
secrets. Prints one JSON line for the caller (test or bench)."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys

from anxin.crypto import keyring_from_settings
from anxin.db import close_db, init_db
from anxin.settings import get_settings
from auth.passwords import hash_password_async
from auth.tokens import issue_access_token
from domain.devices.service import secret_ad
from models import (
    AccessCard,
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
    StaffAccount,
    StaffRole,
    StaffRoleName,
    Unit,
)

GATES = 4  # face gates with cards (events spread over several devices)


async def seed(residents: int) -> dict[str, object]:
    settings = get_settings()
    await init_db(settings, apply_migrations=False)
    try:
        tag = secrets.token_hex(3)
        city, _ = await City.get_or_create(name="负载市", defaults={"name_en": "Load City"})
        community = await Community.create(city=city, name=f"压测小区-{tag}", name_en=f"L {tag}")
        building = await Building.create(community=community, name="1栋")
        unit = await Unit.create(building=building, community=community, name="1单元")
        password = secrets.token_urlsafe(12)
        pw_hash = await hash_password_async(password)
        staff = {}
        for role in (StaffRoleName.ADMIN, StaffRoleName.GUARD):
            acct = await StaffAccount.create(username=f"{role.value}-{tag}", password_hash=pw_hash)
            await StaffRole.create(staff=acct, community=community, role=role)
            staff[role.value] = {
                "id": acct.id,
                "username": acct.username,
                "token": issue_access_token(settings, "staff", acct.id),
            }
        people = []
        for i in range(residents):
            room = await Room.create(
                unit=unit, building=building, community=community, number=f"{1 + i // 4}0{i % 4}"
            )
            resident = await Resident.create(openid=f"load-{tag}-{i}", name=f"住户{i}")
            await Membership.create(
                resident=resident,
                room=room,
                community=community,
                role=MembershipRole.OWNER,
                state=MembershipState.APPROVED,
            )
            card = f"LC{tag}{i:05d}"
            await AccessCard.create(community=community, resident=resident, card_no=card)
            people.append(
                {
                    "id": resident.id,
                    "room_id": room.id,
                    "room": f"{building.name}{unit.name}{room.number}",
                    "room_number": room.number,
                    "card_no": card,
                    "token": issue_access_token(settings, "resident", resident.id),
                }
            )
        keyring = keyring_from_settings(settings)
        devices = []
        kinds = [(DeviceKind.FACE_GATE, ["face", "card", "qr", "remote"])] * GATES
        kinds += [
            (DeviceKind.INTERCOM_PANEL, ["code", "intercom", "qr", "remote"]),
            (DeviceKind.FENCE, []),
        ]
        for n, (kind, methods) in enumerate(kinds):
            secret = secrets.token_urlsafe(24)
            device = Device(
                device_uid=f"ld-{tag}-{kind.value}-{n}",
                community_id=community.id,
                kind=kind,
                name=f"{kind.value}-{n}",
                place="南门",
                methods=methods,
            )
            device.secret_enc = keyring.encrypt(secret.encode(), secret_ad(device))
            await device.save()
            devices.append(
                {
                    "id": device.id,
                    "device_uid": device.device_uid,
                    "kind": kind.value,
                    "secret": secret,
                }
            )
        return {
            "community_id": community.id,
            "staff": staff,
            "staff_password": password,
            "residents": people,
            "devices": devices,
        }
    finally:
        await close_db()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(seed(int(sys.argv[1]) if len(sys.argv) > 1 else 20))))
