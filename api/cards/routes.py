"""Staff issue and revoke residents' access cards."""

from __future__ import annotations

from fastapi import Query

from api.cards.schemas import CardIn, CardOut, RevokeIn
from api.contract import PAGE_DEFAULT, STAFF, Cursor, Limit, Page, api_router, errors, keyset_page
from api.deps import PrincipalDep
from api.schemas import INT32_MAX, PathId
from domain.cards import service
from models import AccessCard

router = api_router("/api/v1/staff", tags=[STAFF])


def card_out(c: AccessCard) -> CardOut:
    return CardOut(
        id=c.id,
        community_id=c.community_id,
        resident_id=c.resident_id,
        card_no=c.card_no,
        active=c.active,
    )


@router.get(
    "/communities/{community_id}/cards",
    response_model=Page[CardOut],
    summary="门禁卡 · the community's cards, newest first",
)
async def list_cards(
    community_id: PathId,
    principal: PrincipalDep,
    resident_id: int | None = Query(None, gt=0, le=INT32_MAX),
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[CardOut]:
    rows, nxt = await keyset_page(
        lambda n, before: service.list_cards(
            principal, community_id, resident_id=resident_id, limit=n, before=before
        ),
        cursor,
        limit,
    )
    return Page(items=[card_out(c) for c in rows], next=nxt)


@router.post(
    "/communities/{community_id}/cards",
    status_code=201,
    response_model=CardOut,
    summary="发卡 · issue a card to a resident",
    responses=errors(404, 409),
)
async def issue_card(community_id: PathId, body: CardIn, principal: PrincipalDep) -> CardOut:
    card = await service.issue_card(principal, community_id, body.resident_id, body.card_no)
    return card_out(card)


@router.post(
    "/cards/{card_id}/revoke", response_model=CardOut, summary="注销门禁卡 · revoke a card"
)
async def revoke_card(card_id: PathId, body: RevokeIn, principal: PrincipalDep) -> CardOut:
    return card_out(await service.revoke_card(principal, card_id, body.reason))
