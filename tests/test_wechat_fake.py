"""The fake WeChat server's wire format, checked with a raw HTTP client (no auth.wechat)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from anxin.clock import clock
from anxin.settings import get_settings
from miniprogram_mock.fake_wechat import run_fake_wechat

RID = r", rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$"


@pytest.fixture(scope="module")
async def base_url() -> AsyncIterator[str]:
    async with run_fake_wechat(port=0) as url:
        yield url


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url) as c:
        await c.post("/__mock__/reset")
        yield c
    clock.reset()


def app() -> dict[str, str]:
    s = get_settings()
    return {"appid": s.wechat_appid, "secret": s.wechat_secret}


async def session_call(http: httpx.AsyncClient, code: str, **over: str) -> httpx.Response:
    params = {**app(), "js_code": code, "grant_type": "authorization_code", **over}
    return await http.get("/sns/jscode2session", params=params)


async def stable(http: httpx.AsyncClient, force: bool = False) -> dict:
    body = {"grant_type": "client_credential", **app(), "force_refresh": force}
    return (await http.post("/cgi-bin/stable_token", json=body)).json()


async def test_jscode2session_wire_format(http: httpx.AsyncClient) -> None:
    code = (await http.post("/__mock__/login", json={})).json()["code"]
    ok = await session_call(http, code)
    # Like WeChat: HTTP 200, text/plain, JSON without errcode on success.
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")
    body = json.loads(ok.content)
    assert set(body) == {"openid", "session_key"}
    assert re.fullmatch(r"o[\w-]{27}", body["openid"])

    used = json.loads((await session_call(http, code)).content)
    assert used["errcode"] == 40163 and re.match(r"^code been used" + RID, used["errmsg"])
    bad = json.loads((await session_call(http, "x")).content)
    assert bad["errcode"] == 40029 and re.match(r"^invalid code" + RID, bad["errmsg"])


@pytest.mark.parametrize(
    ("over", "errcode"),
    [({"appid": "wxnope"}, 40013), ({"secret": "nope"}, 40125), ({"grant_type": "x"}, 40002)],
)
async def test_jscode2session_app_checks(http: httpx.AsyncClient, over: dict, errcode: int) -> None:
    code = (await http.post("/__mock__/login", json={})).json()["code"]
    assert json.loads((await session_call(http, code, **over)).content)["errcode"] == errcode
    # A rejected call does not burn the code.
    assert "openid" in json.loads((await session_call(http, code)).content)


async def test_plain_token_overlap(http: httpx.AsyncClient) -> None:
    params = {"grant_type": "client_credential", **app()}
    first = (await http.get("/cgi-bin/token", params=params)).json()
    assert first["expires_in"] == 7200 and len(first["access_token"]) > 100
    second = (await http.get("/cgi-bin/token", params=params)).json()
    assert second["access_token"] != first["access_token"]

    async def phone(token: str) -> int:
        r = await http.post(
            "/wxa/business/getuserphonenumber", params={"access_token": token}, json={"code": "x"}
        )
        return r.json()["errcode"]

    assert await phone(first["access_token"]) == 40029  # token fine, code not
    clock.advance(301)  # the older token lives 5 minutes after a newer one is issued
    assert await phone(first["access_token"]) == 42001
    assert await phone(second["access_token"]) == 40029
    assert await phone("made-up") == 40001


async def test_stable_token_semantics(http: httpx.AsyncClient) -> None:
    a = await stable(http)
    clock.advance(100)
    b = await stable(http)
    assert b["access_token"] == a["access_token"] and 7099 <= b["expires_in"] <= 7100
    c = await stable(http, force=True)
    assert c["access_token"] != a["access_token"] and c["expires_in"] == 7200
    r = await http.post(
        "/cgi-bin/message/subscribe/send", params={"access_token": a["access_token"]}, json={}
    )
    assert r.json()["errcode"] == 40001  # force_refresh invalidated the old one at once
    clock.advance(7200 - 250)
    d = await stable(http)
    assert d["access_token"] != c["access_token"]  # renewed in the last 5 minutes


async def test_stable_token_bad_body(http: httpx.AsyncClient) -> None:
    r = await http.post("/cgi-bin/stable_token", content=b"{nope")
    assert r.json()["errcode"] == 47001
    r = await http.post("/cgi-bin/stable_token", json={"grant_type": "client_credential"})
    assert r.json()["errcode"] == 41002


async def test_subscribe_send_checks_token_first(http: httpx.AsyncClient) -> None:
    r = await http.post("/cgi-bin/message/subscribe/send", json={})
    assert r.json()["errcode"] == 41001
    token = (await stable(http))["access_token"]
    r = await http.post(
        "/cgi-bin/message/subscribe/send", params={"access_token": token}, json={"touser": "o1"}
    )
    assert r.json()["errcode"] == 40003  # unknown openid


async def test_control_validation(http: httpx.AsyncClient) -> None:
    r = await http.post("/__mock__/faults", json={"endpoint": "/nope", "errcode": 1})
    assert r.status_code == 422
    r = await http.post("/__mock__/encrypted_data", json={"openid": "never-logged-in"})
    assert r.status_code == 409
    subs = await http.post(
        "/__mock__/subscribe", json={"openid": "o1", "template_id": "t", "count": 2}
    )
    assert subs.json()["quota"] == 2
    assert (await http.get("/__mock__/subscriptions", params={"openid": "o1"})).json() == [
        {"openid": "o1", "template_id": "t", "quota": 2, "refused": False}
    ]


async def test_injected_fault_counts_down(http: httpx.AsyncClient) -> None:
    await http.post(
        "/__mock__/faults", json={"endpoint": "/cgi-bin/stable_token", "errcode": 45009, "count": 2}
    )
    assert (await stable(http))["errcode"] == 45009
    assert (await stable(http))["errcode"] == 45009
    assert "access_token" in await stable(http)
    assert (await http.get("/__mock__/stats")).json()["/cgi-bin/stable_token"] == 3
