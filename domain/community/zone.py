"""A community's time zone, in which its times are shown and read."""

from __future__ import annotations

from typing import Any

from tortoise.signals import post_save

from anxin.db import IMMUTABLE_FACTS
from anxin.settings import get_settings
from models import Community


def _key(community_id: int) -> tuple[str, int]:
    return ("community.timezone", community_id)


async def community_timezone(community_id: int) -> str:
    """The community's IANA zone name. It is set when the community is created and no
    route, page or job changes it, so each process reads it once (`IMMUTABLE_FACTS`); a
    community that does not exist answers the default zone and is read again next time.
    (Should editing the zone ever become a feature, that edit must tell every process to
    forget it, over the bus; a save in this process already does, below.)"""
    zone = IMMUTABLE_FACTS.get(_key(community_id))
    if zone is None:
        rows = await Community.filter(id=community_id).values_list("timezone", flat=True)
        if not rows:
            return get_settings().default_timezone
        zone = IMMUTABLE_FACTS[_key(community_id)] = str(rows[0])
    return str(zone)


@post_save(Community)
async def _forget_on_save(sender: type[Community], instance: Community, *_: Any) -> None:
    IMMUTABLE_FACTS.pop(_key(instance.id), None)
