"""Community setup: buildings, units and rooms, and the residents import (CSV or Excel)
with a progress bar and the errors of each row."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form, UploadFile
from fastapi.responses import Response

from anxin.errors import DomainError, invalid, not_found
from auth.permissions import Action
from console import i18n, nav
from console.web import CommunityCtx, ConsoleRoute, Ctx, done, render, require_any
from domain.community import importer
from domain.community import service as community

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

nav.register(
    nav.NavItem(
        "setup", "nav.setup", "/console/c/{cid}/setup", (Action.COMMUNITY_MANAGE,), order=75
    )
)

i18n.add(
    {
        "nav.setup": ("小区设置", "Setup"),
        "setup.title": ("小区设置", "Community setup"),
        "setup.tree": ("楼栋 / 单元 / 房间", "Buildings / units / rooms"),
        "setup.add_building": ("新增楼栋", "Add building"),
        "setup.add_unit": ("新增单元", "Add unit"),
        "setup.add_room": ("新增房间", "Add room"),
        "setup.building_name": ("楼栋名称", "Building name"),
        "setup.unit_name": ("单元名称", "Unit name"),
        "setup.room_number": ("房号", "Room number"),
        "setup.rooms": ("间", "rooms"),
        "setup.import": ("导入住户（CSV 或 Excel）", "Import residents (CSV or Excel)"),
        "setup.import_help": (
            "列：楼栋、单元、房号、姓名、手机号、身份（业主/家属/租户），可选入住日期。"
            "任何一行有错则全部不导入。",
            "Columns: building, unit, room, name, phone, role (owner/family/tenant), optional "
            "move-in date. If any row is wrong nothing is imported.",
        ),
        "setup.file": ("文件", "File"),
        "setup.upload": ("开始导入", "Import"),
        "setup.progress": ("导入进度", "Import progress"),
        "setup.running": ("正在导入…", "Importing…"),
        "setup.finished": ("导入完成", "Import finished"),
        "setup.failed": ("导入失败，未导入任何数据", "Import failed; nothing was imported"),
        "setup.row": ("行", "Row"),
        "setup.field": ("列", "Column"),
        "setup.error": ("问题", "Problem"),
        "setup.result": (
            "共{rows}行：已邀请{invitations_created}人（住户在小程序中确认后绑定），"
            "已有邀请{invitations_unchanged}个，新建房间{rooms_created}间",
            "{rows} rows: {invitations_created} invited (bound once each accepts in the "
            "mini-program), {invitations_unchanged} already invited, {rooms_created} new rooms",
        ),
        "done.created": ("已创建", "Created"),
    }
)

IMPORT_TTL_S = 3600
_tasks: set[asyncio.Task[Any]] = set()  # keep running imports referenced


def _job_key(cid: int, job: str) -> str:
    return f"console:import:{cid}:{job}"


@router.get("/c/{cid}/setup")
async def setup(ctx: CommunityCtx) -> Response:
    assert ctx.cid is not None
    require_any(ctx, Action.COMMUNITY_MANAGE)
    tree = await community.community_tree(ctx.principal, ctx.cid)
    return await render(
        ctx, "setup.html", active="setup", tree=tree, max_mb=importer.MAX_BYTES // 2**20
    )


@router.post("/c/{cid}/setup/buildings")
async def add_building(
    ctx: CommunityCtx, name: Annotated[str, Form(min_length=1, max_length=32)]
) -> Response:
    assert ctx.cid is not None
    await community.create_building(ctx.principal, ctx.cid, name.strip())
    return await done(ctx, f"/console/c/{ctx.cid}/setup", "done.created")


@router.post("/c/{cid}/setup/units")
async def add_unit(
    ctx: CommunityCtx,
    building_id: Annotated[int, Form(gt=0, le=2**31 - 1)],
    name: Annotated[str, Form(min_length=1, max_length=32)],
) -> Response:
    await community.create_unit(ctx.principal, building_id, name.strip())
    return await done(ctx, f"/console/c/{ctx.cid}/setup", "done.created")


@router.post("/c/{cid}/setup/rooms")
async def add_room(
    ctx: CommunityCtx,
    unit_id: Annotated[int, Form(gt=0, le=2**31 - 1)],
    number: Annotated[str, Form(min_length=1, max_length=16)],
) -> Response:
    await community.create_room(ctx.principal, unit_id, number.strip())
    return await done(ctx, f"/console/c/{ctx.cid}/setup", "done.created")


async def _run_import(ctx: Ctx, key: str, filename: str, data: bytes) -> None:
    assert ctx.cid is not None
    kv = ctx.runtime.kv

    async def save(state: dict[str, Any]) -> None:
        await kv.set(key, json.dumps(state, ensure_ascii=False), IMPORT_TTL_S)

    async def progress(done_rows: int, total: int) -> None:
        await save({"state": "running", "done": done_rows, "total": total})

    try:
        result = await importer.import_residents(
            ctx.principal, ctx.cid, filename, data, progress=progress
        )
    except DomainError as err:
        details = err.details if isinstance(err.details, dict) else {}
        await save(
            {
                "state": "failed",
                "message_zh": err.zh,
                "message_en": err.en,
                "errors": details.get("errors", []),
                "error_count": details.get("error_count", 0),
            }
        )
        return
    except Exception as exc:  # noqa: BLE001 - the page must say it failed, not spin forever
        await save({"state": "failed", "message_zh": "导入出错", "message_en": str(exc)[:200]})
        raise
    await save(
        {"state": "finished", "done": result.rows, "total": result.rows, "result": result.__dict__}
    )


@router.post("/c/{cid}/setup/import")
async def start_import(ctx: CommunityCtx, file: UploadFile) -> Response:
    """Checks the right at once, then imports in the background; the page polls."""
    assert ctx.cid is not None
    require_any(ctx, Action.COMMUNITY_MANAGE)
    data = await file.read(importer.MAX_BYTES + 1)
    if len(data) > importer.MAX_BYTES:
        raise invalid("file_too_large", "文件过大", "file too large")
    job = secrets.token_hex(8)
    key = _job_key(ctx.cid, job)
    await ctx.runtime.kv.set(
        key, json.dumps({"state": "running", "done": 0, "total": 0}), IMPORT_TTL_S
    )
    task = asyncio.create_task(_run_import(ctx, key, file.filename or "", data))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return await import_status(ctx, job)


@router.get("/c/{cid}/setup/import/{job}")
async def import_status(ctx: CommunityCtx, job: str) -> Response:
    assert ctx.cid is not None
    require_any(ctx, Action.COMMUNITY_MANAGE)
    raw = await ctx.runtime.kv.get(_job_key(ctx.cid, job[:32])) if job.isalnum() else None
    if raw is None:
        raise not_found("import")
    state = json.loads(raw)
    summary = ""
    if state.get("result"):
        summary = ctx.t("setup.result").format(**state["result"])
    return await render(ctx, "_import_status.html", job=job, s=state, summary=summary)
