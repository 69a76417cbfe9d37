"""The access policy: one function decides every entry of a person who lives here.

Face, card, code, app (remote), intercom answer: every path for a resident ends in
`resident_may_enter`, so a blocked or moved-out resident is refused everywhere at once.
Visitor and delivery passes have their own validity rules (passes module) but share the
device checks here (`device_accepts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anxin.batching import Batcher
from auth.permissions import Principal, resident_principal_with
from models import (
    AccessCard,
    AccessMethod,
    AlarmKind,
    BlockKind,
    BlocklistEntry,
    Device,
    DeviceStatus,
    Membership,
    MembershipState,
    Resident,
    ResidentBlock,
    Room,
)
from models.bulk import columns, in_transaction, marks, select

# Reason codes are stable: they appear in the access log, the API and the docs; each has a
# Chinese and an English text (the guard reads which, the log shows both).
REASONS: dict[str, tuple[str, str]] = {
    "resident": ("住户通行", "resident"),
    "visitor_pass": ("访客通行证", "visitor pass"),
    "delivery_pass": ("外卖快递通行证", "delivery pass"),
    "intercom_answered": ("住户对讲开门", "opened by a resident over the intercom"),
    "household_code": ("住户密码", "household code"),
    "registered_plate": ("登记车辆", "registered vehicle"),
    "remote_open": ("住户远程开门", "opened from the app"),
    "device_disabled": ("设备已停用", "device disabled"),
    "method_not_accepted": ("该门不支持此方式", "this door does not take this way in"),
    "unknown_person": ("未识别人员（陌生人）", "not recognised (a stranger)"),
    "unknown_card": ("未登记的卡", "unknown card"),
    "card_disabled": ("卡已停用", "card disabled"),
    # Why a face was refused before anyone could be recognised: a bad capture, not a stranger.
    "face_not_found": ("抓拍中未检测到人脸", "no face in the capture"),
    "face_too_small": (
        "人脸图像太小（抓拍分辨率不足）",
        "face image too small (low-resolution capture)",
    ),
    "face_too_far": ("离摄像头太远", "too far from the camera"),
    "resident_blocked": ("住户已被停用", "resident blocked"),
    "blocklisted": ("黑名单人员", "blocklisted person"),
    "not_a_resident": ("非本小区住户", "not a resident here"),
    "moved_out": ("已迁出", "moved out"),
    "other_community": ("其他小区住户", "resident of another community"),
    "wrong_building": ("非本单元住户", "lives in another building or unit"),
    "consent_missing": ("未授权人脸识别", "no consent to face recognition"),
    "staff_open": ("值班人员开门", "opened by staff on duty"),
    # passes, intercom, codes, plates (api/passes, api/visitors)
    "pass_invalid": ("通行证无效", "invalid pass"),
    "pass_forged": ("通行证签名无效", "pass signature invalid"),
    "pass_other_community": ("非本小区通行证", "pass of another community"),
    "pass_expired": ("通行证已过期", "pass expired"),
    "pass_not_yet_valid": ("通行证未到生效时间", "pass not yet valid"),
    "pass_wrong_door": ("通行证不适用于此门", "pass not valid at this door"),
    "pass_revoked": ("通行证已作废", "pass revoked"),
    "pass_used_up": ("通行证次数已用完", "pass used up"),
    "pass_unknown": ("通行证不存在", "unknown pass"),
    "intercom_declined": ("住户拒绝开门", "the resident declined"),
    "intercom_missed": ("呼叫无人接听", "nobody answered"),
    "unknown_room": ("房号不存在", "no such room"),
    "code_wrong": ("密码错误", "wrong code"),
    "code_not_set": ("该房间未设置密码", "no code set for this room"),
    "code_locked": ("密码错误次数过多，已锁定", "locked after too many wrong codes"),
    "no_household": ("该房间无住户", "nobody lives in this room"),
    "unknown_plate": ("外来车辆", "unregistered vehicle"),
    "blocklisted_plate": ("黑名单车辆", "blocklisted vehicle"),
    "vehicle_exit": ("车辆出场", "vehicle leaving"),
}
REASONS_ZH = {code: zh for code, (zh, _) in REASONS.items()}
REASONS_EN = {code: en for code, (_, en) in REASONS.items()}


def reason_text(reason: str, lang: str = "zh") -> str:
    """A decision reason as a person reads it; the code itself for one not listed."""
    table = REASONS_EN if lang == "en" else REASONS_ZH
    return table.get(reason, reason)


@dataclass
class Decision:
    granted: bool
    reason: str
    resident_id: int | None = None
    room_id: int | None = None
    pass_id: int | None = None
    score: float | None = None
    alarm: AlarmKind | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def deny(cls, reason: str, **kw: Any) -> Decision:
        return cls(False, reason, **kw)


def device_accepts(device: Device, method: AccessMethod) -> Decision | None:
    """None when the device may let someone in this way; else the refusal."""
    if device.status != DeviceStatus.ACTIVE:
        return Decision.deny("device_disabled")
    if method.value not in (device.methods or []):
        return Decision.deny("method_not_accepted")
    return None


def serves_room(device: Device, room_unit_id: int, room_building_id: int) -> bool:
    """A unit door opens for its unit only; gates serve the whole community."""
    if device.unit_id is not None:
        return device.unit_id == room_unit_id
    if device.building_id is not None:
        return device.building_id == room_building_id
    return True


async def person_blocklisted(community_id: int, resident_id: int) -> bool:
    return await BlocklistEntry.filter(
        community_id=community_id, kind=BlockKind.PERSON, resident_id=resident_id, active=True
    ).exists()


async def resident_may_enter(
    device: Device, resident_id: int | None, method: AccessMethod
) -> Decision:
    refusal = device_accepts(device, method)
    if refusal is not None:
        refusal.resident_id = resident_id
        return refusal
    if resident_id is None:
        return Decision.deny("unknown_person")
    # The resident's approved, suspended (blocked) and ended memberships everywhere, with
    # each room's unit and building, and whether they are on this community's blocklist:
    # read now, at the decision (no cache), so a block refuses at once. The checks below
    # keep their order: blocked here, blocklisted, moved out, elsewhere, wrong building.
    rows, blocklisted = await _facts(resident_id, device.community_id)
    if not rows and not await Resident.exists(id=resident_id):
        return Decision.deny("unknown_person")
    # A block belongs to one community (its memberships there are suspended): blocked
    # here says nothing about elsewhere.
    if any(
        r["community_id"] == device.community_id and r["state"] == MembershipState.SUSPENDED
        for r in rows
    ):
        return Decision.deny("resident_blocked", resident_id=resident_id)
    if blocklisted:
        return Decision.deny("blocklisted", resident_id=resident_id, alarm=AlarmKind.BLOCKLIST)
    here = [
        r
        for r in rows
        if r["community_id"] == device.community_id and r["state"] == MembershipState.APPROVED
    ]
    if not here:
        # Blocked after moving out: still blocked (one query, on refusals only).
        if await ResidentBlock.exists(resident_id=resident_id, community_id=device.community_id):
            return Decision.deny("resident_blocked", resident_id=resident_id)
        if any(r["community_id"] == device.community_id for r in rows):
            return Decision.deny("moved_out", resident_id=resident_id)
        elsewhere = any(r["state"] == MembershipState.APPROVED for r in rows)
        return Decision.deny(
            "other_community" if elsewhere else "not_a_resident", resident_id=resident_id
        )
    for r in sorted(here, key=lambda r: r["id"]):
        if serves_room(device, r["room__unit_id"], r["room__building_id"]):
            return Decision(True, "resident", resident_id=resident_id, room_id=r["room_id"])
    return Decision.deny("wrong_building", resident_id=resident_id)


_STATES = [MembershipState.APPROVED, MembershipState.SUSPENDED, MembershipState.ENDED]
Facts = tuple[list[dict[str, Any]], bool]


async def _facts(resident_id: int, community_id: int) -> Facts:
    """(memberships with their rooms, blocklisted here) for one decision. Decisions made
    at the same moment read together (two statements for the whole batch); inside a
    caller's transaction the read is the caller's own."""
    if not in_transaction(Membership):
        return await _FACTS.submit((resident_id, community_id))
    rows = await Membership.filter(resident_id=resident_id, state__in=_STATES).values(
        "id", "community_id", "state", "room_id", "room__unit_id", "room__building_id"
    )
    return rows, await person_blocklisted(community_id, resident_id)


async def _read_facts(items: list[tuple[int, int]]) -> list[Facts]:
    """The batch's memberships and blocklist entries in one statement: the entries come
    as rows without a membership id."""
    ids = sorted({rid for rid, _ in items})
    rows = await select(Membership, _facts_sql(len(ids)), _facts_values(ids))
    on_list: set[tuple[int, int]] = set()
    by_resident: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        rid = r.pop("resident_id")
        if r["id"] is None:
            on_list.add((rid, r["community_id"]))
            continue
        r["state"] = MembershipState(r["state"])
        by_resident.setdefault(rid, []).append(r)
    return [
        ([dict(r) for r in by_resident.get(rid, [])], (rid, cid) in on_list) for rid, cid in items
    ]


def _facts_values(ids: list[int]) -> list[Any]:
    return [*ids, *(s.value for s in _STATES), BlockKind.PERSON.value, True, *ids]


def _facts_sql(n: int) -> str:
    return (
        "SELECT m.resident_id, m.id, m.community_id, m.state, m.room_id, "
        "r.unit_id AS room__unit_id, r.building_id AS room__building_id "
        f'FROM "{Membership._meta.db_table}" m JOIN "{Room._meta.db_table}" r ON r.id = m.room_id '
        f"WHERE m.resident_id IN ({marks(n)}) AND m.state IN ({marks(len(_STATES))}) "
        "UNION ALL SELECT resident_id, NULL, community_id, NULL, NULL, NULL, NULL "
        f'FROM "{BlocklistEntry._meta.db_table}" '
        f"WHERE kind = ? AND active = ? AND resident_id IN ({marks(n)})"
    )


_FACTS: Batcher[tuple[int, int], Facts] = Batcher(_read_facts)


async def card_by_number(community_id: int, card_no: str) -> AccessCard | None:
    """The card with this number here (active or not); batched like `_facts`."""
    if in_transaction(AccessCard):
        return await AccessCard.get_or_none(community_id=community_id, card_no=card_no)
    return await _CARDS.submit((community_id, card_no))


async def _read_cards(items: list[tuple[int, str]]) -> list[AccessCard | None]:
    communities = sorted({cid for cid, _ in items})
    numbers = sorted({no for _, no in items})
    rows = await select(
        AccessCard,
        f"SELECT id, community_id, resident_id, card_no, active "
        f'FROM "{AccessCard._meta.db_table}" '
        f"WHERE community_id IN ({marks(len(communities))}) AND card_no IN ({marks(len(numbers))})",
        [*communities, *numbers],
    )
    cards: dict[tuple[int, str], AccessCard] = {}
    for r in rows:
        card = AccessCard(
            id=r["id"],
            community_id=r["community_id"],
            resident_id=r["resident_id"],
            card_no=r["card_no"],
            active=bool(r["active"]),
        )
        card._saved_in_db = True
        cards.setdefault((r["community_id"], r["card_no"]), card)
    return [cards.get(item) for item in items]


_CARDS: Batcher[tuple[int, str], AccessCard | None] = Batcher(_read_cards)


_DOORS_SQL: str | None = None


async def resident_and_doors(resident_id: int) -> tuple[Principal, list[Device]]:
    """`load_principal` for the resident and every active door they may open (for the
    remote-open list), in one statement: their row, their memberships (approved, read
    now), their rooms and their communities' devices."""
    global _DOORS_SQL
    if _DOORS_SQL is None:
        _DOORS_SQL = (
            f"SELECT {columns(Device, 'd')}, "
            'r."unit_id" AS "room__unit", r."building_id" AS "room__building" '
            'FROM "membership" m JOIN "room" r ON r."id" = m."room_id" '
            'JOIN "device" d ON d."community_id" = m."community_id" '
            'WHERE m."resident_id" = ? AND m."state" = ? AND d."status" = ?'
        )
    principal, _, rows = await resident_principal_with(
        resident_id,
        rows=_DOORS_SQL,
        row_values=[resident_id, MembershipState.APPROVED.value, DeviceStatus.ACTIVE.value],
    )
    doors: dict[int, Device] = {}
    for row in rows:
        device = Device._init_from_db(**row)
        if AccessMethod.REMOTE.value in (device.methods or []) and serves_room(
            device, row["room__unit"], row["room__building"]
        ):
            doors[device.id] = device
    return principal, sorted(doors.values(), key=lambda d: d.id)
