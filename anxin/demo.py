"""A demo community so a newcomer has something to log in to."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from tortoise.transactions import in_transaction

from auth.passwords import hash_password_async
from models import Building, City, Community, Room, StaffAccount, StaffRole, StaffRoleName, Unit

log = logging.getLogger(__name__)

DEMO_STAFF = (
    ("admin", StaffRoleName.ADMIN),
    ("approver", StaffRoleName.APPROVER),
    ("guard", StaffRoleName.GUARD),
)


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
    return DemoInfo(community.id, new_password)
