"""Staff manage the community tree and import residents."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, UploadFile
from pydantic import Field

from anxin.errors import TooLarge
from api.deps import PrincipalDep, SettingsDep
from api.schemas import PathId, Strict
from domain.community import importer, service
from models import FaceSelfEnrollment, FaceStoragePolicy

router = APIRouter(prefix="/api/v1/staff", tags=["staff"])


class NameIn(Strict):
    name: str = Field(min_length=1, max_length=32)


class RoomIn(Strict):
    number: str = Field(min_length=1, max_length=16)


@router.get("/communities", summary="Communities I work for")
async def my_communities(principal: PrincipalDep) -> list[dict[str, Any]]:
    rows = await service.visible_communities(principal)
    return [
        {
            "id": c.id,
            "name": c.name,
            "name_en": c.name_en,
            "timezone": c.timezone,
            "roles": sorted(principal.roles.get(c.id, ())),
        }
        for c in rows
    ]


@router.get("/communities/{community_id}/tree")
async def tree(community_id: PathId, principal: PrincipalDep) -> dict[str, Any]:
    return await service.community_tree(principal, community_id)


@router.post("/communities/{community_id}/buildings", status_code=201)
async def add_building(
    community_id: PathId, body: NameIn, principal: PrincipalDep
) -> dict[str, Any]:
    b = await service.create_building(principal, community_id, body.name)
    return {"id": b.id, "name": b.name}


@router.post("/buildings/{building_id}/units", status_code=201)
async def add_unit(building_id: PathId, body: NameIn, principal: PrincipalDep) -> dict[str, Any]:
    u = await service.create_unit(principal, building_id, body.name)
    return {"id": u.id, "name": u.name}


@router.post("/units/{unit_id}/rooms", status_code=201)
async def add_room(unit_id: PathId, body: RoomIn, principal: PrincipalDep) -> dict[str, Any]:
    r = await service.create_room(principal, unit_id, body.number)
    return {"id": r.id, "number": r.number}


@router.post(
    "/communities/{community_id}/residents/import",
    summary="Import residents from CSV or Excel (all rows or none)",
)
async def import_residents(
    community_id: PathId, file: UploadFile, principal: PrincipalDep, settings: SettingsDep
) -> dict[str, Any]:
    data = await file.read(importer.MAX_BYTES + 1)
    if len(data) > importer.MAX_BYTES:
        raise TooLarge("file_too_large", "文件超过5MB", "file larger than 5 MB")
    result = await importer.import_residents(
        principal, community_id, file.filename or "", data, settings.invitation_ttl_days
    )
    return asdict(result)


class FacePolicyIn(Strict):
    policy: FaceStoragePolicy


@router.put(
    "/communities/{community_id}/face-storage-policy",
    summary="Where faces live: edge (terminals only) or central (encrypted on the server)",
)
async def face_storage_policy(
    community_id: PathId, body: FacePolicyIn, principal: PrincipalDep
) -> dict[str, Any]:
    c = await service.set_face_storage_policy(principal, community_id, body.policy)
    return {"id": c.id, "face_storage_policy": c.face_storage_policy.value}


class SelfEnrollmentIn(Strict):
    self_enrollment: FaceSelfEnrollment


@router.put(
    "/communities/{community_id}/face-self-enrollment",
    summary="How residents enroll from the phone: liveness (default) or also a still photo",
)
async def face_self_enrollment(
    community_id: PathId, body: SelfEnrollmentIn, principal: PrincipalDep
) -> dict[str, Any]:
    c = await service.set_face_self_enrollment(principal, community_id, body.self_enrollment)
    return {"id": c.id, "face_self_enrollment": c.face_self_enrollment.value}
