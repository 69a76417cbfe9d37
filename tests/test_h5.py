"""The resident H5 as served: the page, its modules, and the WeChat stand-in routes
(wx.login and the phone button against the fake WeChat). The screens themselves are
walked in tests/browser/test_resident_h5.py."""

from __future__ import annotations

import re

from miniprogram_mock.h5_app import ROOT, enabled
from tests.stack import Stack


async def test_the_page_and_its_modules_are_served_with_a_strict_policy(stack: Stack) -> None:
    r = await stack.client.get("/h5/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self' ws://anxin.test" in csp
    assert "unsafe-inline" not in csp and "http" not in csp.replace("ws://", "")
    assert r.headers["cache-control"] == "no-store"
    assert '<script type="module" src="/h5/static/app.js">' in r.text
    r = await stack.client.get("/h5/static/app.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert (await stack.client.get("/h5", follow_redirects=False)).status_code == 308


def test_every_module_import_resolves_and_nothing_comes_from_outside() -> None:
    static = ROOT / "static"
    files = list(static.rglob("*.js")) + list(static.rglob("*.css")) + [ROOT / "index.html"]
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://", text), f"{path.name} names an outside address"
        for target in re.findall(r'from "(\.[^"]+)"', text):
            assert (path.parent / target).resolve().is_file(), f"{path.name}: {target}"


async def test_wx_login_gives_a_code_the_api_takes_and_keeps_the_wechat_user(
    stack: Stack,
) -> None:
    r = await stack.client.post("/h5/wx/login", json={})
    assert r.status_code == 200, r.text
    first = r.json()
    r = await stack.client.post("/api/v1/auth/wechat/login", json={"js_code": first["code"]})
    assert r.status_code == 200, r.text
    me = await stack.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    )
    # The same WeChat user again (the page keeps its handle): the same resident.
    again = (await stack.client.post("/h5/wx/login", json={"user": first["user"]})).json()
    assert again["user"] == first["user"] and again["code"] != first["code"]
    r = await stack.client.post("/api/v1/auth/wechat/login", json={"js_code": again["code"]})
    me2 = await stack.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert me.json()["id"] == me2.json()["id"]
    # The phone button: a one-time code the API exchanges for the number.
    code = await stack.client.post("/h5/wx/phone_code", json={"phone_number": "13700001111"})
    assert code.status_code == 200 and code.json()["code"]
    r = await stack.client.post(
        "/api/v1/me/phone",
        json={"code": code.json()["code"]},
        headers={"Authorization": f"Bearer {r.json()['access_token']}"},
    )
    assert r.status_code == 200 and r.json()["phone"] == "13700001111", r.text


async def test_the_wechat_stand_in_refuses_bad_input(stack: Stack) -> None:
    for body in ({"user": "a b"}, {"user": "x" * 161}, {"user": 5}):
        assert (await stack.client.post("/h5/wx/login", json=body)).status_code == 422


async def test_a_page_comes_back_only_as_a_wechat_user_it_was_given(stack: Stack) -> None:
    """Another resident's openid, or a handle with a forged or altered MAC, is refused: the
    stand-in never lets a page log in as someone else."""
    given = (await stack.client.post("/h5/wx/login", json={})).json()["user"]
    openid, mac = given.rsplit(".", 1)
    forged = [openid, f"{openid}.{'0' * 32}", f"{openid}x.{mac}", f"other.{mac}"]
    for user in forged:
        r = await stack.client.post("/h5/wx/login", json={"user": user})
        assert r.status_code == 422, (user, r.text)
        body = {"user": user, "template_id": "AnxinVisitorArrivedTmpl0000000000000000001"}
        r = await stack.client.post("/h5/wx/subscribe", json={**body, "accept": True})
        assert r.status_code == 422, (user, r.text)
    for phone in ("", "1380013800x", "1" * 21):
        r = await stack.client.post("/h5/wx/phone_code", json={"phone_number": phone})
        assert r.status_code == 422


def test_only_beside_the_fake_wechat(stack: Stack) -> None:
    settings = stack.settings
    assert enabled(settings)
    assert not enabled(settings.model_copy(update={"env": "production"}))
    real = settings.model_copy(update={"wechat_base_url": "https://api.weixin.qq.com"})
    assert not enabled(real)


def test_every_text_the_page_asks_for_exists_in_both_languages() -> None:
    """A key missing from static/i18n.js would show the key itself on the screen."""
    static = ROOT / "static"
    table = (static / "i18n.js").read_text(encoding="utf-8")
    rows = re.findall(r'^\s+"?([\w.]+)"?: \[\s*"([^"]*)",\s*"([^"]*)"', table, flags=re.M)
    defined = {key: (zh, en) for key, zh, en in rows}
    assert len(defined) == len(rows), "a text defined twice"
    assert len(defined) > 150 and all(zh and en for zh, en in defined.values())
    used: set[str] = set()
    for path in static.rglob("*.js"):
        used |= set(re.findall(r'\bt\("([\w.]+)"', path.read_text(encoding="utf-8")))
    assert used and not used - set(defined), sorted(used - set(defined))
    # Keys put together at run time: every value the API can send has its text.
    for prefix, values in {
        "role.": ("owner", "family", "tenant"),
        "ms.": ("pending", "approved", "rejected", "ended", "suspended"),
        "face.state.": ("pending", "approved", "rejected", "removed"),
        "pass.kind.": ("visitor", "delivery"),
        "pass.state.": ("active", "revoked", "exhausted", "expired"),
        "cam.": ("turn_left", "turn_right", "nod", "look_up"),
    }.items():
        assert all(prefix + v in defined for v in values), prefix
