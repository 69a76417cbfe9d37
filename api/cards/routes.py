"""Staff issue and revoke residents' access cards."""

from __future__ import annotations

from typing import Any

from fastapi import Query
from pydantic import Field

from api.contract import STAFF, api_router, errors
from api.deps import PrincipalDep
from api.schemas import BodyId, PathId, Strict
from domain.cards import service
from models import AccessCard

router = api_router("/api/v1/staff", tags=[STAFF])


class CardIn(Strict):
    resident_id: BodyId
    card_no: str = Field(min_length=4, max_length=64)


class RevokeIn(Strict):
    reason: str = Field("", max_length=200)


def card_out(c: AccessCard) -> dict[str, Any]:
    return {
        "id": c.id,
        "community_id": c.community_id,
        "resident_id": c.resident_id,
        "card_no": c.card_no,
        "active": c.active,
    }


@router.get("/communities/{community_id}/cards", summary="门禁卡 · the community's cards")
async def list_cards(
    community_id: PathId,
    principal: PrincipalDep,
    resident_id: int | None = Query(None, gt=0, le=2**31 - 1),
) -> list[dict[str, Any]]:
    return [card_out(c) for c in await service.list_cards(principal, community_id, resident_id)]


@router.post(
    "/communities/{community_id}/cards",
    status_code=201,
    summary="发卡 · issue a card to a resident",
    responses=errors(404, 409),
)
async def issue_card(community_id: PathId, body: CardIn, principal: PrincipalDep) -> dict[str, Any]:
    card = await service.issue_card(principal, community_id, body.resident_id, body.card_no)
    return card_out(card)


@router.post("/cards/{card_id}/revoke", summary="注销门禁卡 · revoke a card")
async def revoke_card(card_id: PathId, body: RevokeIn, principal: PrincipalDep) -> dict[str, Any]:
    return card_out(await service.revoke_card(principal, card_id, body.reason))
