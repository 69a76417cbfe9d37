"""Faces: consent, self-enrollment from the phone, staff review, the terminal library view."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from tortoise.expressions import Q

from anxin.errors import invalid
from anxin.timefmt import local_iso
from api.contract import (
    PAGE_DEFAULT,
    RESIDENT,
    STAFF,
    Cursor,
    Limit,
    Page,
    api_router,
    community_tz,
    errors,
    keyset_page,
    page_list,
    page_query,
)
from api.deps import PrincipalDep, ResidentDep, RuntimeDep
from api.faces.schemas import (
    ChallengeIn,
    ChallengeOut,
    ConsentIn,
    ConsentOut,
    ConsentTextOut,
    DecisionIn,
    EnrollmentOut,
    LibraryStatus,
    StaffEnrollmentOut,
)
from api.faces.upload import Form, read_form
from api.idempotency import IdempotencyKey, fingerprint, run_once
from api.schemas import PathId
from auth.permissions import Action, authorize
from domain.faces import consent, service
from domain.faces.library import FACE_LIBRARY
from face_engine.liveness import MAX_FRAMES
from models import EnrollmentState, FaceConsent, FaceEnrollment

resident_router = api_router("/api/v1", tags=[RESIDENT])
staff_router = api_router("/api/v1", tags=[STAFF])
router = APIRouter()

_PHOTO_FORM = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["community_id", "photo"],
                    "properties": {
                        "community_id": {"type": "integer"},
                        "resident_id": {"type": "integer", "description": "a child (guardian)"},
                        "photo": {"type": "string", "format": "binary"},
                    },
                }
            }
        }
    }
}
_IN_PERSON_FORM = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["resident_id", "photo", "consent_confirmed"],
                    "properties": {
                        "resident_id": {"type": "integer"},
                        "photo": {"type": "string", "format": "binary"},
                        "consent_confirmed": {
                            "type": "boolean",
                            "description": "the resident signed the consent at the office",
                        },
                    },
                }
            }
        }
    }
}
_FRAMES_FORM = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["challenge_id", "frames"],
                    "properties": {
                        "challenge_id": {"type": "string"},
                        "mirrored": {"type": "boolean"},
                        "frames": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                        },
                    },
                }
            }
        }
    }
}


# ---------------------------------------------------------------- outputs


async def _zones(community_ids: set[int]) -> dict[int, str]:
    return {cid: await community_tz(cid) for cid in community_ids}


def enrollment_out(e: FaceEnrollment, tz: str) -> EnrollmentOut:
    out = service.enrollment_out(e)
    return EnrollmentOut(
        **{
            **out,
            "decided_at": local_iso(e.decided_at, tz),
            "created_at": local_iso(e.created_at, tz),
            "purge_after": local_iso(e.purge_after, tz),
        },
        timezone=tz,
    )


def staff_enrollment_out(e: FaceEnrollment, tz: str) -> StaffEnrollmentOut:
    out = service.enrollment_out(e, staff=True)
    return StaffEnrollmentOut(
        **{
            **out,
            "decided_at": local_iso(e.decided_at, tz),
            "created_at": local_iso(e.created_at, tz),
            "purge_after": local_iso(e.purge_after, tz),
        },
        timezone=tz,
    )


async def consent_out(c: FaceConsent, tz: str) -> ConsentOut:
    out = await consent.consent_out(c)
    return ConsentOut(
        **{
            **out,
            "granted_at": local_iso(c.granted_at, tz),
            "withdrawn_at": local_iso(c.withdrawn_at, tz),
        },
        timezone=tz,
    )


def _form_fingerprint(operation: str, form: Form) -> str:
    files = {k: [hashlib.sha256(f).hexdigest() for f in v] for k, v in form.files.items()}
    return fingerprint(operation, sorted(form.fields.items()), sorted(files.items()))


# ---------------------------------------------------------------- residents


@resident_router.get(
    "/faces/consent-texts",
    response_model=Page[ConsentTextOut],
    summary="Current consent texts per purpose (zh + en)",
)
async def list_consent_texts(
    _: ResidentDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[ConsentTextOut]:
    texts, nxt = page_list(await consent.current_texts(), cursor, limit, lambda t: t.id)
    return Page(items=[ConsentTextOut(**consent.text_out(t)) for t in texts], next=nxt)


@resident_router.get(
    "/me/face/consents",
    response_model=Page[ConsentOut],
    summary="What I (or my child) agreed to",
)
async def list_my_consents(
    resident: ResidentDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[ConsentOut]:
    rows, nxt = page_list(await service.my_consents(resident), cursor, limit, lambda c: c.id)
    zones = await _zones({c.community_id for c in rows})
    return Page(items=[await consent_out(c, zones[c.community_id]) for c in rows], next=nxt)


@resident_router.post(
    "/me/face/consents",
    status_code=201,
    response_model=Page[ConsentOut],
    responses=errors(404, 409),
    summary="Give separate consent (one entry per purpose given)",
)
async def give_face_consent(body: ConsentIn, resident: ResidentDep) -> Page[ConsentOut]:
    rows = await service.give_consents(
        resident,
        body.resident_id or resident.id,
        body.community_id,
        [(c.purpose, c.version) for c in body.consents],
    )
    tz = await community_tz(body.community_id)
    return Page(items=[await consent_out(c, tz) for c in rows], next=None)


@resident_router.post(
    "/me/face/consents/{consent_id}/withdraw",
    response_model=ConsentOut,
    responses=errors(409),
    summary="Withdraw: deletes the face",
)
async def withdraw_face_consent(
    consent_id: PathId, resident: ResidentDep, runtime: RuntimeDep
) -> ConsentOut:
    c = await service.withdraw_consent(runtime, resident, consent_id)
    return await consent_out(c, await community_tz(c.community_id))


@resident_router.post(
    "/me/face/challenges",
    status_code=201,
    response_model=ChallengeOut,
    responses=errors(404, 409),
    summary="Start an active-liveness check",
)
async def start_liveness_challenge(
    body: ChallengeIn, resident: ResidentDep, runtime: RuntimeDep
) -> ChallengeOut:
    c = await service.new_challenge(
        runtime, resident, body.resident_id or resident.id, body.community_id
    )
    tz = await community_tz(body.community_id)
    expires = datetime.fromtimestamp(c["expires_at"], UTC)
    return ChallengeOut(
        challenge_id=c["id"],
        actions=c["actions"],
        expires_at=local_iso(expires, tz) or "",
        timezone=tz,
    )


@resident_router.post(
    "/me/face/enrollments",
    status_code=201,
    response_model=EnrollmentOut,
    openapi_extra=_PHOTO_FORM,
    responses=errors(404, 409, 413, 415),
    summary="Enroll from one photo (JPEG/PNG, multipart; Idempotency-Key: submitted once)",
)
async def enroll_face_photo(
    request: Request,
    resident: ResidentDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> EnrollmentOut:
    form = await read_form(request, runtime.settings.max_upload_bytes)
    community_id = form.int_field("community_id")
    if community_id is None:
        raise invalid("community_required", "请选择小区", "community_id is required")

    async def action() -> EnrollmentOut:
        e = await service.submit_photo(
            runtime,
            resident,
            form.int_field("resident_id", resident.id) or resident.id,
            community_id,
            form.file("photo"),
        )
        return enrollment_out(e, await community_tz(e.community_id))

    return await run_once(
        scope=f"resident:{resident.id}",
        operation="enrollFacePhoto",
        key=idempotency_key,
        request_fingerprint=_form_fingerprint("photo", form),
        action=action,
        status_code=201,
    )


@resident_router.post(
    "/me/face/enrollments/liveness",
    status_code=201,
    response_model=EnrollmentOut,
    openapi_extra=_FRAMES_FORM,
    responses=errors(404, 409, 410, 413, 415),
    summary="Enroll from an active-liveness frame sequence (multipart; Idempotency-Key)",
)
async def enroll_face_liveness(
    request: Request,
    resident: ResidentDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> EnrollmentOut:
    limit = runtime.settings.max_upload_bytes
    form = await read_form(request, limit, max_files=MAX_FRAMES)

    async def action() -> EnrollmentOut:
        e = await service.submit_liveness(
            runtime,
            resident,
            form.fields.get("challenge_id", "")[:64],
            form.files.get("frames", []),
            form.fields.get("mirrored", "").lower() in ("1", "true"),
        )
        return enrollment_out(e, await community_tz(e.community_id))

    return await run_once(
        scope=f"resident:{resident.id}",
        operation="enrollFaceLiveness",
        key=idempotency_key,
        request_fingerprint=_form_fingerprint("liveness", form),
        action=action,
        status_code=201,
    )


@resident_router.get(
    "/me/face/enrollments",
    response_model=Page[EnrollmentOut],
    summary="My enrollments (and those I made for my child), newest first",
)
async def list_my_enrollments(
    resident: ResidentDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[EnrollmentOut]:
    query = FaceEnrollment.filter(
        Q(resident_id=resident.id) | Q(submitted_by_type="guardian", submitted_by_id=resident.id)
    )
    rows, nxt = await page_query(query, cursor, limit, descending=True)
    zones = await _zones({e.community_id for e in rows})
    return Page(items=[enrollment_out(e, zones[e.community_id]) for e in rows], next=nxt)


# ---------------------------------------------------------------- staff


@staff_router.get(
    "/staff/communities/{community_id}/face-enrollments",
    response_model=Page[StaffEnrollmentOut],
    summary="Review queue, oldest first",
)
async def list_face_review_queue(
    community_id: PathId,
    principal: PrincipalDep,
    state: EnrollmentState | None = EnrollmentState.PENDING,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[StaffEnrollmentOut]:
    page, nxt = await keyset_page(
        lambda n, after: service.queue(principal, community_id, state=state, limit=n, after=after),
        cursor,
        limit,
    )
    tz = await community_tz(community_id)
    return Page(items=[staff_enrollment_out(e, tz) for e in page], next=nxt)


@staff_router.get(
    "/staff/face-enrollments/{enrollment_id}/photo",
    response_class=Response,
    responses={
        200: {
            "content": {
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
            "description": "the photo",
        },
        **errors(410),
    },
    summary="Photo, while pending (every view is recorded)",
)
async def get_enrollment_photo(
    enrollment_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> Response:
    data = await service.review_photo(runtime, principal, enrollment_id)
    media = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    return Response(data, media_type=media, headers={"Cache-Control": "no-store"})


@staff_router.post(
    "/staff/face-enrollments/{enrollment_id}/approve",
    response_model=StaffEnrollmentOut,
    responses=errors(409),
    summary="Approve an enrollment (the face goes to the terminals)",
)
async def approve_enrollment(
    enrollment_id: PathId, body: DecisionIn, principal: PrincipalDep, runtime: RuntimeDep
) -> StaffEnrollmentOut:
    e = await service.decide(runtime, principal, enrollment_id, True, body.reason)
    return staff_enrollment_out(e, await community_tz(e.community_id))


@staff_router.post(
    "/staff/face-enrollments/{enrollment_id}/reject",
    response_model=StaffEnrollmentOut,
    responses=errors(409),
    summary="Reject an enrollment (the photo is deleted)",
)
async def reject_enrollment(
    enrollment_id: PathId, body: DecisionIn, principal: PrincipalDep, runtime: RuntimeDep
) -> StaffEnrollmentOut:
    e = await service.decide(runtime, principal, enrollment_id, False, body.reason)
    return staff_enrollment_out(e, await community_tz(e.community_id))


@staff_router.post(
    "/staff/communities/{community_id}/face-enrollments/in-person",
    status_code=201,
    response_model=StaffEnrollmentOut,
    openapi_extra=_IN_PERSON_FORM,
    responses=errors(409, 413, 415),
    summary="Enroll a resident present at the office, with their consent",
)
async def enroll_face_in_person(
    community_id: PathId, request: Request, principal: PrincipalDep, runtime: RuntimeDep
) -> StaffEnrollmentOut:
    authorize(principal, Action.FACE_ENROLL_IN_PERSON, community_id)
    form = await read_form(request, runtime.settings.max_upload_bytes)
    e = await service.enroll_in_person(
        runtime,
        principal,
        community_id,
        form.int_field("resident_id") or 0,
        form.file("photo"),
        form.fields.get("consent_confirmed", "").lower() in ("1", "true"),
    )
    return staff_enrollment_out(e, await community_tz(community_id))


@staff_router.get(
    "/staff/communities/{community_id}/face-library",
    response_model=LibraryStatus,
    summary="Terminal libraries: intended and acknowledged version per device",
)
async def get_face_library_status(
    community_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> LibraryStatus:
    authorize(principal, Action.DEVICE_READ, community_id)
    return LibraryStatus.model_validate(await runtime.get(FACE_LIBRARY).status(community_id))


for _r in (resident_router, staff_router):
    router.include_router(_r)
