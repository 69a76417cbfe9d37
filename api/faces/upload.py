"""Multipart uploads read with a cap: refused by Content-Length before a byte is read, and
cut off while streaming when a client lies about (or omits) the length."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from anxin.errors import BadRequest, Invalid, TooLarge, Unsupported

FORM_OVERHEAD = 64 * 1024  # boundaries, part headers and small fields


def too_large(limit: int) -> TooLarge:
    return TooLarge(
        "upload_too_large",
        f"上传内容过大，请不超过 {limit // 1024} KB",
        f"the upload is too large (limit {limit} bytes)",
        {"limit": limit},
    )


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[bytes]] = field(default_factory=dict)

    def file(self, name: str) -> bytes:
        got = self.files.get(name)
        if not got:
            raise Invalid("image_missing", "请上传照片", f"the file field '{name}' is missing")
        return got[0]

    def int_field(self, name: str, default: int | None = None) -> int | None:
        raw = self.fields.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isdigit() or len(raw) > 10 or int(raw) > 2**31 - 1:
            raise Invalid("invalid_field", "参数格式错误", f"'{name}' must be an id")
        return int(raw)


async def read_form(request: Request, limit: int, max_files: int = 1) -> Form:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise Unsupported(
            "multipart_required", "请以表单方式上传照片", "send the photo as multipart/form-data"
        )
    cap = limit + FORM_OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > cap):
        raise too_large(limit)

    async def capped() -> AsyncGenerator[bytes, None]:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > cap:
                raise too_large(limit)
            yield chunk

    parser = MultiPartParser(
        request.headers, capped(), max_files=max_files, max_fields=8, max_part_size=64 * 1024
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest("multipart_invalid", "上传内容格式错误", f"bad upload: {exc}") from None
    out = Form()
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read()
            await value.close()
            if len(data) > limit:
                raise too_large(limit)
            out.files.setdefault(key, []).append(data)
        else:
            out.fields[key] = value
    return out
