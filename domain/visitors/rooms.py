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
from dataclasses import dataclass
from functools import cache

from domain.access.policy import serves_room
from models import Device, MembershipState, Room
from models.bulk import columns, select

_KEYPAD3 = re.compile(r"^(\w+?)[-#*](\w+?)[-#*](\w+)$")
_KEYPAD2 = re.compile(r"^(\w+?)[-#*](\w+)$")
_WRITTEN = re.compile(r"^(.+?)(?:栋|号楼|幢)(.+?)单元(.+)$")


@dataclass(frozen=True)
class KeyedRoom:
    """A room keyed at a panel, with what ringing it needs."""

    room: Room
    label: str  # as `room_label` writes it (`_label`)
    members: list[int]  # its approved members' resident ids, sorted


@cache
def _sql(where: str) -> str:
    """The room (one the names may match; the first building, then unit, by id), its
    building's and unit's names and its approved members, one row per member."""
    return (
        f'SELECT {columns(Room, "r")}, b."name" AS "_building", u."name" AS "_unit", '
        'm."resident_id" AS "_member" FROM "room" r '
        'JOIN "unit" u ON u."id" = r."unit_id" JOIN "building" b ON b."id" = u."building_id" '
        'LEFT JOIN "membership" m ON m."room_id" = r."id" AND m."state" = ? '
        f'WHERE {where} ORDER BY b."id", u."id"'
    )


_IN_UNIT = 'r."unit_id" = ? AND r."number" = ?'
_IN_BUILDING = 'u."building_id" = ? AND u."name" IN (?, ?) AND r."number" = ?'
_IN_COMMUNITY = 'b."community_id" = ? AND b."name" IN (?, ?, ?) AND u."name" IN (?, ?) ' + (
    'AND r."number" = ?'
)


def _units(unit: str) -> list[str]:
    return [unit, f"{unit}单元"]


async def find_room(device: Device, text: str) -> KeyedRoom | None:
    """The room `text` names at this panel (module docstring), in one statement."""
    text = (text or "").strip().replace(" ", "")
    if not text or len(text) > 32:
        return None
    if device.unit_id is not None and re.fullmatch(r"[0-9A-Za-z]{1,16}", text):
        where, values = _IN_UNIT, [device.unit_id, text]
    elif m := (_KEYPAD3.match(text) or _WRITTEN.match(text)):
        building = m.group(1)
        names = [building, f"{building}栋", f"{building}号楼"]
        where = _IN_COMMUNITY
        values = [device.community_id, *names, *_units(m.group(2)), m.group(3)]
    elif device.building_id is not None and (m := _KEYPAD2.match(text)):
        where, values = _IN_BUILDING, [device.building_id, *_units(m.group(1)), m.group(2)]
    else:
        return None
    rows = await select(Room, _sql(where), [MembershipState.APPROVED.value, *values])
    if not rows:
        return None
    first = rows[0]
    mine = [r for r in rows if r["id"] == first["id"]]
    members = sorted({int(r["_member"]) for r in mine if r["_member"] is not None})
    label = _label(first.pop("_building"), first.pop("_unit"), first["number"])
    del first["_member"]
    room = Room._init_from_db(**first)
    if room.community_id != device.community_id:
        return None
    if not serves_room(device, room.unit_id, room.building_id):
        return None
    return KeyedRoom(room, label, members)


async def resolve_room(device: Device, text: str) -> Room | None:
    found = await find_room(device, text)
    return found.room if found else None


async def room_label(room_id: int | None) -> str:
    if room_id is None:
        return ""
    room = await Room.get_or_none(id=room_id).prefetch_related("building", "unit")
    if room is None:
        return ""
    return _label(room.building.name, room.unit.name, room.number)


def _label(building: str, unit: str, number: str) -> str:
    """How a room is named to people: "1栋2单元301"."""
    return f"{building}{unit}{number}"
