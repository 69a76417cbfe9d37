"""Faces: consent, self-enrollment from the phone, staff review, the terminal library view."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import Field
from tortoise.expressions import Q

from anxin.errors import invalid
from api.deps import PrincipalDep, ResidentDep, RuntimeDep
from api.faces.upload import read_form
from api.schemas import BodyId, PathId, Strict
from auth.permissions import Action, authorize
from domain.faces import consent, service
from domain.faces.library import FACE_LIBRARY
from face_engine.liveness import MAX_FRAMES
from models import ConsentPurpose, EnrollmentState, FaceEnrollment

router = APIRouter(prefix="/api/v1", tags=["faces"])

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


class ConsentItem(Strict):
    purpose: ConsentPurpose
    version: int = Field(ge=1, le=1000)


class ConsentIn(Strict):
    community_id: BodyId
    resident_id: BodyId | None = None  # a child's id when a guardian consents
    consents: list[ConsentItem] = Field(min_length=1, max_length=3)


class ChallengeIn(Strict):
    community_id: BodyId
    resident_id: BodyId | None = None


class DecisionIn(Strict):
    reason: str = Field("", max_length=200)


# ---------------------------------------------------------------- residents


@router.get("/faces/consent-texts", summary="Current consent texts per purpose (zh + en)")
async def consent_texts(_: ResidentDep) -> list[dict[str, Any]]:
    return [consent.text_out(t) for t in await consent.current_texts()]


@router.get("/me/face/consents", summary="What I (or my child) agreed to")
async def my_consents(resident: ResidentDep) -> list[dict[str, Any]]:
    return [await consent.consent_out(c) for c in await service.my_consents(resident)]


@router.post("/me/face/consents", status_code=201, summary="Give separate consent")
async def give_consent(body: ConsentIn, resident: ResidentDep) -> list[dict[str, Any]]:
    rows = await service.give_consents(
        resident,
        body.resident_id or resident.id,
        body.community_id,
        [(c.purpose, c.version) for c in body.consents],
    )
    return [await consent.consent_out(c) for c in rows]


@router.post("/me/face/consents/{consent_id}/withdraw", summary="Withdraw: deletes the face")
async def withdraw(
    consent_id: PathId, resident: ResidentDep, runtime: RuntimeDep
) -> dict[str, Any]:
    return await consent.consent_out(await service.withdraw_consent(runtime, resident, consent_id))


@router.post("/me/face/challenges", status_code=201, summary="Start an active-liveness check")
async def challenge(
    body: ChallengeIn, resident: ResidentDep, runtime: RuntimeDep
) -> dict[str, Any]:
    c = await service.new_challenge(
        runtime, resident, body.resident_id or resident.id, body.community_id
    )
    return {"challenge_id": c["id"], "actions": c["actions"], "expires_at": c["expires_at"]}


@router.post(
    "/me/face/enrollments",
    status_code=201,
    openapi_extra=_PHOTO_FORM,
    summary="Enroll from one photo (JPEG/PNG, multipart)",
)
async def enroll_photo(
    request: Request, resident: ResidentDep, runtime: RuntimeDep
) -> dict[str, Any]:
    form = await read_form(request, runtime.settings.max_upload_bytes)
    community_id = form.int_field("community_id")
    if community_id is None:
        raise invalid("community_required", "请选择小区", "community_id is required")
    e = await service.submit_photo(
        runtime,
        resident,
        form.int_field("resident_id", resident.id) or resident.id,
        community_id,
        form.file("photo"),
    )
    return service.enrollment_out(e)


@router.post(
    "/me/face/enrollments/liveness",
    status_code=201,
    openapi_extra=_FRAMES_FORM,
    summary="Enroll from an active-liveness frame sequence (multipart)",
)
async def enroll_liveness(
    request: Request, resident: ResidentDep, runtime: RuntimeDep
) -> dict[str, Any]:
    limit = runtime.settings.max_upload_bytes
    form = await read_form(request, limit, max_files=MAX_FRAMES)
    e = await service.submit_liveness(
        runtime,
        resident,
        form.fields.get("challenge_id", "")[:64],
        form.files.get("frames", []),
        form.fields.get("mirrored", "").lower() in ("1", "true"),
    )
    return service.enrollment_out(e)


@router.get("/me/face/enrollments", summary="My enrollments (and those I made for my child)")
async def my_enrollments(resident: ResidentDep) -> list[dict[str, Any]]:
    rows = await FaceEnrollment.filter(
        Q(resident_id=resident.id) | Q(submitted_by_type="guardian", submitted_by_id=resident.id)
    ).order_by("-id")
    return [service.enrollment_out(e) for e in rows]


# ---------------------------------------------------------------- staff


@router.get("/staff/communities/{community_id}/face-enrollments", summary="Review queue")
async def review_queue(
    community_id: PathId,
    principal: PrincipalDep,
    state: EnrollmentState | None = EnrollmentState.PENDING,
) -> list[dict[str, Any]]:
    rows = await service.queue(principal, community_id, state)
    return [service.enrollment_out(e, staff=True) for e in rows]


@router.get(
    "/staff/face-enrollments/{enrollment_id}/photo",
    summary="Photo, while pending",
    response_class=Response,
)
async def review_photo(
    enrollment_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> Response:
    data = await service.review_photo(runtime, principal, enrollment_id)
    media = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    return Response(data, media_type=media, headers={"Cache-Control": "no-store"})


@router.post("/staff/face-enrollments/{enrollment_id}/approve")
async def approve(
    enrollment_id: PathId, body: DecisionIn, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    e = await service.decide(runtime, principal, enrollment_id, True, body.reason)
    return service.enrollment_out(e, staff=True)


@router.post("/staff/face-enrollments/{enrollment_id}/reject")
async def reject(
    enrollment_id: PathId, body: DecisionIn, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    e = await service.decide(runtime, principal, enrollment_id, False, body.reason)
    return service.enrollment_out(e, staff=True)


@router.post(
    "/staff/communities/{community_id}/face-enrollments/in-person",
    status_code=201,
    summary="Enroll a resident present at the office, with their consent",
)
async def in_person(
    community_id: PathId, request: Request, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
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
    return service.enrollment_out(e, staff=True)


@router.get(
    "/staff/communities/{community_id}/face-library",
    summary="Terminal libraries: intended and acknowledged version per device",
)
async def library_status(
    community_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    authorize(principal, Action.DEVICE_READ, community_id)
    return await runtime.get(FACE_LIBRARY).status(community_id)
