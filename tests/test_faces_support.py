"""Shared pieces of the face tests: photos, embeddings computed once, enrollment steps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from face_engine import FaceEngine
from miniprogram_mock.client import MiniProgram
from tests.face_data import photo_bytes
from tests.stack import Stack

V1 = "/api/v1"


@cache
def engine() -> FaceEngine:
    e = FaceEngine("insightface")
    e.warmup()
    return e


@cache
def embedding(name: str) -> np.ndarray:
    """A gate camera's embedding of a test photo (what the terminal's model computes)."""
    probe = engine().embed_probe(photo_bytes(name))
    assert probe is not None, name
    return probe[0]


async def consent_all(app: MiniProgram, community_id: int, resident_id: int | None = None) -> Any:
    texts = (await app.get(f"{V1}/faces/consent-texts")).json()["items"]
    body: dict[str, Any] = {
        "community_id": community_id,
        "consents": [{"purpose": t["purpose"], "version": t["version"]} for t in texts],
    }
    if resident_id is not None:
        body["resident_id"] = resident_id
    return await app.post(f"{V1}/me/face/consents", json=body)


async def upload(
    app: MiniProgram,
    community_id: int,
    data: bytes,
    *,
    resident_id: int | None = None,
    filename: str = "me.jpg",
    ctype: str = "image/jpeg",
) -> Any:
    form = {"community_id": str(community_id)}
    if resident_id is not None:
        form["resident_id"] = str(resident_id)
    return await app.post(
        f"{V1}/me/face/enrollments", data=form, files={"photo": (filename, data, ctype)}
    )


async def enroll_and_approve(
    stack: Stack, app: MiniProgram, community_id: int, staff_h: dict[str, str], name: str
) -> dict[str, Any]:
    r = await consent_all(app, community_id)
    assert r.status_code == 201, r.text
    r = await upload(app, community_id, photo_bytes(name))
    assert r.status_code == 201, r.text
    r = await stack.client.post(
        f"{V1}/staff/face-enrollments/{r.json()['id']}/approve",
        json={"reason": ""},
        headers=staff_h,
    )
    assert r.status_code == 200, r.text
    return r.json()


async def eventually(check: Callable[[], Any], timeout: float = 8.0) -> Any:  # noqa: ASYNC109
    """Poll an (async) predicate until it is truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
