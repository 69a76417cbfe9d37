"""Staff manage the community tree and import residents."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import UploadFile

from anxin.errors import TooLarge
from api.community.schemas import (
    CommunityTree,
    FacePolicyIn,
    FacePolicyOut,
    ImportOut,
    Named,
    NameIn,
    RoomIn,
    RoomOut,
    SelfEnrollmentIn,
    SelfEnrollmentOut,
    StaffCommunityOut,
)
from api.contract import PAGE_DEFAULT, STAFF, Cursor, Limit, Page, api_router, errors, page_list
from api.deps import PrincipalDep
from api.schemas import PathId
from domain.community import importer, service

router = api_router("/api/v1/staff", tags=[STAFF])


@router.get(
    "/communities", response_model=Page[StaffCommunityOut], summary="Communities I work for"
)
async def list_staff_communities(
    principal: PrincipalDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[StaffCommunityOut]:
    rows, nxt = page_list(
        await service.visible_communities(principal), cursor, limit, lambda c: c.id
    )
    items = [
        StaffCommunityOut(
            id=c.id,
            name=c.name,
            name_en=c.name_en,
            timezone=c.timezone,
            roles=sorted(principal.roles.get(c.id, ())),
        )
        for c in rows
    ]
    return Page(items=items, next=nxt)


@router.get(
    "/communities/{community_id}/tree",
    response_model=CommunityTree,
    summary="Buildings, units and rooms",
)
async def community_tree(community_id: PathId, principal: PrincipalDep) -> CommunityTree:
    return CommunityTree.model_validate(await service.community_tree(principal, community_id))


@router.post(
    "/communities/{community_id}/buildings",
    status_code=201,
    response_model=Named,
    responses=errors(409),
    summary="Add a building",
)
async def add_building(community_id: PathId, body: NameIn, principal: PrincipalDep) -> Named:
    b = await service.create_building(principal, community_id, body.name)
    return Named(id=b.id, name=b.name)


@router.post(
    "/buildings/{building_id}/units",
    status_code=201,
    response_model=Named,
    responses=errors(409),
    summary="Add a unit",
)
async def add_unit(building_id: PathId, body: NameIn, principal: PrincipalDep) -> Named:
    u = await service.create_unit(principal, building_id, body.name)
    return Named(id=u.id, name=u.name)


@router.post(
    "/units/{unit_id}/rooms",
    status_code=201,
    response_model=RoomOut,
    responses=errors(409),
    summary="Add a room",
)
async def add_room(unit_id: PathId, body: RoomIn, principal: PrincipalDep) -> RoomOut:
    r = await service.create_room(principal, unit_id, body.number)
    return RoomOut(id=r.id, number=r.number)


@router.post(
    "/communities/{community_id}/residents/import",
    response_model=ImportOut,
    responses=errors(413),
    summary="Import residents from CSV or Excel (all rows or none)",
)
async def import_residents(
    community_id: PathId, file: UploadFile, principal: PrincipalDep
) -> ImportOut:
    data = await file.read(importer.MAX_BYTES + 1)
    if len(data) > importer.MAX_BYTES:
        raise TooLarge("file_too_large", "文件超过5MB", "file larger than 5 MB")
    result = await importer.import_residents(principal, community_id, file.filename or "", data)
    return ImportOut(**asdict(result))


@router.put(
    "/communities/{community_id}/face-storage-policy",
    response_model=FacePolicyOut,
    responses=errors(409),
    summary="Where faces live: edge (terminals only) or central (encrypted on the server)",
)
async def set_face_storage_policy(
    community_id: PathId, body: FacePolicyIn, principal: PrincipalDep
) -> FacePolicyOut:
    c = await service.set_face_storage_policy(principal, community_id, body.policy)
    return FacePolicyOut(id=c.id, face_storage_policy=c.face_storage_policy)


@router.put(
    "/communities/{community_id}/face-self-enrollment",
    response_model=SelfEnrollmentOut,
    summary="How residents enroll from the phone: liveness (default) or also a still photo",
)
async def set_face_self_enrollment(
    community_id: PathId, body: SelfEnrollmentIn, principal: PrincipalDep
) -> SelfEnrollmentOut:
    c = await service.set_face_self_enrollment(principal, community_id, body.self_enrollment)
    return SelfEnrollmentOut(id=c.id, face_self_enrollment=c.face_self_enrollment)
