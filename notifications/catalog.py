"""Every notification type: who it is for, whether it may be muted, and its texts.

Texts are Chinese first with English alongside, rendered from the event's payload when
the dispatcher fans an event out. A payload key `foo_en` is used for `{foo}` in English
text when present (a door name has both), otherwise `foo` serves both languages.
`{time}` is the event time in the community's time zone.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    ENROLLMENT_APPROVED = "enrollment_approved"
    ENROLLMENT_REJECTED = "enrollment_rejected"
    VISITOR_ARRIVED = "visitor_arrived"
    PASS_USED = "pass_used"
    DOOR_OPENED = "door_opened"  # opened remotely, or by a delivery pass
    INTERCOM_CALL = "intercom_call"  # the record of a call; ringing goes over realtime
    SECURITY_ALARM = "security_alarm"
    DEVICE_OFFLINE = "device_offline"
    MEMBERSHIP_ENDED = "membership_ended"
    HOUSEHOLD_MEMBER_LEFT = "household_member_left"  # to the members who stay
    DAILY_SUMMARY = "daily_summary"
    PROPERTY_NOTICE = "property_notice"  # 物业通知: staff to all or part of a community


class Audience(StrEnum):
    RESIDENT = "resident"
    STAFF = "staff"
    ANY = "any"


@dataclass(frozen=True)
class NotificationType:
    name: EventType
    audience: Audience
    mandatory: bool  # security and account changes: nobody may mute them
    title_zh: str
    body_zh: str
    title_en: str
    body_en: str
    required: tuple[str, ...] = ()
    # A WeChat message later than this is noise, not information.
    wechat_ttl_s: int = 6 * 3600


def _t(
    name: EventType,
    audience: Audience,
    mandatory: bool,
    zh: tuple[str, str],
    en: tuple[str, str],
    required: tuple[str, ...] = (),
    wechat_ttl_s: int = 6 * 3600,
) -> NotificationType:
    return NotificationType(name, audience, mandatory, *zh, *en, required, wechat_ttl_s)


E, R, S = EventType, Audience.RESIDENT, Audience.STAFF

CATALOG: dict[str, NotificationType] = {
    t.name.value: t
    for t in (
        _t(
            E.ENROLLMENT_APPROVED,
            R,
            False,
            ("审核已通过", "您提交的{subject}已审核通过。"),
            ("Approved", "Your {subject} has been approved."),
            ("subject",),
            24 * 3600,
        ),
        _t(
            E.ENROLLMENT_REJECTED,
            R,
            False,
            ("审核未通过", "您提交的{subject}未通过审核：{reason}"),
            ("Not approved", "Your {subject} was not approved: {reason}"),
            ("subject", "reason"),
            24 * 3600,
        ),
        _t(
            E.VISITOR_ARRIVED,
            R,
            False,
            ("访客已到达", "访客{visitor}已于{time}到达{door}。"),
            ("Visitor arrived", "Your visitor {visitor} arrived at {door} at {time}."),
            ("visitor", "door"),
            3600,
        ),
        _t(
            E.PASS_USED,
            R,
            False,
            ("通行证已使用", "您为{visitor}生成的通行证已于{time}在{door}使用。"),
            ("Pass used", "The pass you made for {visitor} was used at {door} at {time}."),
            ("visitor", "door"),
            3600,
        ),
        _t(
            E.DOOR_OPENED,
            R,
            False,
            ("开门提醒", "{door}已于{time}开启（{method}）。"),
            ("Door opened", "{door} was opened at {time} ({method})."),
            ("door", "method"),
            3600,
        ),
        _t(
            E.INTERCOM_CALL,
            R,
            False,
            ("访客呼叫", "{door}有访客于{time}呼叫。"),
            ("Intercom call", "Someone called from {door} at {time}."),
            ("door",),
            600,
        ),
        _t(
            E.SECURITY_ALARM,
            Audience.ANY,
            True,
            ("安防告警", "{place}于{time}发生告警：{alarm}"),
            ("Security alarm", "Alarm at {place} at {time}: {alarm}"),
            ("alarm", "place"),
        ),
        _t(
            E.DEVICE_OFFLINE,
            S,
            True,
            ("设备离线", "设备{device}（{place}）自{since}起离线。"),
            ("Device offline", "Device {device} ({place}) offline since {since}."),
            ("device", "place", "since"),
        ),
        _t(
            E.MEMBERSHIP_ENDED,
            R,
            True,
            ("住户关系已结束", "您与{room}的住户关系已于{time}结束，相关通行权限已停用。"),
            (
                "Household membership ended",
                "Your membership of {room} ended at {time}; access is off.",
            ),
            ("room",),
            24 * 3600,
        ),
        _t(
            E.HOUSEHOLD_MEMBER_LEFT,
            R,
            True,
            (
                "家庭成员已离开",
                "{name}已于{time}不再是{room}的住户，其通行证、车辆和门禁卡已停用。"
                "对方若知道开门密码，建议一键更换。",
            ),
            (
                "A household member left",
                "{name} stopped being a member of {room} at {time}; their passes, vehicles "
                "and cards are off. If they knew the door code, change it in one tap.",
            ),
            ("room", "name"),
            24 * 3600,
        ),
        _t(
            E.DAILY_SUMMARY,
            S,
            False,
            ("每日通行汇总", "{date}：通行{entries}次，拒绝{denials}次，告警{alarms}次。"),
            ("Daily summary", "{date}: {entries} entries, {denials} denials, {alarms} alarms."),
            ("date", "entries", "denials", "alarms"),
        ),
        _t(
            E.PROPERTY_NOTICE,
            R,
            False,
            ("物业通知：{title}", "{body}"),
            ("Notice: {title}", "{body}"),
            ("title", "body"),
            3 * 24 * 3600,
        ),
    )
}

MANDATORY: frozenset[str] = frozenset(k for k, t in CATALOG.items() if t.mandatory)
ALARM_TYPES: frozenset[str] = frozenset({E.SECURITY_ALARM.value, E.DEVICE_OFFLINE.value})


def get_type(event_type: str) -> NotificationType:
    try:
        return CATALOG[event_type]
    except KeyError:
        raise ValueError(f"unknown notification type {event_type!r}") from None


class _Values(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "-"


def render(template: str, values: dict[str, Any], lang: str = "zh") -> str:
    """Fill `{key}` from values; English prefers `key_en`; a missing key shows as "-"."""
    merged = _Values(values)
    if lang == "en":
        for key in [k for k in values if k.endswith("_en")]:
            merged[key.removesuffix("_en")] = values[key]
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    return template.format_map(_Values({f: merged[f] for f in fields}))
