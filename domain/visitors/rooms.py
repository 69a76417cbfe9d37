"""Which room a visitor keyed at a panel.

Room address format (docs/passes.md):
* at a unit door or unit panel: the room number alone, e.g. "101";
* at a building's panel: unit-room, e.g. "1-101" (also "1#101");
* at a main gate: building-unit-room, e.g. "1-1-101" (also "1#1#101", "1*1*101"), or the
  written form "1栋1单元101". "1" matches a building named "1", "1栋" or "1号楼", a unit
  named "1" or "1单元".
The room must be one the panel serves (a unit panel never rings another unit).
"""

from __future__ import annotations

import re

from domain.access.policy import serves_room
from models import Building, Device, Room, Unit

_KEYPAD3 = re.compile(r"^(\w+?)[-#*](\w+?)[-#*](\w+)$")
_KEYPAD2 = re.compile(r"^(\w+?)[-#*](\w+)$")
_WRITTEN = re.compile(r"^(.+?)(?:栋|号楼|幢)(.+?)单元(.+)$")


async def _room_in(
    community_id: int, building: str | None, unit: str, number: str, building_id: int | None = None
) -> Room | None:
    if building_id is None:
        b = await Building.filter(
            community_id=community_id, name__in=[building, f"{building}栋", f"{building}号楼"]
        ).first()
        if b is None:
            return None
        building_id = b.id
    u = await Unit.filter(building_id=building_id, name__in=[unit, f"{unit}单元"]).first()
    if u is None:
        return None
    return await Room.get_or_none(unit_id=u.id, number=number)


async def resolve_room(device: Device, text: str) -> Room | None:
    text = (text or "").strip().replace(" ", "")
    if not text or len(text) > 32:
        return None
    room: Room | None = None
    if device.unit_id is not None and re.fullmatch(r"[0-9A-Za-z]{1,16}", text):
        room = await Room.get_or_none(unit_id=device.unit_id, number=text)
    elif m := (_KEYPAD3.match(text) or _WRITTEN.match(text)):
        room = await _room_in(device.community_id, m.group(1), m.group(2), m.group(3))
    elif device.building_id is not None and (m := _KEYPAD2.match(text)):
        room = await _room_in(
            device.community_id, None, m.group(1), m.group(2), building_id=device.building_id
        )
    if room is None or room.community_id != device.community_id:
        return None
    return room if serves_room(device, room.unit_id, room.building_id) else None


async def room_label(room_id: int | None) -> str:
    if room_id is None:
        return ""
    room = await Room.get_or_none(id=room_id).prefetch_related("building", "unit")
    if room is None:
        return ""
    return f"{room.building.name}{room.unit.name}{room.number}"
