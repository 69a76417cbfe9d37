"""Data-sharing agreements: one active agreement per community says which police platform
may receive which categories of data, on what legal basis, for how long, and who
approved it. Nothing is sent without one; withdrawing it stops the flow at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tortoise.transactions import in_transaction

from anxin.clock import utcnow
from anxin.crypto import KeyRing
from anxin.errors import conflict, forbidden, invalid, not_found
from auth.permissions import Action, Principal, authorize
from domain import audit
from domain.police.coding import valid_center_code, valid_code20
from models import (
    AgreementState,
    Community,
    LegalBasis,
    PoliceAgreement,
    PoliceLinkState,
    PoliceUpload,
    ShareCategory,
    UploadState,
)

MAX_RETENTION_DAYS = 3 * 365  # PIPL art. 56 records are kept 3 years; nothing longer here


@dataclass(frozen=True)
class AgreementTerms:
    platform_name: str
    base_url: str
    system_id: str
    username: str
    password: str
    center_code: str
    community_code: str
    legal_basis: LegalBasis
    document_no: str
    categories: list[ShareCategory]
    retention_days: int
    approved_by: str
    rate_limit_per_s: int = 500
    notify_url: str = ""


def _password_ad(agreement_id: int) -> bytes:
    return f"police_agreement:{agreement_id}:password".encode()


def require_operator(principal: Principal) -> None:
    """Agreements are the city operator's to make: property staff cannot open a data flow
    to the police on their own."""
    if not principal.is_operator:
        raise forbidden("only a city operator may set data-sharing agreements", "仅限运营方")


def _check_terms(terms: AgreementTerms) -> None:
    url = urlsplit(terms.base_url)
    if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
        raise invalid("invalid_url", "视图库地址无效", "base_url must be http(s)://host[:port]")
    if terms.notify_url and urlsplit(terms.notify_url).scheme not in ("http", "https"):
        raise invalid("invalid_url", "通知接收地址无效", "notify_url must be http(s)")
    for value, what in (
        (terms.system_id, "system_id"),
        (terms.community_code, "community_code"),
    ):
        if not valid_code20(value):
            raise invalid("invalid_code", "编码须为20位数字", f"{what} must be 20 digits")
    if not valid_center_code(terms.center_code):
        raise invalid("invalid_code", "中心编码须为8位数字", "center_code must be 8 digits")
    if not terms.categories:
        raise invalid("no_categories", "至少选择一类数据", "allow at least one category")
    if not 1 <= terms.retention_days <= MAX_RETENTION_DAYS:
        raise invalid(
            "invalid_retention", "保存期限须在1天至3年之间", "retention must be 1 day to 3 years"
        )
    if not terms.document_no.strip() or not terms.approved_by.strip():
        raise invalid(
            "missing_reference", "须填写文号与批准人", "document number and approver required"
        )


async def create_agreement(
    principal: Principal, community_id: int, terms: AgreementTerms, keyring: KeyRing
) -> PoliceAgreement:
    require_operator(principal)
    if not await Community.exists(id=community_id):
        raise not_found("community")
    _check_terms(terms)
    async with in_transaction():
        if await PoliceAgreement.exists(community_id=community_id, state=AgreementState.ACTIVE):
            raise conflict(
                "agreement_active",
                "该小区已有生效的共享协议，请先撤回",
                "the community already has an active agreement: withdraw it first",
            )
        agreement = await PoliceAgreement.create(
            community_id=community_id,
            platform_name=terms.platform_name,
            base_url=terms.base_url.rstrip("/"),
            system_id=terms.system_id,
            username=terms.username,
            password_enc=b"",
            center_code=terms.center_code,
            community_code=terms.community_code,
            legal_basis=terms.legal_basis,
            document_no=terms.document_no.strip(),
            categories=sorted({c.value for c in terms.categories}),
            retention_days=terms.retention_days,
            approved_by=terms.approved_by.strip(),
            created_by_id=principal.id,
            rate_limit_per_s=terms.rate_limit_per_s,
            notify_url=terms.notify_url,
        )
        agreement.password_enc = keyring.encrypt(
            terms.password.encode(), _password_ad(agreement.id)
        )
        await agreement.save(update_fields=["password_enc"])
        await PoliceLinkState.create(agreement_id=agreement.id)
        await audit.record(
            "police.agreement.create",
            **principal.audit_actor(),
            community_id=community_id,
            target_type="police_agreement",
            target_id=agreement.id,
            details={
                "platform": terms.platform_name,
                "document_no": agreement.document_no,
                "legal_basis": terms.legal_basis.value,
                "categories": agreement.categories,
                "retention_days": terms.retention_days,
                "approved_by": agreement.approved_by,
            },
        )
    return agreement


async def withdraw_agreement(principal: Principal, agreement_id: int, reason: str) -> int:
    """Withdraw: the agreement ends and every upload still queued under it is cancelled,
    in one transaction; the link stops sending before its next object. Returns how many
    queued uploads were cancelled."""
    require_operator(principal)
    async with in_transaction():
        agreement = await PoliceAgreement.filter(id=agreement_id).select_for_update().first()
        if agreement is None:
            raise not_found("agreement")
        if agreement.state != AgreementState.ACTIVE:
            raise conflict("agreement_withdrawn", "协议已撤回", "agreement already withdrawn")
        agreement.state = AgreementState.WITHDRAWN
        agreement.withdrawn_at = utcnow()
        agreement.withdrawn_by_id = principal.id
        agreement.withdrawal_reason = reason
        await agreement.save()
        cancelled = await PoliceUpload.filter(
            agreement_id=agreement.id, state=UploadState.QUEUED
        ).update(state=UploadState.CANCELLED, last_error="agreement withdrawn")
        await audit.record(
            "police.agreement.withdraw",
            **principal.audit_actor(),
            community_id=agreement.community_id,
            target_type="police_agreement",
            target_id=agreement.id,
            details={"reason": reason, "cancelled_uploads": cancelled},
        )
    return cancelled


async def active_agreement(community_id: int) -> PoliceAgreement | None:
    return (
        await PoliceAgreement.filter(community_id=community_id, state=AgreementState.ACTIVE)
        .order_by("-id")
        .first()
    )


async def active_agreements() -> list[PoliceAgreement]:
    return await PoliceAgreement.filter(state=AgreementState.ACTIVE).order_by("id")


async def is_active(agreement_id: int) -> bool:
    return await PoliceAgreement.exists(id=agreement_id, state=AgreementState.ACTIVE)


def password(agreement: PoliceAgreement, keyring: KeyRing) -> str:
    return keyring.decrypt(agreement.password_enc, _password_ad(agreement.id)).decode()


async def list_agreements(principal: Principal, community_id: int) -> list[PoliceAgreement]:
    if not principal.is_operator:
        authorize(principal, Action.POLICE_AGREEMENT_READ, community_id)
    return await PoliceAgreement.filter(community_id=community_id).order_by("-id")


def agreement_out(a: PoliceAgreement) -> dict[str, Any]:
    """The terms as anyone allowed to read them sees them (never the password)."""
    return {
        "id": a.id,
        "community_id": a.community_id,
        "platform_name": a.platform_name,
        "base_url": a.base_url,
        "system_id": a.system_id,
        "username": a.username,
        "center_code": a.center_code,
        "community_code": a.community_code,
        "legal_basis": a.legal_basis.value,
        "document_no": a.document_no,
        "categories": list(a.categories),
        "retention_days": a.retention_days,
        "approved_by": a.approved_by,
        "approved_at": a.approved_at,
        "created_by_id": a.created_by_id,
        "rate_limit_per_s": a.rate_limit_per_s,
        "notify_url": a.notify_url,
        "state": a.state.value,
        "withdrawn_at": a.withdrawn_at,
        "withdrawal_reason": a.withdrawal_reason,
    }
