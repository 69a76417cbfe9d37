"""The demo's police side: a security officer, a city operator and a data-sharing
agreement with the fake platform, so the link runs from the first `anxin demo`."""

from __future__ import annotations

from anxin.crypto import keyring_from_settings
from anxin.settings import Settings
from auth.permissions import Principal
from domain.police.agreements import AgreementTerms, active_agreement, create_agreement
from models import LegalBasis, ShareCategory, StaffAccount

DEMO_POLICE_USER = "anxin-demo"
DEMO_POLICE_PASSWORD = "anxin-demo-viid"  # the fake platform's; a real one comes from the police


async def seed_demo_agreement(
    settings: Settings, community_id: int, police_url: str, notify_url: str
) -> bool:
    """Create the demo agreement once (by the demo operator); True when created."""
    if await active_agreement(community_id) is not None:
        return False
    operator = await StaffAccount.get_or_none(username="operator")
    if operator is None:
        return False
    await create_agreement(
        Principal("staff", operator.id, staff=operator),
        community_id,
        AgreementTerms(
            platform_name="示范市公安局视图库（模拟）",
            base_url=police_url,
            system_id="33010600002000000001",
            username=DEMO_POLICE_USER,
            password=DEMO_POLICE_PASSWORD,
            center_code="33010600",
            community_code="33010600002160000001",
            legal_basis=LegalBasis.PIPL_13_3,
            document_no="示公（治）备〔2026〕1号（演示）",
            categories=list(ShareCategory),
            retention_days=180,
            approved_by="安心花园物业 演示负责人",
            notify_url=notify_url,
        ),
        keyring_from_settings(settings),
    )
    return True
