"""A demo community so a newcomer has something to log in to."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from tortoise.transactions import in_transaction

from anxin.crypto import keyring_from_settings
from anxin.settings import Settings
from auth.passwords import hash_password_async
from domain.devices.service import secret_ad
from models import (
    Building,
    City,
    Community,
    Device,
    DeviceKind,
    Room,
    StaffAccount,
    StaffRole,
    StaffRoleName,
    Unit,
)

log = logging.getLogger(__name__)

DEMO_STAFF = (
    ("admin", StaffRoleName.ADMIN),
    ("approver", StaffRoleName.APPROVER),
    ("guard", StaffRoleName.GUARD),
    ("security", StaffRoleName.SECURITY),  # police alerts and outsider tracing
)


DEMO_DEVICES: tuple[tuple[str, DeviceKind, str, str, int | None, int | None, list[str]], ...] = (
    # (uid, kind, name, place, building index or None, unit index or None, methods)
    (
        "demo-main-gate",
        DeviceKind.FACE_GATE,
        "南门人脸闸机",
        "小区南门",
        None,
        None,
        ["face", "card", "qr", "remote"],
    ),
    (
        "demo-unit-1-1",
        DeviceKind.UNIT_DOOR,
        "1栋1单元门",
        "1栋1单元",
        0,
        0,
        ["face", "card", "code", "remote", "qr"],
    ),
    (
        "demo-barrier",
        DeviceKind.BARRIER_GATE,
        "车行道闸",
        "南门车道",
        None,
        None,
        ["plate", "qr", "remote"],
    ),
    (
        "demo-intercom",
        DeviceKind.INTERCOM_PANEL,
        "南门可视对讲",
        "小区南门",
        None,
        None,
        ["code", "intercom", "qr", "remote"],
    ),
    ("demo-fence", DeviceKind.FENCE, "北侧周界", "北围墙", None, None, []),
)


async def seed_demo_devices(settings: Settings, community_id: int) -> list[dict[str, str]]:
    """Demo devices; their secrets go to var/demo-devices.json (mode 600) so that the
    simulator can be started against the demo. Real devices show their secret once."""
    path = Path(settings.data_dir) / "demo-devices.json"
    if path.exists():
        return json.loads(path.read_text())
    keyring = keyring_from_settings(settings)
    buildings = await Building.filter(community_id=community_id).order_by("id")
    out = []
    for uid, kind, name, place, b, u, methods in DEMO_DEVICES:
        if await Device.exists(device_uid=uid):
            continue
        unit = None
        if u is not None:
            assert b is not None  # a unit lies in a building
            unit = (await Unit.filter(building=buildings[b]).order_by("id"))[u]
        secret = secrets.token_urlsafe(24)
        device = Device(
            device_uid=uid,
            community_id=community_id,
            kind=kind,
            name=name,
            place=place,
            methods=methods,
            building_id=buildings[b].id if b is not None else None,
            unit_id=unit.id if unit else None,
        )
        device.secret_enc = keyring.encrypt(secret.encode(), secret_ad(device))
        await device.save()
        out.append({"device_id": uid, "kind": kind.value, "secret": secret})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1))
    path.chmod(0o600)
    return out


@dataclass
class DemoInfo:
    community_id: int
    staff_password: str | None  # None when the staff already existed


async def seed_demo(password: str | None = None) -> DemoInfo:
    """Create 示范市 / 安心花园 with 3 buildings × 2 units × 12 rooms and three staff."""
    async with in_transaction():
        city, _ = await City.get_or_create(name="示范市", defaults={"name_en": "Demo City"})
        community, created = await Community.get_or_create(
            city=city,
            name="安心花园",
            defaults={"name_en": "Anxin Garden", "address": "示范市幸福路1号"},
        )
        if created:
            for b in range(1, 4):
                building = await Building.create(community=community, name=f"{b}栋")
                for u in range(1, 3):
                    unit = await Unit.create(
                        building=building, community=community, name=f"{u}单元"
                    )
                    await Room.bulk_create(
                        [
                            Room(
                                unit=unit,
                                building=building,
                                community=community,
                                number=f"{floor}0{door}",
                            )
                            for floor in range(1, 7)
                            for door in (1, 2)
                        ]
                    )
        new_password = None
        if not await StaffAccount.filter(username="admin").exists():
            new_password = password or secrets.token_urlsafe(9)
            password_hash = await hash_password_async(new_password)
            for username, role in DEMO_STAFF:
                staff = await StaffAccount.create(
                    username=username, password_hash=password_hash, display_name=f"演示{role.value}"
                )
                await StaffRole.create(staff=staff, community=community, role=role)
            # The city operator: every community's overview, communities and staff accounts,
            # data-sharing agreements with the police, the face-data register.
            await StaffAccount.create(
                username="operator",
                password_hash=password_hash,
                display_name="演示运营方",
                is_operator=True,
            )
    return DemoInfo(community.id, new_password)
