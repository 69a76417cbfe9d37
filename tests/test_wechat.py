"""auth.wechat driven over real HTTP against the fake WeChat server on loopback."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from anxin.clock import clock
from anxin.errors import DomainError
from api.errors import http_status
from auth import wechat
from auth.wechat import PhoneInfo, SendOutcome, WeChatClient
from miniprogram_mock.fake_wechat import (
    JSCODE2SESSION,
    PHONE,
    STABLE_TOKEN,
    SUBSCRIBE_SEND,
    run_fake_wechat,
)
from miniprogram_mock.wechat_control import FakeWeChatControl
from miniprogram_mock.wechat_state import DEFAULT_TEMPLATES

PARCEL = list(DEFAULT_TEMPLATES)[2]  # keys: thing1, character_string2, time3
PARCEL_DATA = {"thing1": "顺丰快递", "character_string2": "A-1024", "time3": "2024-05-01 18:30"}
OPENID = "oAnxinTestUser00000000000001"


@pytest.fixture(scope="module")
async def base_url() -> AsyncIterator[str]:
    async with run_fake_wechat(port=0) as url:
        yield url


@pytest.fixture
async def ctl(base_url: str) -> AsyncIterator[FakeWeChatControl]:
    control = FakeWeChatControl(base_url)
    await control.reset()
    yield control
    clock.reset()  # tests move time; never leak it
    await control.aclose()


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[WeChatClient]:
    c = WeChatClient(base_url)
    yield c
    await c.aclose()


async def login(
    ctl: FakeWeChatControl, client: WeChatClient, openid: str = OPENID
) -> wechat.Session:
    code = (await ctl.login(openid))["code"]
    return await client.code2session(code)


async def expect_app_error(coro: Any, code: str, status: int) -> DomainError:
    with pytest.raises(DomainError) as info:
        await coro
    assert info.value.code == code
    assert http_status(info.value) == status
    assert info.value.zh and info.value.en and info.value.zh != info.value.en
    return info.value


# -- login -------------------------------------------------------------------------------
async def test_login_ok(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    session = await login(ctl, client)
    assert session.openid == OPENID
    assert len(base64.b64decode(session.session_key)) == 16
    assert session.unionid is None
    assert session.session_key not in repr(session)  # never ends up in logs

    code = (await ctl.login(openid="oOther", unionid="uAnxinUnion1"))["code"]
    assert (await client.code2session(code)).unionid == "uAnxinUnion1"


async def test_login_invalid_code(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    err = await expect_app_error(client.code2session("nope"), "wechat_code_invalid", 401)
    assert err.details == {"errcode": 40029}


async def test_login_reused_code(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    code = (await ctl.login(OPENID))["code"]
    await client.code2session(code)
    await expect_app_error(client.code2session(code), "wechat_code_used", 401)


async def test_login_expired_code(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    code = (await ctl.login(OPENID))["code"]
    clock.advance(301)  # js_code lives 5 minutes
    await expect_app_error(client.code2session(code), "wechat_code_invalid", 401)


async def test_login_just_before_expiry_works(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    code = (await ctl.login(OPENID))["code"]
    clock.advance(290)
    assert (await client.code2session(code)).openid == OPENID


async def test_login_wrong_secret_is_server_side(base_url: str, ctl: FakeWeChatControl) -> None:
    bad = WeChatClient(base_url, secret="not-the-secret")
    try:
        code = (await ctl.login(OPENID))["code"]
        err = await expect_app_error(bad.code2session(code), "wechat_misconfigured", 502)
        assert err.details == {"errcode": 40125}
    finally:
        await bad.aclose()


async def test_login_rate_limited(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    await ctl.fault(JSCODE2SESSION, errcode=45011)
    code = (await ctl.login(OPENID))["code"]
    err = await expect_app_error(client.code2session(code), "wechat_rate_limited", 503)
    assert err.details["retry_after"] == 60
    # The fault was one call only; the code was not consumed by the refused call.
    assert (await client.code2session(code)).openid == OPENID


@pytest.mark.parametrize(
    ("fault", "status"),
    [({"errcode": -1}, 502), ({"http_status": 502}, 502), ({"http_status": 503}, 502)],
)
async def test_login_upstream_trouble(
    ctl: FakeWeChatControl, client: WeChatClient, fault: dict[str, int], status: int
) -> None:
    await ctl.fault(JSCODE2SESSION, **fault)
    await expect_app_error(client.code2session("any"), "wechat_unavailable", status)


async def test_login_timeout(base_url: str, ctl: FakeWeChatControl) -> None:
    impatient = WeChatClient(base_url, timeout=0.2)
    try:
        await ctl.fault(JSCODE2SESSION, errcode=-1, delay_s=1.0)
        await expect_app_error(impatient.code2session("x"), "wechat_unavailable", 503)
    finally:
        await impatient.aclose()


async def test_login_unreachable() -> None:
    dead = WeChatClient("http://127.0.0.1:9", timeout=1.0)  # discard port: nothing listens
    try:
        await expect_app_error(dead.code2session("x"), "wechat_unavailable", 503)
    finally:
        await dead.aclose()


# -- access token -------------------------------------------------------------------------
async def test_token_cached_then_renewed_near_expiry(
    ctl: FakeWeChatControl, client: WeChatClient
) -> None:
    first = await client.access_token()
    assert await client.access_token() == first
    assert (await ctl.stats())[STABLE_TOKEN] == 1
    clock.advance(7200 - 200)  # inside the last 5 minutes: both sides renew
    second = await client.access_token()
    assert second != first
    assert (await ctl.stats())[STABLE_TOKEN] == 2


async def test_token_expiry_mid_send_refreshes_and_retries(
    ctl: FakeWeChatControl, client: WeChatClient
) -> None:
    await login(ctl, client)
    await ctl.subscribe(OPENID, PARCEL, count=2)
    assert (await client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)).ok
    await ctl.expire_tokens()  # WeChat says 42001 while our cache thinks it is fine
    result = await client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)
    assert result.ok and result.msgid
    stats = await ctl.stats()
    assert stats[STABLE_TOKEN] == 2
    assert stats[SUBSCRIBE_SEND] == 3  # ok, 42001, retried ok
    assert len(await ctl.messages(OPENID)) == 2


async def test_concurrent_callers_refresh_once(
    ctl: FakeWeChatControl, client: WeChatClient
) -> None:
    await login(ctl, client)
    await ctl.subscribe(OPENID, PARCEL, count=11)
    assert (await client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)).ok
    await ctl.expire_tokens()
    results = await asyncio.gather(
        *(client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA) for _ in range(10))
    )
    assert all(r.ok for r in results)
    assert (await ctl.stats())[STABLE_TOKEN] == 2


async def test_token_still_refused_forces_refresh(
    ctl: FakeWeChatControl, client: WeChatClient
) -> None:
    await login(ctl, client)
    await ctl.subscribe(OPENID, PARCEL)
    await client.access_token()
    # 40001 although stable_token would hand back the same token: only then force_refresh.
    await ctl.fault(SUBSCRIBE_SEND, errcode=40001)
    assert (await client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)).ok
    assert (await ctl.stats())[STABLE_TOKEN] == 3  # first, normal (same token), forced


async def test_token_retry_only_once(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    await login(ctl, client)
    await ctl.fault(SUBSCRIBE_SEND, errcode=42001, count=5)
    result = await client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)
    assert result.outcome is SendOutcome.UNAVAILABLE and result.errcode == 42001
    assert result.retryable
    assert (await ctl.stats())[SUBSCRIBE_SEND] == 2


class DictStore:
    """Stands in for redis.asyncio.Redis (get/set with ex)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.ttl: dict[str, int | None] = {}

    async def get(self, name: str) -> str | None:
        return self.data.get(name)

    async def set(self, name: str, value: str, ex: int | None = None) -> bool:
        self.data[name], self.ttl[name] = value, ex
        return True


async def test_token_shared_through_redis(base_url: str, ctl: FakeWeChatControl) -> None:
    store = DictStore()
    a = WeChatClient(base_url, redis=store, redis_prefix="t:")
    b = WeChatClient(base_url, redis=store, redis_prefix="t:")
    try:
        token = await a.access_token()
        key = f"t:wechat:access_token:{a.appid}"
        assert key in store.data and 7000 < (store.ttl[key] or 0) <= 7200
        assert await b.access_token() == token
        assert (await ctl.stats())[STABLE_TOKEN] == 1
    finally:
        await a.aclose()
        await b.aclose()


# -- phone number ------------------------------------------------------------------------
async def test_phone_number_flow(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    code = await ctl.phone_code("13912345678")
    info = await client.get_phone_number(code)
    assert info == PhoneInfo(
        "13912345678", "13912345678", "86", client.appid, info.watermark_timestamp
    )
    assert abs(info.watermark_timestamp - clock.time()) < 5
    await expect_app_error(client.get_phone_number(code), "wechat_phone_code_invalid", 400)


async def test_phone_number_foreign_and_token_refresh(
    ctl: FakeWeChatControl, client: WeChatClient
) -> None:
    await client.access_token()
    await ctl.expire_tokens()
    info = await client.get_phone_number(await ctl.phone_code("91234567", "852"))
    assert (info.phone_number, info.pure_phone_number, info.country_code) == (
        "+85291234567",
        "91234567",
        "852",
    )
    assert (await ctl.stats())[PHONE] == 2


async def test_phone_code_expired(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    code = await ctl.phone_code("13912345678")
    clock.advance(301)
    await expect_app_error(client.get_phone_number(code), "wechat_phone_code_invalid", 400)


# -- subscribe messages --------------------------------------------------------------------
async def test_send_ok_delivers_exact_payload(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    await login(ctl, client)
    await ctl.subscribe(OPENID, PARCEL)
    result = await client.send_subscribe_message(
        OPENID, PARCEL, PARCEL_DATA, "pages/parcel/index?id=7", miniprogram_state="developer"
    )
    assert result.outcome is SendOutcome.OK and isinstance(result.msgid, int)
    [msg] = await ctl.messages(OPENID)
    assert msg["msgid"] == result.msgid
    assert msg["page"] == "pages/parcel/index?id=7"
    assert msg["data"] == {k: {"value": v} for k, v in PARCEL_DATA.items()}
    assert msg["miniprogram_state"] == "developer"


async def test_send_refused_or_no_quota(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    await login(ctl, client)
    no_quota = await client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)
    assert no_quota.outcome is SendOutcome.REFUSED_OR_NO_QUOTA and no_quota.errcode == 43101
    await ctl.subscribe(OPENID, PARCEL, count=1)
    assert (await client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)).ok
    used_up = await client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)
    assert used_up.outcome is SendOutcome.REFUSED_OR_NO_QUOTA  # one tap, one message
    await ctl.subscribe(OPENID, PARCEL, count=3)
    await ctl.subscribe(OPENID, PARCEL, action="reject")
    refused = await client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)
    assert refused.outcome is SendOutcome.REFUSED_OR_NO_QUOTA and not refused.retryable


@pytest.mark.parametrize(("errcode", "retry_after"), [(45011, 60), (45009, 3600)])
async def test_send_rate_limited(
    ctl: FakeWeChatControl, client: WeChatClient, errcode: int, retry_after: int
) -> None:
    await login(ctl, client)
    await ctl.subscribe(OPENID, PARCEL)
    await ctl.fault(SUBSCRIBE_SEND, errcode=errcode)
    result = await client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)
    assert result.outcome is SendOutcome.RATE_LIMITED
    assert (result.errcode, result.retry_after_s, result.retryable) == (errcode, retry_after, True)
    assert (await client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)).ok


async def test_send_minute_quota(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    await login(ctl, client)
    await ctl.subscribe(OPENID, PARCEL, count=5)
    await ctl.limit(SUBSCRIBE_SEND, per_minute=2)
    outcomes = [
        (await client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)).outcome for _ in range(3)
    ]
    assert outcomes == [SendOutcome.OK, SendOutcome.OK, SendOutcome.RATE_LIMITED]
    clock.advance(61)
    assert (await client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)).ok


async def test_send_invalid_template(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    await login(ctl, client)
    result = await client.send_subscribe_message(OPENID, "no-such-template", PARCEL_DATA)
    assert result.outcome is SendOutcome.INVALID and result.errcode == 40037


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("thing1", "一" * 20, True),
        ("thing1", "一" * 21, False),  # thing.DATA: at most 20 characters
        ("thing1", "", False),
        ("character_string2", "A" * 33, False),
        ("time3", "tomorrow", False),
    ],
)
async def test_send_data_rules(
    ctl: FakeWeChatControl, client: WeChatClient, key: str, value: str, ok: bool
) -> None:
    await login(ctl, client)
    await ctl.subscribe(OPENID, PARCEL)
    result = await client.send_subscribe_message(OPENID, PARCEL, {**PARCEL_DATA, key: value})
    if ok:
        assert result.ok
    else:
        assert result.outcome is SendOutcome.INVALID and result.errcode == 47003
        assert f"data.{key}.value" in result.errmsg
        assert not result.retryable


async def test_send_upstream_down_is_retryable(
    ctl: FakeWeChatControl, client: WeChatClient
) -> None:
    await login(ctl, client)
    await ctl.fault(SUBSCRIBE_SEND, http_status=502)
    result = await client.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)
    assert result.outcome is SendOutcome.UNAVAILABLE and result.retryable


# -- legacy encryptedData (wechatpy's WeChatWxaCrypto) ---------------------------------------
async def test_decrypt_encrypted_phone(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    session = await login(ctl, client)
    sealed = await ctl.encrypted_data(OPENID, phone_number="13700001111")
    info = client.decrypt_phone_number(session, sealed["encryptedData"], sealed["iv"])
    assert (info.pure_phone_number, info.watermark_appid) == ("13700001111", client.appid)


async def test_decrypt_user_info_payload(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    session = await login(ctl, client)
    sealed = await ctl.encrypted_data(OPENID, data={"nickName": "张三", "openId": OPENID})
    data = client.decrypt(session, sealed["encryptedData"], sealed["iv"])
    assert data["nickName"] == "张三" and data["watermark"]["appid"] == client.appid


async def test_decrypt_rejects_other_appid(ctl: FakeWeChatControl, client: WeChatClient) -> None:
    session = await login(ctl, client)
    sealed = await ctl.encrypted_data(OPENID, appid="wxSomeoneElse00000")
    with pytest.raises(DomainError) as info:
        client.decrypt_phone_number(session, sealed["encryptedData"], sealed["iv"])
    assert info.value.code == "wechat_decrypt_failed"
    assert info.value.details == {"reason": "InvalidAppIdException"}


async def test_decrypt_with_stale_session_key_fails(
    ctl: FakeWeChatControl, client: WeChatClient
) -> None:
    old = await login(ctl, client)
    await login(ctl, client)  # a new login rotates session_key
    sealed = await ctl.encrypted_data(OPENID)
    with pytest.raises(DomainError) as info:
        client.decrypt_phone_number(old, sealed["encryptedData"], sealed["iv"])
    assert info.value.code == "wechat_decrypt_failed"


_IV = base64.b64encode(bytes(16)).decode()


@pytest.mark.parametrize(
    ("data", "iv"),
    [
        ("sealed", "AA=="),  # iv of the wrong size
        ("not base64!!", _IV),
        (base64.b64encode(b"x" * 15).decode(), _IV),  # not a whole AES block
        (base64.b64encode(bytes(range(32))).decode(), _IV),  # decrypts to noise
        ("sealed", _IV),  # right data, wrong iv: first block garbled
    ],
)
async def test_decrypt_garbage(
    ctl: FakeWeChatControl, client: WeChatClient, data: str, iv: str
) -> None:
    session = await login(ctl, client)
    sealed = await ctl.encrypted_data(OPENID)
    with pytest.raises(DomainError) as info:
        client.decrypt_phone_number(
            session, sealed["encryptedData"] if data == "sealed" else data, iv
        )
    assert info.value.code == "wechat_decrypt_failed" and http_status(info.value) == 400


# -- module-level API ------------------------------------------------------------------------
async def test_module_functions_use_the_shared_client(
    ctl: FakeWeChatControl, client: WeChatClient
) -> None:
    wechat.set_client(client)
    try:
        code = (await ctl.login(OPENID))["code"]
        assert (await wechat.code2session(code)).openid == OPENID
        await ctl.subscribe(OPENID, PARCEL)
        assert (await wechat.send_subscribe_message(OPENID, PARCEL, PARCEL_DATA)).ok
        info = await wechat.get_phone_number(await ctl.phone_code("13800000000"))
        assert info.pure_phone_number == "13800000000"
    finally:
        wechat.set_client(None)


async def test_client_only_talks_to_base_url(ctl: FakeWeChatControl, base_url: str) -> None:
    c = WeChatClient(base_url)
    try:
        await c.code2session((await ctl.login(OPENID))["code"])
        await c.access_token()
    finally:
        await c.aclose()
    assert await ctl.stats() == {JSCODE2SESSION: 1, STABLE_TOKEN: 1}
