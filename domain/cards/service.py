"""Access cards (IC cards): one of the ways in. Staff issue a card to a resident of the
community and revoke it; the gate's card check reads only active cards, and the access
policy still decides (a blocked or moved-out resident's card opens nothing)."""

from __future__ import annotations

import re

from tortoise.transactions import in_transaction

from anxin.errors import conflict, invalid, not_found
from auth.permissions import Action, Principal, authorize, scoped_row
from domain import audit
from models import AccessCard, Membership, MembershipState

CARD_NO = re.compile(r"^[0-9A-F]{4,32}$")


def normalize_card_no(raw: str) -> str:
    """Card numbers as readers send them: hex digits, upper case, no separators."""
    card_no = re.sub(r"[\s:-]", "", raw).upper()
    if not CARD_NO.match(card_no):
        raise invalid(
            "bad_card_no", "卡号须为4-32位数字或十六进制字符", "card number: 4-32 hex digits"
        )
    return card_no


async def list_cards(
    principal: Principal,
    community_id: int,
    *,
    resident_id: int | None = None,
    limit: int = 100,
    before: int | None = None,
) -> list[AccessCard]:
    """Newest first; `before`: a card id (the page's keyset cursor)."""
    authorize(principal, Action.CARD_MANAGE, community_id)
    query = AccessCard.filter(community_id=community_id)
    if resident_id is not None:
        query = query.filter(resident_id=resident_id)
    if before is not None:
        query = query.filter(id__lt=before)
    return await query.order_by("-id").limit(limit)


async def issue_card(
    principal: Principal, community_id: int, resident_id: int, raw_card_no: str
) -> AccessCard:
    authorize(principal, Action.CARD_MANAGE, community_id)
    card_no = normalize_card_no(raw_card_no)
    lives_here = await Membership.exists(
        resident_id=resident_id, community_id=community_id, state=MembershipState.APPROVED
    )
    if not lives_here:
        raise not_found("resident")
    async with in_transaction():
        card = await AccessCard.get_or_none(community_id=community_id, card_no=card_no)
        if card is not None and card.active:
            raise conflict("card_in_use", "该卡已发给其他住户或已在使用", "card already issued")
        if card is None:
            card = await AccessCard.create(
                community_id=community_id, resident_id=resident_id, card_no=card_no
            )
        else:  # a revoked card handed out again
            card.resident_id, card.active = resident_id, True
            await card.save(update_fields=["resident_id", "active"])
    await audit.record(
        "card.issued",
        **principal.audit_actor(),
        community_id=community_id,
        target_type="card",
        target_id=card.id,
        details={"resident_id": resident_id, "card_no": card_no},
    )
    return card


async def revoke_card(principal: Principal, card_id: int, reason: str = "") -> AccessCard:
    card = await scoped_row(principal, Action.CARD_MANAGE, AccessCard, card_id, "card")
    if card.active:
        card.active = False
        await card.save(update_fields=["active"])
        await audit.record(
            "card.revoked",
            **principal.audit_actor(),
            community_id=card.community_id,
            target_type="card",
            target_id=card.id,
            details={"resident_id": card.resident_id, "reason": reason},
        )
    return card
