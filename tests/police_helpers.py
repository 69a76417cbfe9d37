"""Builders for the police-link tests: a community with doors and passages, an operator,
security officers, the fake police platform, and an agreement pointing at it."""

from __future__ import annotations

import io
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import Image

from domain.access.snapshots import snapshot_store
from fake_police.platform import FakePolicePlatform, run_fake_police
from models import (
    AccessEvent,
    AccessMethod,
    AccessResult,
    Device,
    DeviceKind,
    Resident,
    StaffAccount,
    StaffRoleName,
)
from police_link.service import PoliceLink
from tests.helpers import World, make_staff, make_world, staff_headers
from tests.stack import Stack

PASSWORD = "viid-test-password"
ALL = [
    "apes",
    "doors",
    "face_captures",
    "vehicle_passages",
    "visitor_registrations",
    "resident_registry",
    "vehicle_registry",
]


def jpeg(seed: int = 0, size: int = 96) -> bytes:
    im = Image.new("RGB", (size, size), ((seed * 37) % 256, 120, 200))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=85)
    return out.getvalue()


@dataclass
class PoliceSite:
    stack: Stack
    world: World
    gate: Device
    barrier: Device
    operator_h: dict[str, str]
    security_h: dict[str, str]
    security2_h: dict[str, str]
    admin_h: dict[str, str]
    guard_h: dict[str, str]
    security: StaffAccount
    admin: StaffAccount
    operator: StaffAccount
    url: str
    fake: FakePolicePlatform
    username: str
    agreement: dict[str, Any] = field(default_factory=dict)

    @property
    def cid(self) -> int:
        return self.world.community.id

    def link(self) -> PoliceLink:
        return PoliceLink(self.stack.runtime)

    async def agree(self, categories: list[str] | None = None, **over: Any) -> dict[str, Any]:
        body = {
            "platform_name": "测试市公安局视图库",
            "base_url": self.url,
            "system_id": "33010600002000000001",
            "username": self.username,
            "password": PASSWORD,
            "center_code": "33010600",
            "community_code": "33010600002160000001",
            "legal_basis": "pipl_13_3",
            "document_no": "杭公（治）备〔2026〕12号",
            "categories": categories if categories is not None else ALL,
            "retention_days": 180,
            "approved_by": "物业负责人 王明",
            "notify_url": "http://anxin.test/VIID/SubscribeNotifications",
            **over,
        }
        r = await self.stack.client.post(
            f"/api/v1/operator/communities/{self.cid}/police-agreements",
            json=body,
            headers=self.operator_h,
        )
        assert r.status_code == 201, r.text
        self.agreement = r.json()
        return self.agreement

    async def passage(
        self,
        *,
        method: AccessMethod = AccessMethod.FACE,
        device: Device | None = None,
        resident_id: int | None = None,
        reason: str = "resident",
        plate: str = "",
        image: bool = True,
        pass_id: int | None = None,
        room_id: int | None = None,
        occurred_at: datetime | None = None,
        result: AccessResult = AccessResult.GRANTED,
    ) -> AccessEvent:
        device = device or (self.barrier if method == AccessMethod.PLATE else self.gate)
        ref = ""
        if image:
            ref = snapshot_store(self.stack.settings).save(
                self.cid, f"t{secrets.token_hex(3)}", jpeg(secrets.randbelow(100))
            )
        fields: dict[str, Any] = dict(
            community_id=self.cid,
            device_id=device.id,
            method=method,
            result=result,
            reason=reason,
            resident_id=resident_id,
            plate=plate,
            snapshot_ref=ref,
            pass_id=pass_id,
            room_id=room_id,
        )
        if occurred_at is not None:
            fields["occurred_at"] = occurred_at
        return await AccessEvent.create(**fields)

    async def resident(self, name: str = "张三", phone: str = "13800000000") -> Resident:
        return await Resident.create(openid=f"o{secrets.token_hex(8)}", name=name, phone=phone)


@asynccontextmanager
async def police_site(stack: Stack) -> AsyncIterator[PoliceSite]:
    world = await make_world()
    c = world.community
    operator = await make_staff(c)
    operator.is_operator = True
    await operator.save()
    security = await make_staff(c, StaffRoleName.SECURITY)
    security2 = await make_staff(c, StaffRoleName.SECURITY)
    admin = await make_staff(c, StaffRoleName.ADMIN)
    guard = await make_staff(c, StaffRoleName.GUARD)
    tag = secrets.token_hex(3)
    gate = await Device.create(
        device_uid=f"gate-{tag}",
        community=c,
        kind=DeviceKind.FACE_GATE,
        name="东门人脸门禁",
        place="东门",
        methods=["face"],
    )
    barrier = await Device.create(
        device_uid=f"barrier-{tag}",
        community=c,
        kind=DeviceKind.BARRIER_GATE,
        name="北门道闸",
        place="北门车行",
        methods=["plate"],
    )
    username = f"anxin-{tag}"
    async with run_fake_police({username: PASSWORD}) as (url, fake):
        yield PoliceSite(
            stack=stack,
            world=world,
            gate=gate,
            barrier=barrier,
            operator_h=await staff_headers(stack, operator),
            security_h=await staff_headers(stack, security),
            security2_h=await staff_headers(stack, security2),
            admin_h=await staff_headers(stack, admin),
            guard_h=await staff_headers(stack, guard),
            security=security,
            admin=admin,
            operator=operator,
            url=url,
            fake=fake,
            username=username,
        )
