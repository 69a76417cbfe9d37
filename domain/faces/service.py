"""Face enrollment, staff review, deletion and retention: the domain functions.

Routes call these with plain arguments. The life of a face:

consent (per purpose, versioned) -> submission (photo or active-liveness sequence;
quality gate; duplicate check; photo and embedding encrypted, bound to the row)
-> staff decision (the photo is deleted either way) -> approved: "central" adds it to
the galleries (bus), "edge" appends it to the community's terminal library and pushes
it; the server copy goes once every terminal acknowledged -> removal (withdrawal, move-out
after the grace period, block, re-enrollment): gallery remove (bus) + library remove to
every terminal + every server copy deleted. Every step writes a FaceRecord.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from anxin.channels import FACES_GALLERY
from anxin.clock import clock, utcnow
from anxin.crypto import KeyRing
from anxin.errors import Forbidden, Gone, Invalid, conflict, invalid, not_found
from anxin.runtime import Runtime
from anxin.scheduler import PURGE_BIOMETRICS_AFTER_MOVE_OUT, JobContext, registry
from auth.permissions import Action, Principal, authorize, scoped_row
from domain.access.snapshots import snapshot_store
from domain.faces import consent
from domain.faces.library import FACE_LIBRARY, append_change
from domain.faces.records import record
from domain.faces.store import (
    decrypt_embeddings,
    decrypt_photo,
    delete_embedding,
    encrypt_embeddings,
    encrypt_photo,
)
from face_engine import EnrollmentAnalysis, get_engine
from models import (
    AccessEvent,
    BlockKind,
    BlocklistEntry,
    Community,
    ConsentGiver,
    ConsentPurpose,
    EnrollmentMethod,
    EnrollmentState,
    FaceConsent,
    FaceEnrollment,
    FaceLibraryChange,
    FaceSelfEnrollment,
    FaceStoragePolicy,
    LibraryOp,
    Membership,
    MembershipState,
    Resident,
    ResidentBlock,
)
from notifications.outbox import emit

# The server picks the moves: three from four, never the same twice in a row, so a
# replayed recording matches a new challenge once in 4 x 3 x 3 = 36 (a two-move shuffle
# of left/right was one in two).
CHALLENGE_ACTIONS = ("turn_left", "turn_right", "nod", "look_up")
CHALLENGE_LENGTH = 3


def draw_challenge(rng: secrets.SystemRandom | None = None) -> list[str]:
    rng = rng or secrets.SystemRandom()
    actions: list[str] = []
    while len(actions) < CHALLENGE_LENGTH:
        actions.append(rng.choice([a for a in CHALLENGE_ACTIONS if actions[-1:] != [a]]))
    return actions


LIVE = (EnrollmentState.PENDING, EnrollmentState.APPROVED)


def _keyring(runtime: Runtime) -> KeyRing:
    return runtime.keyring


async def _community(community_id: int) -> Community:
    community = await Community.get_or_none(id=community_id)
    if community is None:
        raise not_found("community")
    return community


async def _queue_decision(e: FaceEnrollment, approve: bool, reason: str) -> None:
    """The resident's (and guardian's) message, in the decision's own transaction."""
    event_type = "enrollment_approved" if approve else "enrollment_rejected"
    residents = {e.resident_id}
    if e.submitted_by_type == "guardian":
        residents.add(e.submitted_by_id)
    await emit(
        event_type,
        payload={
            "subject": "人脸录入",
            "subject_en": "face enrollment",
            **({} if approve else {"reason": reason}),
        },
        community_id=e.community_id,
        residents=residents,
        dedupe_key=f"face-enrollment:{e.id}:{event_type}",
    )


# ---------------------------------------------------------------- consent


async def give_consents(
    actor: Resident, subject_id: int, community_id: int, items: list[tuple[ConsentPurpose, int]]
) -> list[FaceConsent]:
    giver = await consent.enroller_role(actor, subject_id, community_id)
    out = []
    for purpose, version in items:
        c = await consent.give(
            subject_id,
            community_id,
            purpose,
            version,
            giver,
            guardian_id=actor.id if giver == ConsentGiver.GUARDIAN else None,
        )
        out.append(c)
        await record(
            "consent.given",
            actor_type="resident",
            actor_id=actor.id,
            community_id=community_id,
            resident_id=subject_id,
            reason=purpose.value,
            details={"consent_id": c.id, "version": version, "given_by": giver.value},
        )
    return out


async def my_consents(actor: Resident) -> list[FaceConsent]:
    return await FaceConsent.filter(Q(resident_id=actor.id) | Q(guardian_id=actor.id)).order_by(
        "-id"
    )


async def withdraw_consent(runtime: Runtime, actor: Resident, consent_id: int) -> FaceConsent:
    """Withdrawal takes effect at once and deletes the face everywhere."""
    c = await FaceConsent.get_or_none(id=consent_id)
    if c is None or actor.id not in (c.resident_id, c.guardian_id):
        raise not_found("consent")
    if c.withdrawn_at is None:
        c.withdrawn_at = utcnow()
        c.withdrawn_by_type, c.withdrawn_by_id = "resident", actor.id
        await c.save(update_fields=["withdrawn_at", "withdrawn_by_type", "withdrawn_by_id"])
        await record(
            "consent.withdrawn",
            actor_type="resident",
            actor_id=actor.id,
            community_id=c.community_id,
            resident_id=c.resident_id,
            reason=c.purpose.value,
            details={"consent_id": c.id},
        )
    await remove_resident_faces(
        runtime, c.resident_id, c.community_id, "consent_withdrawn", "resident", actor.id
    )
    return c


# ---------------------------------------------------------------- submission


async def _prepare(actor: Resident, subject_id: int, community_id: int) -> tuple[Community, str]:
    # Household first: a community they do not live in answers like one that does not exist.
    giver = await consent.enroller_role(actor, subject_id, community_id)
    community = await _community(community_id)
    missing = await consent.missing(subject_id, community_id, community.face_storage_policy)
    if missing:
        raise consent.consent_missing_error(missing)
    return community, "guardian" if giver == ConsentGiver.GUARDIAN else "resident"


def _primary(runtime: Runtime, vecs: dict[str, np.ndarray]) -> np.ndarray | None:
    return vecs.get(runtime.settings.face_backend, next(iter(vecs.values()), None))


async def find_duplicates(
    runtime: Runtime,
    community_id: int,
    subject_id: int,
    vecs: dict[str, np.ndarray],
    exclude_id: int | None = None,
) -> list[dict[str, Any]]:
    """Faces of *other* residents of the community the server can compare against.

    Central: every approved face plus pending ones. Edge: the server holds only pending
    and not-yet-delivered faces, so only those are compared (docs/faces.md).
    """
    probe = _primary(runtime, vecs)
    if probe is None:
        return []
    threshold = runtime.settings.face_match_threshold
    keyring = _keyring(runtime)
    found = []
    rows = await FaceEnrollment.filter(
        community_id=community_id, state__in=LIVE, embedding_enc__not_isnull=True
    ).exclude(resident_id=subject_id)
    for e in rows:
        if e.id == exclude_id:
            continue
        other = _primary(runtime, decrypt_embeddings(keyring, e))
        if other is None or other.shape != probe.shape:
            continue
        score = float(np.dot(other, probe))
        if score >= threshold:
            found.append(
                {
                    "resident_id": e.resident_id,
                    "enrollment_id": e.id,
                    "state": e.state.value,
                    "score": round(score, 4),
                }
            )
    return sorted(found, key=lambda d: -d["score"])


async def _create(
    runtime: Runtime,
    community: Community,
    subject_id: int,
    submitted_by: tuple[str, int],
    method: EnrollmentMethod,
    analysis: EnrollmentAnalysis,
    photo: bytes,
    liveness: dict[str, Any] | None = None,
) -> FaceEnrollment:
    vecs = analysis.embeddings
    duplicates = await find_duplicates(runtime, community.id, subject_id, vecs)
    engine = get_engine(runtime.settings)
    e = await FaceEnrollment.create(
        resident_id=subject_id,
        community_id=community.id,
        submitted_by_type=submitted_by[0],
        submitted_by_id=submitted_by[1],
        method=method,
        storage_policy=community.face_storage_policy.value,
        backend=engine.backend_name,
        quality=analysis.quality.as_dict(),
        liveness=liveness or {},
        duplicate_of=duplicates,
    )
    keyring = _keyring(runtime)
    e.person_id = f"f{e.id}"
    e.photo_enc = encrypt_photo(keyring, e, photo)
    e.embedding_enc = encrypt_embeddings(keyring, e, vecs)
    await e.save(update_fields=["person_id", "photo_enc", "embedding_enc"])
    await record(
        "enrollment.submitted",
        actor_type=submitted_by[0],
        actor_id=submitted_by[1],
        community_id=community.id,
        resident_id=subject_id,
        enrollment_id=e.id,
        reason=method.value,
        details={"duplicate": bool(duplicates)},
    )
    return e


async def submit_photo(
    runtime: Runtime, actor: Resident, subject_id: int, community_id: int, photo: bytes
) -> FaceEnrollment:
    community, kind = await _prepare(actor, subject_id, community_id)
    if community.face_self_enrollment != FaceSelfEnrollment.PHOTO:
        # A still photo proves nobody is in front of the phone: by default a resident
        # enrolls through the active challenge, or with staff in person at the office.
        raise Forbidden(
            "liveness_required",
            "本小区要求通过动作活体验证录入人脸（或到物业当面录入）",
            "this community asks for the active liveness check (or enrollment in person "
            "at the property office)",
            {"challenge_url": "/api/v1/me/face/challenges"},
        )
    analysis = await get_engine(runtime.settings).aanalyze_enrollment(photo)
    analysis.raise_for_quality()
    return await _create(
        runtime, community, subject_id, (kind, actor.id), EnrollmentMethod.PHOTO, analysis, photo
    )


async def new_challenge(
    runtime: Runtime, actor: Resident, subject_id: int, community_id: int
) -> dict[str, Any]:
    await _prepare(actor, subject_id, community_id)
    actions = draw_challenge()
    ttl = runtime.settings.face_liveness_challenge_ttl_s
    challenge = {
        "id": secrets.token_urlsafe(18),
        "actor_id": actor.id,
        "resident_id": subject_id,
        "community_id": community_id,
        "actions": actions,
        "expires_at": clock.time() + ttl,
    }
    await runtime.kv.set(f"face:challenge:{challenge['id']}", json.dumps(challenge), ttl + 60)
    return challenge


async def submit_liveness(
    runtime: Runtime, actor: Resident, challenge_id: str, frames: list[bytes], mirrored: bool
) -> FaceEnrollment:
    key = f"face:challenge:{challenge_id}"
    raw = await runtime.kv.get(key)
    challenge = json.loads(raw) if raw else None
    if challenge is None or challenge["actor_id"] != actor.id:
        raise not_found("challenge")
    await runtime.kv.delete(key)  # single use, pass or fail
    if challenge["expires_at"] < clock.time():
        raise Gone(
            "challenge_expired", "验证已过期，请重新开始", "the challenge expired; start again"
        )
    community, kind = await _prepare(actor, challenge["resident_id"], challenge["community_id"])
    if not frames:
        raise invalid("liveness_no_frames", "未收到视频帧", "no frames were received")
    engine = get_engine(runtime.settings)
    verdict = await engine.acheck_liveness(frames, challenge["actions"], mirrored)
    if not verdict.passed:
        raise Invalid(
            f"liveness_{verdict.reasons[0]}",
            verdict.message_zh,
            verdict.message_en,
            {
                "reasons": verdict.reasons,
                "actions": challenge["actions"],
                "actions_done": verdict.actions_done,
            },
        )
    analysis = await engine.aanalyze_enrollment(frames[0])  # the frontal reference frame
    analysis.raise_for_quality()
    return await _create(
        runtime,
        community,
        challenge["resident_id"],
        (kind, actor.id),
        EnrollmentMethod.LIVENESS,
        analysis,
        frames[0],
        {"actions": challenge["actions"], "min_similarity": verdict.min_similarity},
    )


async def enroll_in_person(
    runtime: Runtime,
    principal: Principal,
    community_id: int,
    resident_id: int,
    photo: bytes,
    consent_confirmed: bool,
) -> FaceEnrollment:
    """Staff at the office enroll a resident (e.g. elderly, no smartphone) who is present
    and consents; the consents are recorded as given in person, with the staff witness."""
    authorize(principal, Action.FACE_ENROLL_IN_PERSON, community_id)
    community = await _community(community_id)
    if not await Membership.filter(
        resident_id=resident_id, community_id=community_id, state=MembershipState.APPROVED
    ).exists():
        raise not_found("resident")
    if not consent_confirmed:
        raise invalid(
            "consent_required", "须经本人同意方可录入", "the resident's consent is required"
        )
    analysis = await get_engine(runtime.settings).aanalyze_enrollment(photo)
    analysis.raise_for_quality()
    texts = {t.purpose: t for t in await consent.current_texts()}
    for purpose in consent.required_purposes(community.face_storage_policy):
        c = await consent.give(
            resident_id,
            community_id,
            purpose,
            texts[purpose].version,
            ConsentGiver.IN_PERSON,
            witness_staff_id=principal.id,
        )
        await record(
            "consent.given",
            actor_type="staff",
            actor_id=principal.id,
            community_id=community_id,
            resident_id=resident_id,
            reason=purpose.value,
            details={"consent_id": c.id, "given_by": "in_person"},
        )
    e = await _create(
        runtime,
        community,
        resident_id,
        ("staff", principal.id),
        EnrollmentMethod.IN_PERSON,
        analysis,
        photo,
    )
    if e.duplicate_of:
        return e  # a possible duplicate waits for a second look in the queue
    return await decide(runtime, principal, e.id, True, "enrolled in person")


# ---------------------------------------------------------------- review


async def queue(
    principal: Principal,
    community_id: int,
    *,
    state: EnrollmentState | None = None,
    limit: int = 500,
    after: int | None = None,
) -> list[FaceEnrollment]:
    """Oldest first (first come, first reviewed); `after` an id (keyset paging)."""
    authorize(principal, Action.FACE_REVIEW, community_id)
    q = FaceEnrollment.filter(community_id=community_id)
    if state is not None:
        q = q.filter(state=state)
    if after is not None:
        q = q.filter(id__gt=after)
    return await q.order_by("id").limit(limit)


async def _scoped(principal: Principal, enrollment_id: int, action: Action) -> FaceEnrollment:
    return await scoped_row(principal, action, FaceEnrollment, enrollment_id, "enrollment")


async def review_photo(runtime: Runtime, principal: Principal, enrollment_id: int) -> bytes:
    """The reviewer sees the photo only while the decision is pending; every view recorded."""
    e = await _scoped(principal, enrollment_id, Action.FACE_REVIEW)
    data = decrypt_photo(_keyring(runtime), e) if e.state == EnrollmentState.PENDING else None
    if data is None:
        raise Gone("photo_gone", "照片已在审核后删除", "the photo was deleted after the decision")
    await record(
        "photo.viewed",
        actor_type="staff",
        actor_id=principal.id,
        community_id=e.community_id,
        resident_id=e.resident_id,
        enrollment_id=e.id,
        reason="review",
    )
    return data


async def decide(
    runtime: Runtime, principal: Principal, enrollment_id: int, approve: bool, reason: str
) -> FaceEnrollment:
    e = await _scoped(principal, enrollment_id, Action.FACE_REVIEW)
    if e.state != EnrollmentState.PENDING:
        raise _not_pending(e)
    if not approve and not reason.strip():
        raise invalid("reason_required", "驳回须填写原因", "a rejection needs a reason")
    if approve:
        missing = await consent.missing(e.resident_id, e.community_id, e.storage_policy)
        if missing:
            raise consent.consent_missing_error(missing)
        community = await _community(e.community_id)
        if community.face_storage_policy.value != e.storage_policy:
            raise conflict(
                "storage_policy_changed",
                "小区人脸存储方式已变更，请重新录入",
                "the community's face storage policy changed; enroll again",
            )
    # Two reviewers at once, or a withdrawal meanwhile: one conditional update decides;
    # only its winner acts (one record, one library change).
    now = utcnow()
    state = EnrollmentState.APPROVED if approve else EnrollmentState.REJECTED
    async with in_transaction():
        won = await FaceEnrollment.filter(id=e.id, state=EnrollmentState.PENDING).update(
            state=state, decided_by_id=principal.id, decided_at=now, decision_reason=reason
        )
        if won:  # the decision and its message: both or neither
            await _queue_decision(e, approve, reason)
    await e.refresh_from_db()
    if not won:
        raise _not_pending(e)
    if approve:
        # One face per resident and community: a new approval replaces the old one.
        for old in await FaceEnrollment.filter(
            resident_id=e.resident_id,
            community_id=e.community_id,
            state=EnrollmentState.APPROVED,
        ).exclude(id=e.id):
            await remove_face(runtime, old, "superseded", "staff", principal.id)
    await record(
        "enrollment.approved" if approve else "enrollment.rejected",
        actor_type="staff",
        actor_id=principal.id,
        community_id=e.community_id,
        resident_id=e.resident_id,
        enrollment_id=e.id,
        reason=reason[:64],
    )
    await delete_photo(e, "decided")
    if not approve:
        await delete_embedding(e, "rejected")
        return e
    if e.storage_policy == FaceStoragePolicy.CENTRAL.value:
        await runtime.bus.publish(
            FACES_GALLERY,
            {
                "op": "add",
                "community_id": e.community_id,
                "enrollment_id": e.id,
                "person_id": e.person_id,
            },
        )
    else:
        change = await append_change(e, LibraryOp.ADD, "approved")
        if await FaceEnrollment.filter(id=e.id, state=EnrollmentState.APPROVED).update(
            library_version=change.version
        ):
            e.library_version = change.version
            runtime.get(FACE_LIBRARY).push_soon(e.community_id)
        else:
            # Removed (withdrawal, block) while this approval ran: the removal may have
            # looked for this "add" before it existed, so take it off the terminals here.
            await e.refresh_from_db()
            await _library_remove(runtime, e, e.removed_reason or "removed")
    return e


def _not_pending(e: FaceEnrollment) -> Exception:
    return conflict(
        "enrollment_not_pending",
        "该录入已处理",
        "enrollment already decided",
        {"state": e.state.value},
    )


# ---------------------------------------------------------------- deletion


async def delete_photo(e: FaceEnrollment, reason: str) -> None:
    now = utcnow()
    # Conditional: two deleters (a decision and a removal) record one deletion.
    if not await FaceEnrollment.filter(id=e.id, photo_enc__not_isnull=True).update(
        photo_enc=None, photo_deleted_at=now
    ):
        e.photo_enc = None
        return
    e.photo_enc, e.photo_deleted_at = None, now
    await record(
        "photo.deleted",
        actor_type="system",
        community_id=e.community_id,
        resident_id=e.resident_id,
        enrollment_id=e.id,
        reason=reason,
    )


async def _library_remove(runtime: Runtime, e: FaceEnrollment, reason: str) -> None:
    """Append the library "remove" once: only if an "add" went out, and only for the
    caller that claims it (a removal racing an approval, or two removals)."""
    if not await FaceLibraryChange.exists(enrollment_id=e.id, op=LibraryOp.ADD):
        return
    if not await FaceEnrollment.filter(id=e.id, library_removed_at=None).update(
        library_removed_at=utcnow()
    ):
        return
    await append_change(e, LibraryOp.REMOVE, reason)
    runtime.get(FACE_LIBRARY).push_soon(e.community_id)


async def remove_face(
    runtime: Runtime, e: FaceEnrollment, reason: str, actor_type: str, actor_id: int | None
) -> None:
    """Gone everywhere: galleries (bus), every terminal (library remove), every server copy.
    Two removals at once (a withdrawal and a block, two staff): one conditional update
    picks the one that records it and sends the library change."""
    won = False
    was = e.state
    for _ in range(3):  # the state may move under us (an approval): read it again
        if was not in LIVE:
            break
        now = utcnow()
        won = bool(
            await FaceEnrollment.filter(id=e.id, state=was).update(
                state=EnrollmentState.REMOVED, removed_at=now, removed_reason=reason[:32]
            )
        )
        if won:
            e.state, e.removed_at, e.removed_reason = EnrollmentState.REMOVED, now, reason[:32]
            break
        await e.refresh_from_db()
        was = e.state
    if won and was == EnrollmentState.APPROVED:
        await runtime.bus.publish(
            FACES_GALLERY,
            {
                "op": "remove",
                "community_id": e.community_id,
                "enrollment_id": e.id,
                "person_id": e.person_id,
            },
        )
        await _library_remove(runtime, e, reason)
    await delete_photo(e, reason)
    await delete_embedding(e, reason)
    if won:
        await record(
            "face.removed",
            actor_type=actor_type,
            actor_id=actor_id,
            community_id=e.community_id,
            resident_id=e.resident_id,
            enrollment_id=e.id,
            reason=reason,
        )


async def remove_resident_faces(
    runtime: Runtime,
    resident_id: int,
    community_id: int,
    reason: str,
    actor_type: str,
    actor_id: int | None,
) -> int:
    rows = await FaceEnrollment.filter(
        resident_id=resident_id, community_id=community_id, state__in=LIVE
    )
    for e in rows:
        await remove_face(runtime, e, reason, actor_type, actor_id)
    return len(rows)


# ---------------------------------------------------------------- retention


async def schedule_purge(
    resident_id: int, community_id: int, due: datetime, reason: str
) -> list[int]:
    """Called inside a departure's transaction: the person's faces in the community are due
    for deletion at `due` (an earlier deadline already set stays). Durable with the
    departure itself; `purge_moved_out` (scheduled) or `purge_due` (right after the
    commit) deletes them. Returns the enrollments."""
    rows = await FaceEnrollment.filter(
        resident_id=resident_id, community_id=community_id, state__in=LIVE
    )
    ids = []
    for e in rows:
        if e.purge_after is not None and e.purge_after <= due:
            ids.append(e.id)
            continue
        await FaceEnrollment.filter(id=e.id).update(purge_after=due)
        ids.append(e.id)
        await record(
            "purge.scheduled",
            actor_type="system",
            community_id=community_id,
            resident_id=resident_id,
            enrollment_id=e.id,
            reason=reason[:64],
            details={"due": due.isoformat()},
        )
    return ids


async def purge_due(
    runtime: Runtime,
    resident_id: int,
    community_id: int,
    reason: str,
    actor_type: str = "system",
    actor_id: int | None = None,
) -> list[int]:
    """Delete now the person's faces whose deadline has come (a block, an account deletion,
    a grace period of 0 days); idempotent."""
    done = []
    for e in await FaceEnrollment.filter(
        resident_id=resident_id,
        community_id=community_id,
        state__in=LIVE,
        purge_after__lte=utcnow(),
    ):
        await remove_face(runtime, e, reason, actor_type, actor_id)
        done.append(e.id)
    return done


async def restore_on_return(runtime: Runtime, resident_id: int, community_id: int) -> list[int]:
    """Moving back in before the deadline: the pending deletion is cancelled, and the face
    goes back to the gates only while the person's consent is still valid; a face whose
    consent is gone is deleted now instead (docs/faces.md). Returns the faces restored."""
    restored = []
    for e in await FaceEnrollment.filter(
        resident_id=resident_id,
        community_id=community_id,
        state__in=LIVE,
        purge_after__not_isnull=True,
    ):
        if await consent.missing(resident_id, community_id, e.storage_policy):
            await remove_face(runtime, e, "consent_missing", "system", None)
            continue
        # Conditional: the purge job may have taken it meanwhile.
        if not await FaceEnrollment.filter(
            id=e.id, state=e.state, purge_after__not_isnull=True
        ).update(purge_after=None):
            continue
        await record(
            "purge.cancelled",
            actor_type="system",
            community_id=community_id,
            resident_id=resident_id,
            enrollment_id=e.id,
            reason="moved_back_in",
        )
        restored.append(e.id)
        if e.state != EnrollmentState.APPROVED:
            continue  # still waiting for review: nothing on any gate yet
        if e.storage_policy == FaceStoragePolicy.CENTRAL.value:
            await runtime.bus.publish(
                FACES_GALLERY,
                {
                    "op": "add",
                    "community_id": e.community_id,
                    "enrollment_id": e.id,
                    "person_id": e.person_id,
                },
            )
        else:
            # Edge: the terminals kept it through the grace period; any still owed it
            # (pending deliveries) get it now.
            runtime.get(FACE_LIBRARY).push_soon(community_id)
    return restored


async def purge_moved_out(runtime: Runtime) -> list[int]:
    """Scheduled: delete faces whose deadline has passed. Someone who lives here again
    by then (approved) keeps the face only through `restore_on_return`, which checks
    consent; this job only clears the deadline of a face that was restored already."""
    done = []
    for e in await FaceEnrollment.filter(purge_after__lte=utcnow(), state__in=LIVE):
        if await Membership.filter(
            resident_id=e.resident_id,
            community_id=e.community_id,
            state=MembershipState.APPROVED,
        ).exists():
            await restore_on_return(runtime, e.resident_id, e.community_id)
            continue
        await remove_face(runtime, e, "moved_out", "system", None)
        done.append(e.id)
    return done


async def remove_blocked(runtime: Runtime) -> list[int]:
    """Scheduled: the face of a resident blocked or blocklisted in a community leaves that
    community's terminals (a block elsewhere leaves this community's face alone)."""
    done = []
    approved = await FaceEnrollment.filter(state=EnrollmentState.APPROVED)
    blocked = set(
        await ResidentBlock.filter(resident_id__in=[e.resident_id for e in approved]).values_list(
            "community_id", "resident_id"
        )
    )
    listed = {
        (b.community_id, b.resident_id)
        for b in await BlocklistEntry.filter(kind=BlockKind.PERSON, active=True)
    }
    for e in approved:
        if (e.community_id, e.resident_id) in blocked | listed:
            await remove_face(runtime, e, "blocked", "system", None)
            done.append(e.id)
    return done


async def purge_snapshots(runtime: Runtime) -> int:
    """Scheduled: gate snapshots older than settings.snapshot_retention_days."""
    cutoff = utcnow() - timedelta(days=runtime.settings.snapshot_retention_days)
    refs = snapshot_store(runtime.settings).purge_older_than(cutoff)
    by_community: dict[int, int] = {}
    for i in range(0, len(refs), 500):
        chunk = refs[i : i + 500]
        await AccessEvent.filter(snapshot_ref__in=chunk).update(snapshot_ref="")
    for ref in refs:
        cid = int(ref.split(":", 1)[1].split("/", 1)[0])
        by_community[cid] = by_community.get(cid, 0) + 1
    for cid, n in by_community.items():
        await record(
            "snapshot.deleted",
            actor_type="system",
            community_id=cid,
            reason="retention",
            details={"count": n, "before": cutoff.isoformat()},
        )
    return len(refs)


def register_jobs() -> None:
    """Retention jobs on the shared scheduler registry (anxin/scheduler.py)."""

    async def moved_out(ctx: JobContext) -> int:
        return len(await purge_moved_out(ctx.runtime))

    async def blocked(ctx: JobContext) -> int:
        return len(await remove_blocked(ctx.runtime))

    async def snapshots(ctx: JobContext) -> int:
        return await purge_snapshots(ctx.runtime)

    registry.add_job(PURGE_BIOMETRICS_AFTER_MOVE_OUT, moved_out, seconds=600, replace=True)
    registry.add_job("remove_blocked_faces", blocked, seconds=60, replace=True)
    registry.add_job("purge_gate_snapshots", snapshots, seconds=3600, replace=True)


def enrollment_out(e: FaceEnrollment, staff: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": e.id,
        "resident_id": e.resident_id,
        "community_id": e.community_id,
        "state": e.state.value,
        "method": e.method.value,
        "submitted_by": {"type": e.submitted_by_type, "id": e.submitted_by_id},
        "storage_policy": e.storage_policy,
        "quality": e.quality,
        "decision_reason": e.decision_reason,
        "decided_at": e.decided_at,
        "created_at": e.created_at,
        "photo_held": e.photo_enc is not None,
        "server_copy_held": e.embedding_enc is not None,
        "removed_reason": e.removed_reason,
        "purge_after": e.purge_after,
    }
    if staff:
        out["duplicate"] = bool(e.duplicate_of)
        out["duplicate_of"] = e.duplicate_of
        out["liveness"] = e.liveness
        out["photo_url"] = (
            f"/api/v1/staff/face-enrollments/{e.id}/photo"
            if e.state == EnrollmentState.PENDING and e.photo_enc is not None
            else None
        )
    return out
