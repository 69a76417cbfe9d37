"""Approval queues: membership requests and face enrollments side by side."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form
from fastapi.responses import Response

from auth.permissions import Action
from console import i18n, labels, nav
from console.web import CommunityCtx, ConsoleRoute, done, render, require_any
from domain.faces import service as faces
from domain.households import service as households
from models import EnrollmentState, MembershipState, Resident

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

nav.register(
    nav.NavItem(
        "approvals",
        "nav.approvals",
        "/console/c/{cid}/approvals",
        actions=(Action.MEMBERSHIP_DECIDE, Action.FACE_REVIEW),
        order=20,
    )
)

i18n.add(
    {
        "nav.approvals": ("审核", "Approvals"),
        "approvals.title": ("待审核", "Waiting for approval"),
        "approvals.members": ("住户入住申请", "Household requests"),
        "approvals.faces": ("人脸录入", "Face enrollments"),
        "approvals.approve": ("批准", "Approve"),
        "approvals.reject": ("驳回", "Reject"),
        "approvals.reason": ("驳回原因", "Reason for rejecting"),
        "approvals.room": ("房间", "Room"),
        "approvals.role": ("身份", "Role"),
        "approvals.applicant": ("申请人", "Applicant"),
        "approvals.note": ("备注", "Note"),
        "approvals.quality": ("质量检测", "Quality check"),
        "approvals.quality_ok": ("合格", "passed"),
        "approvals.duplicate": (
            "疑似重复：与其他住户人脸相似",
            "Possible duplicate of another resident",
        ),
        "approvals.no_duplicate": ("无重复", "no duplicate"),
        "approvals.photo_alt": ("待审核的人脸照片", "Face photo under review"),
        "approvals.method": ("录入方式", "Method"),
        "enroll_method.photo": ("上传照片", "photo upload"),
        "enroll_method.liveness": ("活体检测", "liveness check"),
        "enroll_method.in_person": ("现场录入", "in person"),
        "approvals.submitted": ("提交时间", "Submitted"),
        "member_role.owner": ("业主", "owner"),
        "member_role.family": ("家属", "family"),
        "member_role.tenant": ("租户", "tenant"),
    }
)


def room_label(room: object) -> str:
    return f"{room.building.name} {room.unit.name} {room.number}"  # type: ignore[attr-defined]


@router.get("/c/{cid}/approvals")
async def approvals(ctx: CommunityCtx) -> Response:
    cid = ctx.cid
    assert cid is not None
    require_any(ctx, Action.MEMBERSHIP_DECIDE, Action.FACE_REVIEW)
    members, enrollments = [], []
    if ctx.may(Action.MEMBERSHIP_DECIDE):
        members = await households.list_memberships(
            ctx.principal, cid, state=MembershipState.PENDING, limit=200
        )
    if ctx.may(Action.FACE_REVIEW):
        enrollments = await faces.queue(ctx.principal, cid, state=EnrollmentState.PENDING)
    names = {
        r.id: r.name for r in await Resident.filter(id__in={e.resident_id for e in enrollments})
    }
    return await render(
        ctx,
        "approvals.html",
        active="approvals",
        members=members,
        enrollments=enrollments,
        names=names,
        room_label=room_label,
        labels=labels,
    )


@router.post("/c/{cid}/memberships/{mid}/decide")
async def decide_membership(
    ctx: CommunityCtx,
    mid: int,
    decision: Annotated[Literal["approve", "reject"], Form()],
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    approve = decision == "approve"
    await households.decide(ctx.principal, mid, approve, reason.strip(), ctx.runtime)
    key = "done.approved" if approve else "done.rejected"
    return await done(ctx, f"/console/c/{ctx.cid}/approvals", key)


@router.get("/c/{cid}/faces/{eid}/photo")
async def face_photo(ctx: CommunityCtx, eid: int) -> Response:
    """The photo under review (each view recorded); gone once decided."""
    data = await faces.review_photo(ctx.runtime, ctx.principal, eid)
    return Response(data, media_type="image/jpeg", headers={"cache-control": "no-store"})


@router.post("/c/{cid}/faces/{eid}/decide")
async def decide_face(
    ctx: CommunityCtx,
    eid: int,
    decision: Annotated[Literal["approve", "reject"], Form()],
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    approve = decision == "approve"
    await faces.decide(ctx.runtime, ctx.principal, eid, approve, reason.strip())
    key = "done.approved" if approve else "done.rejected"
    return await done(ctx, f"/console/c/{ctx.cid}/approvals", key)
