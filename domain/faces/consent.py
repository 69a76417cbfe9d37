"""Consent as data: versioned texts per purpose, who agreed to which version, withdrawal.

PIPL art. 29 and the CAC face recognition measures ask for *separate* consent to
process a face, and again to store it: so gate entry is one purpose, keeping the face on
the terminals ("edge") another, keeping it on the server ("central") a third. A child
under 14 is enrolled on a guardian's consent (PIPL art. 31). A text never changes once
published: a new wording is a new version, and a consent names the version agreed to.
"""

from __future__ import annotations

from datetime import date

from anxin.clock import utcnow
from anxin.errors import Forbidden, conflict, not_found
from models import (
    ConsentGiver,
    ConsentPurpose,
    ConsentText,
    FaceConsent,
    FaceStoragePolicy,
    Membership,
    MembershipRole,
    MembershipState,
    Resident,
)

CHILD_AGE = 14  # PIPL art. 31: under 14, a guardian consents
ADULT_AGE = 18

# (purpose, version) -> titles and texts. Add a version; never edit a published one.
TEXTS: dict[tuple[ConsentPurpose, int], tuple[str, str, str, str]] = {
    (ConsentPurpose.GATE_ENTRY, 1): (
        "人脸识别通行授权",
        "Consent to face recognition at the gates",
        "本小区门禁可使用人脸识别核验住户身份以开门。人脸信息属于敏感个人信息。"
        "您可自愿选择是否开通；不开通或随时撤回，不影响您使用门禁卡、密码、手机开门等"
        "其他通行方式及任何其他服务。处理目的仅限小区门禁通行，不用于其他目的。"
        "撤回授权后，系统将删除您在服务器及各门禁终端上的人脸信息。",
        "The gates of this community can recognise residents' faces to open the door. A "
        "face is sensitive personal information. Enrolling is voluntary; if you decline or "
        "withdraw at any time you keep card, code and app entry and every other service. "
        "The only purpose is entry to this community. Withdrawing deletes your face from "
        "the server and from every gate terminal.",
    ),
    (ConsentPurpose.TERMINAL_STORAGE, 1): (
        "人脸信息传输至门禁终端并在终端存储的单独同意",
        "Separate consent to send your face to the gate terminals and keep it there",
        "为在门口本地比对，您的人脸特征值（不含照片）将经加密通道传输至本小区的人脸门禁终端"
        "并仅存储于终端。服务器在所有终端确认接收后即删除其副本，仅保留发送记录。"
        "迁出（宽限期后）、被停用或撤回同意时，终端上的数据将被删除。",
        "To match at the door, your face template (not the photo) is sent over an "
        "encrypted channel to this community's face terminals and kept only there. The "
        "server deletes its copy once every terminal confirmed receipt and keeps only the "
        "record of the delivery. It is deleted from the terminals when you move out (after "
        "the grace period), are blocked, or withdraw.",
    ),
    (ConsentPurpose.SERVER_STORAGE, 1): (
        "人脸信息在服务器存储的单独同意",
        "Separate consent to keep your face on the server",
        "本小区采用服务器比对：您的人脸特征值将加密存储在物业服务器上，门禁抓拍时在服务器上"
        "比对。抓拍照片保存不超过规定天数。迁出（宽限期后）或撤回同意时，服务器上的人脸"
        "信息将被删除。",
        "This community matches faces on the server: your face template is kept encrypted "
        "on the property's server and gate captures are matched there. Gate snapshots are "
        "kept for a few days only. It is deleted when you move out (after the grace "
        "period) or withdraw.",
    ),
}


def storage_purpose(policy: FaceStoragePolicy | str) -> ConsentPurpose:
    if FaceStoragePolicy(policy) == FaceStoragePolicy.CENTRAL:
        return ConsentPurpose.SERVER_STORAGE
    return ConsentPurpose.TERMINAL_STORAGE


def required_purposes(policy: FaceStoragePolicy | str) -> list[ConsentPurpose]:
    return [ConsentPurpose.GATE_ENTRY, storage_purpose(policy)]


async def ensure_texts() -> None:
    for (purpose, version), (tzh, ten, zh, en) in TEXTS.items():
        await ConsentText.get_or_create(
            purpose=purpose,
            version=version,
            defaults={"title_zh": tzh, "title_en": ten, "text_zh": zh, "text_en": en},
        )


async def current_texts() -> list[ConsentText]:
    await ensure_texts()
    latest: dict[ConsentPurpose, ConsentText] = {}
    for t in await ConsentText.all().order_by("version"):
        latest[t.purpose] = t
    return [latest[p] for p in ConsentPurpose if p in latest]


def text_out(t: ConsentText) -> dict[str, object]:
    return {
        "purpose": t.purpose.value,
        "version": t.version,
        "title_zh": t.title_zh,
        "title_en": t.title_en,
        "text_zh": t.text_zh,
        "text_en": t.text_en,
    }


def age_on(birth: date | None, today: date) -> int | None:
    if birth is None:
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def is_child(r: Resident) -> bool:
    age = age_on(r.birth_date, utcnow().date())
    return age is not None and age < CHILD_AGE


async def _approved(resident_id: int, community_id: int) -> list[Membership]:
    return await Membership.filter(
        resident_id=resident_id, community_id=community_id, state=MembershipState.APPROVED
    )


async def enroller_role(actor: Resident, subject_id: int, community_id: int) -> ConsentGiver:
    """May `actor` consent and enroll for `subject_id` here? SELF or GUARDIAN, else 4xx.

    A guardian is an adult owner or family member approved in the same room as the
    child, and only a child under 14 is enrolled by a guardian.
    """
    mine = await _approved(actor.id, community_id)
    if not mine:
        raise not_found("household")
    if subject_id == actor.id:
        if is_child(actor):
            raise Forbidden(
                "guardian_required",
                "未满十四周岁的未成年人须由监护人代为同意并录入",
                "a child under 14 is enrolled by a guardian",
            )
        return ConsentGiver.SELF
    subject = await Resident.get_or_none(id=subject_id)
    theirs = {m.room_id for m in await _approved(subject_id, community_id)} if subject else set()
    guardian_rooms = {
        m.room_id for m in mine if m.role in (MembershipRole.OWNER, MembershipRole.FAMILY)
    }
    if subject is None or not theirs:
        raise not_found("resident")  # not in this community: no probing
    actor_age = age_on(actor.birth_date, utcnow().date())
    if (
        not is_child(subject)
        or not (theirs & guardian_rooms)
        or (actor_age is not None and actor_age < ADULT_AGE)
    ):
        raise Forbidden(
            "not_guardian",
            "只有同一住户的成年业主或家庭成员可为未满十四周岁的儿童录入人脸",
            "only an adult owner or family member of the same household may enroll a "
            "child under 14",
        )
    return ConsentGiver.GUARDIAN


async def give(
    subject_id: int,
    community_id: int,
    purpose: ConsentPurpose,
    version: int,
    given_by: ConsentGiver,
    *,
    guardian_id: int | None = None,
    witness_staff_id: int | None = None,
) -> FaceConsent:
    current = {t.purpose: t for t in await current_texts()}[purpose]
    if version != current.version:
        raise conflict(
            "consent_text_outdated",
            "同意书已更新，请阅读最新版本后再同意",
            "the consent text changed; read the current version first",
            {"purpose": purpose.value, "current_version": current.version},
        )
    existing = await active(subject_id, community_id)
    if purpose in existing and existing[purpose].text_id == current.id:
        return existing[purpose]
    return await FaceConsent.create(
        resident_id=subject_id,
        community_id=community_id,
        purpose=purpose,
        text=current,
        given_by=given_by,
        guardian_id=guardian_id,
        witness_staff_id=witness_staff_id,
    )


async def active(subject_id: int, community_id: int) -> dict[ConsentPurpose, FaceConsent]:
    rows = await FaceConsent.filter(
        resident_id=subject_id, community_id=community_id, withdrawn_at=None
    ).order_by("id")
    return {c.purpose: c for c in rows}


async def missing(
    subject_id: int, community_id: int, policy: FaceStoragePolicy | str
) -> list[ConsentPurpose]:
    held = await active(subject_id, community_id)
    return [p for p in required_purposes(policy) if p not in held]


def consent_missing_error(purposes: list[ConsentPurpose]) -> Forbidden:
    return Forbidden(
        "consent_missing",
        "请先阅读并同意人脸识别及人脸信息存储的单独授权",
        "separate consent to face recognition and to storing the face is needed first",
        {"missing": [p.value for p in purposes]},
    )


async def consent_out(c: FaceConsent) -> dict[str, object]:
    text = await c.text
    return {
        "id": c.id,
        "resident_id": c.resident_id,
        "community_id": c.community_id,
        "purpose": c.purpose.value,
        "version": text.version,
        "title_zh": text.title_zh,
        "title_en": text.title_en,
        "text_zh": text.text_zh,
        "text_en": text.text_en,
        "given_by": c.given_by.value,
        "guardian_id": c.guardian_id,
        "witness_staff_id": c.witness_staff_id,
        "granted_at": c.granted_at,
        "withdrawn_at": c.withdrawn_at,
    }
