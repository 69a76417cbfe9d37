"""Domain errors: kinds without status codes; each adapter translates them once.

api/ turns a kind into its HTTP status and the one error body; the device bridge turns an
error a rule raised into an access row (denied, or failed when a service was unreachable)
with the error's code as the reason. Both backends for the bridge part.
"""

from __future__ import annotations

from typing import Any

import pytest

from anxin.errors import (
    KINDS,
    Conflict,
    DomainError,
    NotFound,
    RateLimited,
    UpstreamTimeout,
    not_found,
    too_many,
)
from api.errors import HTTP_STATUS, HttpError, http_status
from device_bridge.service import BRIDGE
from face_engine.errors import FaceEngineError, FaceRejected, ImageTooLarge, ImageUnsupported
from face_engine.imaging import decode_image
from models import AccessEvent
from tests.stack import Stack
from tests.test_event_claims import _card_world, _inbound, _opens, _signed_swipe


def test_every_kind_has_one_http_status_and_no_status_of_its_own() -> None:
    assert set(KINDS) == set(HTTP_STATUS)
    assert len({k.kind for k in KINDS}) == len(KINDS)
    for kind in KINDS:
        err = kind("some_code", "中文", "english")
        assert not hasattr(err, "status")
        assert 400 <= http_status(err) < 600
    assert http_status(not_found("device")) == 404
    assert http_status(Conflict("pass_revoked", "通行证已作废", "revoked")) == 409
    assert http_status(HttpError("method_not_allowed", "x", "y", 405)) == 405


def test_rate_limited_keeps_retry_after_in_details() -> None:
    err = too_many(retry_after=7)
    assert isinstance(err, RateLimited) and err.retry_after == 7
    assert err.body("en")["error"]["details"] == {"retry_after": 7}
    assert err.body("en")["error"]["message"] == err.en != err.zh


def test_face_engine_errors_are_its_own_and_still_translate() -> None:
    with pytest.raises(FaceEngineError) as err:
        decode_image(b"GIF89a" + bytes(64))
    assert isinstance(err.value, ImageUnsupported) and http_status(err.value) == 415
    with pytest.raises(ImageTooLarge) as big:
        decode_image(b"\xff\xd8\xff" + bytes(100), max_bytes=10)
    assert http_status(big.value) == 413
    assert http_status(FaceRejected("face_no_face", "未检测到人脸", "no face")) == 422


def test_face_engine_imports_no_adapter() -> None:
    import subprocess
    import sys

    code = (
        "import sys, face_engine, face_engine.errors, face_engine.imaging;"
        "bad=[m for m in sys.modules if m.split('.')[0] in "
        "('api','device_bridge','fastapi','domain','console')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("error", "result"),
    [
        (Conflict("pass_revoked", "通行证已作废", "the pass was revoked"), "denied"),
        (NotFound("not_found", "未找到该记录", "card not found"), "denied"),
        (
            UpstreamTimeout("face_service_timeout", "人脸服务超时", "face service timed out"),
            "failed",
        ),
    ],
)
async def test_an_error_a_rule_raises_at_the_door_is_written_with_its_code(
    stack: Stack, error: DomainError, result: str
) -> None:
    gate, card_no = await _card_world(stack)
    bridge = stack.runtime.get(BRIDGE)
    original = bridge.handlers["card_swipe"]

    async def refusing(ctx: Any) -> None:
        raise error

    bridge.handlers["card_swipe"] = refusing
    try:
        event = _signed_swipe(gate, card_no)
        assert await bridge.handle_event(_inbound(event)) == result
    finally:
        bridge.handlers["card_swipe"] = original
    assert await bridge.handle_event(_inbound(event)) == "duplicate"
    rows = await AccessEvent.filter(device_id=gate["id"])
    assert [(r.reason, r.result.value) for r in rows] == [(error.code, result)]
    assert await _opens(gate["id"]) == 0
