"""Authz matrix entries for the notification centre and WeChat subscription reports
(merged into tests/authz_table.py TABLE).

Everyone logged in has a notification centre of their own (residents and staff alike);
someone else's notification is "not found". The subscription reports are the
mini-program's, so residents only.
"""

from __future__ import annotations

import secrets

import httpx

from models import Notification, NotificationPreference, WeChatSubscription
from notifications.catalog import CATALOG, Audience
from notifications.wechat_templates import default_templates
from tests.authz_table import (
    ADMIN,
    ANONYMOUS,
    APPROVER,
    GUARD,
    LOGGED_IN,
    NEWCOMER,
    OUTSIDER,
    RESIDENT,
    RESIDENTS,
    V1,
    Call,
    Ctx,
    Rule,
    no_args,
    no_probing,
    swap_param,
)
from tests.helpers import items

ME = frozenset({RESIDENT})
# Another person's notification does not exist for the caller, whoever they are.
NOT_THEIRS = dict.fromkeys((NEWCOMER, ADMIN, APPROVER, GUARD, OUTSIDER), 404)


async def whoami(ctx: Ctx, role: str) -> tuple[str, int] | None:
    """(recipient_type, id) of the role's principal; None for anonymous."""
    if role == ANONYMOUS:
        return None
    r = await ctx.stack.client.get(f"{V1}/me", headers=ctx.headers[role])
    assert r.status_code == 200, r.text
    return r.json()["kind"], r.json()["id"]


async def _note(ctx: Ctx, kind: str, recipient_id: int) -> Notification:
    return await Notification.create(
        outbox_id=secrets.randbelow(2**62) + 1,
        recipient_type=kind,
        recipient_id=recipient_id,
        community_id=ctx.world.community.id,
        event_type="security_alarm",
        mandatory=True,
        title_zh="矩阵",
        title_en="matrix",
        body_zh="矩阵测试",
        body_en="matrix test",
    )


async def _foreign_notes(ctx: Ctx, me: tuple[str, int] | None) -> list[int]:
    """Notifications that must stay out of the caller's reach: the same id of the other
    kind (a staff id equal to a resident id) and another person of the same kind."""
    kind, my_id = me or ("resident", ctx.resident_id)
    other_kind = "staff" if kind == "resident" else "resident"
    rows = [await _note(ctx, other_kind, my_id), await _note(ctx, kind, my_id + 100_000)]
    return [n.id for n in rows]


async def p_my_notes(ctx: Ctx, role: str) -> Call:
    me = await whoami(ctx, role)
    state: dict[str, object] = {"me": me, "foreign": await _foreign_notes(ctx, me)}
    if me is not None:
        state["mine"] = (await _note(ctx, *me)).id
    return Call(state=state)


async def p_resident_note(ctx: Ctx, role: str) -> Call:
    note = await _note(ctx, "resident", ctx.resident_id)
    return Call(params={"notification_id": note.id})


def _non_mandatory(kind: str) -> str:
    wanted = {Audience.ANY, Audience.STAFF if kind == "staff" else Audience.RESIDENT}
    return next(n for n, t in CATALOG.items() if t.audience in wanted and not t.mandatory)


async def p_mute(ctx: Ctx, role: str) -> Call:
    me = await whoami(ctx, role)
    kind = me[0] if me else "resident"
    event_type = _non_mandatory(kind)
    if me is not None:
        await NotificationPreference.filter(
            subject_type=me[0], subject_id=me[1], event_type=event_type
        ).delete()
    return Call(params={"event_type": event_type}, json={"muted": True}, state={"me": me})


def _template() -> str:
    return default_templates()["visitor_arrived"].template_id


async def _quota(resident_id: int) -> int:
    sub = await WeChatSubscription.get_or_none(resident_id=resident_id, template_id=_template())
    return sub.quota if sub else 0


async def p_subscribe(ctx: Ctx, role: str) -> Call:
    me = await whoami(ctx, role)
    quota = await _quota(me[1]) if me and me[0] == "resident" else 0
    return Call(
        json={"template_id": _template(), "accepted": True}, state={"me": me, "quota": quota}
    )


# --- verify ----------------------------------------------------------------------------


async def v_listed(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    ids = {n["id"] for n in r.json()["items"]}
    assert call.state["mine"] in ids
    assert not ids & set(call.state["foreign"]), "someone else's notification listed"
    kind, my_id = call.state["me"]
    unread = await Notification.filter(recipient_type=kind, recipient_id=my_id, read_at=None)
    assert r.json()["unread"] == len(unread)


async def v_unread(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    kind, my_id = call.state["me"]
    mine = await Notification.filter(recipient_type=kind, recipient_id=my_id, read_at=None)
    assert r.json()["unread"] == len(mine) >= 1


async def v_read_all(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert r.json()["marked"] >= 1
    assert (await Notification.get(id=call.state["mine"])).read_at is not None
    foreign = await Notification.filter(id__in=call.state["foreign"], read_at=None).count()
    assert foreign == len(call.state["foreign"]), "someone else's notification marked read"


async def v_read_one(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert (await Notification.get(id=call.params["notification_id"])).read_at is not None


async def v_preferences(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    staff = role not in RESIDENTS
    audiences = {CATALOG[p["event_type"]].audience for p in items(r)}
    assert (Audience.RESIDENT if staff else Audience.STAFF) not in audiences


async def v_muted(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    kind, my_id = call.state["me"]
    pref = await NotificationPreference.get(
        subject_type=kind, subject_id=my_id, event_type=call.params["event_type"]
    )
    assert pref.muted


async def v_subscribed(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    my_id = call.state["me"][1]
    assert r.json()["quota"] == call.state["quota"] + 1 == await _quota(my_id)


RULES: dict[tuple[str, str], Rule] = {
    ("GET", f"{V1}/notifications"): Rule("any", LOGGED_IN, p_my_notes, verify=v_listed),
    ("GET", f"{V1}/notifications/unread-count"): Rule(
        "any", LOGGED_IN, p_my_notes, verify=v_unread
    ),
    ("POST", f"{V1}/notifications/read-all"): Rule("any", LOGGED_IN, p_my_notes, verify=v_read_all),
    ("POST", f"{V1}/notifications/{{notification_id}}/read"): Rule(
        "any", ME, p_resident_note, deny=NOT_THEIRS, verify=v_read_one
    ),
    ("GET", f"{V1}/notifications/preferences"): Rule("any", LOGGED_IN, verify=v_preferences),
    ("PUT", f"{V1}/notifications/preferences/{{event_type}}"): Rule(
        "any", LOGGED_IN, p_mute, verify=v_muted
    ),
    ("GET", f"{V1}/me/subscriptions"): Rule("resident", RESIDENTS, no_args),
    ("POST", f"{V1}/me/subscriptions"): Rule(
        "resident", RESIDENTS, p_subscribe, verify=v_subscribed
    ),
}

# Someone else's notification is refused exactly like one that does not exist.
no_probing(
    RULES,
    {("POST", f"{V1}/notifications/{{notification_id}}/read"): swap_param("notification_id")},
    LOGGED_IN,
)
