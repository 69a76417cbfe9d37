"""The resident app (H5, /h5/) in a real browser at phone width, the whole story through
the pages: log in and join a flat; staff approve the home in the console; consent, a
refused photo with its guidance, the camera path (a person following the liveness
prompts), a photo file; staff approve the face; a simulated gate recognises the resident;
the notification arrives live; a remote open, and a door that does not answer; a visitor
pass whose QR (decoded from the page's image) a simulated gate accepts, a delivery pass
revoked; both entries in the console's access log; an intercom call answered in the page;
household, phone, WeChat subscriptions, data export, log out and in, account deletion;
every screen in Chinese and English passes axe-core, fits 375 px and is saved as a
screenshot. One test, one server, one browser; the embedded default only (the backends
are covered by the API tests)."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageEnhance

import notifications
from domain.faces.service import CHALLENGE_ACTIONS
from miniprogram_mock.wechat_control import FakeWeChatControl
from models import (
    AccessEvent,
    AccessMethod,
    EnrollmentMethod,
    EnrollmentState,
    FaceEnrollment,
    IntercomCallRecord,
    Membership,
    MembershipState,
    NotificationPreference,
    Resident,
    StaffRoleName,
    VisitorPass,
)
from tests.browser.support import assert_accessible, assert_fits, shot, sign_in
from tests.devices import register_device, simulator
from tests.face_data import photo
from tests.helpers import make_staff, make_world, staff_headers
from tests.stack import Stack
from tests.test_faces_support import embedding, engine, eventually

pytestmark = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
VISITOR_TEMPLATE = json.loads(
    (Path(notifications.__file__).parent / "wechat_templates.json").read_text(encoding="utf-8")
)["visitor_arrived"]["template_id"]

PHONE = {"width": 375, "height": 812}


async def on(page: Any, route: str) -> None:
    """Open a screen of the app (afresh when it is the one shown) and wait until drawn."""
    if await page.evaluate("location.hash") == f"#{route}":
        await page.reload()
    else:
        await page.goto(f"/h5/#{route}")
    await page.wait_for_selector(f"main[data-screen='{route}']:not([aria-busy])")


async def screen(page: Any, name: str, lang: str, backend: str) -> None:
    await page.evaluate("document.getElementById('toast').replaceChildren()")
    await assert_accessible(page, f"h5 {name} ({lang})")
    await assert_fits(page, f"h5 {name} ({lang})")
    # The whole screen on one image: a window as tall as the page, so the tab bar (sticky
    # at the bottom of the window) sits after the content instead of over it.
    height = await page.evaluate("document.documentElement.scrollHeight")
    await page.set_viewport_size({"width": PHONE["width"], "height": max(PHONE["height"], height)})
    await shot(page, f"h5-{name}", lang, backend)
    await page.set_viewport_size(PHONE)


def decode_qr(png: bytes) -> str:
    """What a gate's camera reads from the code (OpenCV's two detectors: each misses
    about one dense code in twenty that the other reads)."""
    import cv2

    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    for detector in (cv2.QRCodeDetectorAruco(), cv2.QRCodeDetector()):
        text = detector.detectAndDecode(img)[0]
        if text:
            return str(text)
    raise AssertionError("the pass QR in the page did not decode")


# Installed in the page: getUserMedia answers with a canvas stream drawing the frontal
# portrait, or the portrait acting out the move the page asks for now (.prompt's
# data-action): what a person following the prompts shows the camera.
FAKE_CAMERA = """async (frames) => {
  const images = {};
  for (const [move, url] of Object.entries(frames)) {
    const img = new Image();
    img.src = url;
    await img.decode();
    images[move] = img;
  }
  navigator.mediaDevices.getUserMedia = async () => {
    const canvas = document.createElement("canvas");
    canvas.width = images.front.naturalWidth;
    canvas.height = images.front.naturalHeight;
    const g = canvas.getContext("2d");
    const draw = () => {
      const asked = document.querySelector(".prompt")?.dataset.action;
      g.drawImage(images[asked] || images.front, 0, 0);
    };
    draw();
    setInterval(draw, 40);
    // The person moves when asked, not at the next tick: on a busy machine the ticks lag.
    new MutationObserver(draw).observe(document.body, {
      subtree: true, attributes: true, attributeFilter: ["data-action"],
    });
    return canvas.captureStream(25);
  };
}"""


def person_moves(name: str) -> dict[str, str]:
    """The portrait facing the camera and acting out each liveness move, as data URLs."""
    from face_engine.imaging import encode_jpeg
    from tests.face_data import act, photo_bytes

    img = engine().decode(photo_bytes(name))
    face = engine().detect(img)[0]
    shots = {"front": img, **{a: act(img, face, a) for a in CHALLENGE_ACTIONS}}
    return {
        move: "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(pic)).decode()
        for move, pic in shots.items()
    }


async def follow_the_camera(page: Any) -> None:
    """Start the camera check and follow its prompts until the page says how it went.

    The page takes ~10 s of prompts, then the server judges 21 frames: generous time on a
    busy 2-core machine. A liveness refusal is retried once, as a person would: the frames
    come through Chromium's real capture pipeline, whose timing the test does not own. Any
    other refusal, or a second one, fails with what the page said."""
    said = ""
    for _ in range(2):
        await page.click("[data-camera=start]")
        await page.wait_for_selector("video.preview")
        result = page.locator("#face-result[data-tone='ok'], #face-result[data-tone='error']")
        await result.wait_for(timeout=120_000)
        if await result.get_attribute("data-tone") == "ok":
            assert "已提交，等待物业审核" in await result.inner_text()
            return
        code = await result.get_attribute("data-code") or ""
        said += f"{code}: {await result.inner_text()}\n"
        if not code.startswith("liveness_"):
            break
        await page.wait_for_selector("[data-camera=start]:not([disabled])")
    raise AssertionError(f"the camera check was refused:\n{said}")


def dark_copy(name: str) -> bytes:
    out = io.BytesIO()
    ImageEnhance.Brightness(Image.open(photo(name)).convert("RGB")).enhance(0.08).save(out, "JPEG")
    return out.getvalue()


async def test_resident_story_through_the_pages(
    stack: Stack, open_page: Any, tmp_path: Any
) -> None:
    be = stack.backend
    world = await make_world()
    cid, room = world.community.id, world.rooms[0]  # 1栋 1单元 101
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    gate = await register_device(
        stack, cid, admin_h, kind="face_gate", name="南门闸机", methods=["face", "qr", "remote"]
    )
    panel = await register_device(
        stack, cid, admin_h, kind="intercom_panel", name="南门对讲", methods=["intercom"]
    )
    # A unit door whose terminal is unplugged: the open button gets no answer.
    unit_door = await register_device(
        stack,
        cid,
        admin_h,
        kind="unit_door",
        name="1栋1单元门",
        methods=["remote"],
        building_id=world.buildings[0].id,
        unit_id=world.units[0].id,
    )
    desk = await make_staff(world.community, StaffRoleName.APPROVER, StaffRoleName.GUARD)

    async with simulator(stack, gate) as sim, simulator(stack, panel) as intercom:
        page = await open_page(width=PHONE["width"], height=PHONE["height"], http_errors=True)

        # Log in: wx.login on the fake WeChat, then the API's login; Chinese by default.
        await page.goto("/h5/")
        await page.wait_for_selector("main[data-screen='/login']")
        assert await page.inner_text("h1") == "欢迎使用安心"
        await screen(page, "login", "zh", be)
        await page.click("#lang-switch")
        await page.wait_for_selector("h1:has-text('Welcome to Anxin')")
        await screen(page, "login", "en", be)
        await page.click("#lang-switch")
        await page.click("#login")
        await page.wait_for_selector("main[data-screen='/']:not([aria-busy])")
        resident = await Resident.filter().order_by("-id").first()
        assert resident is not None and resident.openid

        # Find and join the flat.
        await on(page, "/join")
        await page.select_option("select[name=community]", str(cid))
        await page.fill("input[name=building]", "1栋")
        await page.fill("input[name=unit]", "1单元")
        await page.click("text=查找房间")
        await page.check(f"input[name=room][value='{room.id}']")
        await page.select_option("select[name=role]", "owner")
        await screen(page, "join", "zh", be)
        await page.click("form button[type=submit]")
        await page.wait_for_selector("text=申请已提交，等待物业审核")
        await page.wait_for_selector("main[data-screen='/'] [data-membership] >> text=审核中")
        membership = await Membership.get(resident_id=resident.id, room_id=room.id)
        assert membership.state == MembershipState.PENDING

        # Face enrollment waits for the home; staff approve the home in the console.
        await on(page, "/face")
        await page.wait_for_selector("text=房屋审核通过后即可录入人脸。")
        console = await open_page()
        await sign_in(console, desk.username)
        await console.goto(f"/console/c/{cid}/approvals")
        item = console.locator(f"[data-membership='{membership.id}']")
        await item.locator("button[value=approve]").click()
        await item.locator("text=已批准").wait_for()

        # Consent, then a refused photo (with its guidance), then a good one.
        await on(page, "/face")
        await screen(page, "face-consent", "zh", be)
        await page.click("#lang-switch")
        await page.wait_for_selector("h2:has-text('Consent')")
        await screen(page, "face-consent", "en", be)
        await page.click("#lang-switch")
        await page.wait_for_selector("h2:has-text('授权同意')")
        for box in await page.locator("input[name=purpose]").all():
            await box.check()
        await page.click("text=同意并继续")
        await page.wait_for_selector("input[data-photo]")
        dark = tmp_path / "dark.jpg"
        dark.write_bytes(dark_copy("person_b_1"))
        await page.set_input_files("input[data-photo]", str(dark))
        refused = page.locator("#face-result[data-tone='error']")
        await refused.wait_for()
        assert (await refused.get_attribute("data-code") or "").startswith("face_")
        assert await refused.locator(".tip").count() == 1, await refused.inner_text()
        await screen(page, "face-refused", "zh", be)
        await page.click("#lang-switch")
        await page.wait_for_selector("h1:has-text('Face enrollment')")
        await page.set_input_files("input[data-photo]", str(dark))
        await page.wait_for_selector("#face-result[data-tone='error'] >> text=Photo refused")
        await screen(page, "face-refused", "en", be)
        await page.click("#lang-switch")
        await page.wait_for_selector("h1:has-text('人脸录入')")
        # The camera path: a person in front of the camera who follows the prompts (the
        # page's camera replaced by a canvas showing the portrait with the move asked
        # now), checked by the server's active liveness.
        await page.evaluate(FAKE_CAMERA, person_moves("person_b_1"))
        await follow_the_camera(page)
        live = await FaceEnrollment.get(resident_id=resident.id)
        assert live.method == EnrollmentMethod.LIVENESS and live.state == EnrollmentState.PENDING
        await page.wait_for_selector(f"[data-enrollment='{live.id}'][data-state='pending']")
        await page.set_input_files("input[data-photo]", str(photo("person_b_1")))
        await page.wait_for_selector("#face-result >> text=已提交，等待物业审核")
        enrollment = await eventually(lambda: _photo_enrollment(resident.id))
        await page.wait_for_selector(f"[data-enrollment='{enrollment.id}'][data-state='pending']")
        await screen(page, "face", "zh", be)

        # Staff approve the enrollment in the console.
        await console.goto(f"/console/c/{cid}/approvals")
        face = console.locator(f"[data-enrollment='{enrollment.id}']")
        await face.locator("button[value=approve]").click()
        await face.locator("text=已批准").wait_for()
        assert (await FaceEnrollment.get(id=enrollment.id)).state == EnrollmentState.APPROVED

        # The approval arrives live (the page has not reloaded: only the socket can have
        # raised the unread badge), then it is in the list.
        await page.wait_for_selector("[data-unread]:not([hidden])")
        await on(page, "/messages")
        approved = page.locator("[data-type='enrollment_approved']")
        await approved.wait_for()
        await approved.get_by_role("button").click()
        await page.wait_for_selector("[data-type='enrollment_approved']:not(.unread)")
        # wx.requestSubscribeMessage: allow one WeChat message about visitors.
        await page.click("summary:has-text('微信消息提醒')")
        visitor_tmpl = page.locator(f"[data-template='{VISITOR_TEMPLATE}']")
        await visitor_tmpl.get_by_role("button", name=re.compile("^允许一次")).click()
        await visitor_tmpl.locator("text=可再收 1 条").wait_for()

        # A gate recognises the resident: the door opens.
        await eventually(lambda: sim.library.version > 0)
        await sim.capture_face(embedding=embedding("person_b_2"))
        assert (await sim.wait_opened()).reason

        # Doors I may open: the open button and its result.
        await on(page, "/")
        await page.wait_for_selector("[data-face-state='approved']")
        await page.click(f"[data-open='{gate['id']}']")
        await page.wait_for_selector(f"[data-door='{gate['id']}'] .result[data-tone='ok']")
        assert (await sim.wait_opened(2)).reason == "remote_open"
        await page.click(f"[data-open='{unit_door['id']}']")
        result = page.locator(f"[data-door='{unit_door['id']}'] .result[data-tone='error']")
        await result.wait_for(timeout=15_000)  # the server waits open_ack_timeout_s (5 s)
        assert "门没有响应" in await result.inner_text()
        await screen(page, "home", "zh", be)

        # A visitor pass: create it, the QR in the page is what the gate reads.
        await on(page, "/passes")
        await page.click("text=新建访客通行证")
        await page.wait_for_selector("main[data-screen='/passes/new/visitor']:not([aria-busy])")
        await page.fill("input[name=visitor_name]", "王小明")
        await page.fill("input[name=plate]", "粤B12345")
        await screen(page, "pass-new", "zh", be)
        await page.click("form button[type=submit]")
        await page.wait_for_function(
            "() => { const i = document.querySelector('img.qr');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        pass_route = await page.get_attribute("main", "data-screen")
        assert pass_route and pass_route.startswith("/passes/")
        share = await page.input_value("input[data-share]")
        assert "/p/" in share
        await page.click("text=复制链接")
        await page.wait_for_selector("text=已复制")
        visitor = await open_page(width=PHONE["width"], height=PHONE["height"])
        await visitor.goto(share)  # the visitor's own phone, no login
        await visitor.wait_for_selector("svg")
        assert world.community.name in await visitor.inner_text("body")
        await visitor.close()
        # The image as the page holds it (drawn to a canvas: the page's CSP forbids
        # fetching its blob: URL again), decoded like a gate's camera would.
        data_url = await page.evaluate(
            "() => { const i = document.querySelector('img.qr');"
            " const c = document.createElement('canvas');"
            " c.width = i.naturalWidth; c.height = i.naturalHeight;"
            " c.getContext('2d').drawImage(i, 0, 0); return c.toDataURL('image/png'); }"
        )
        png = base64.b64decode(data_url.split(",", 1)[1])
        token = decode_qr(png)
        await screen(page, "pass", "zh", be)
        await sim.scan_qr(token)
        assert (await sim.wait_opened(3)).reason.startswith(("pass", "visitor"))
        await eventually(lambda: _pass_used(int(pass_route.rsplit("/", 1)[1])))
        await on(page, pass_route)
        await page.wait_for_selector("[data-uses='1']")
        await on(page, "/messages")
        await page.wait_for_selector("[data-type='visitor_arrived']")
        # ... and by WeChat, once: the one message allowed.
        wechat = FakeWeChatControl(stack.wechat_url)
        try:
            sent = await eventually(lambda: _wechat_messages(wechat, resident.openid))
        finally:
            await wechat.aclose()
        assert [m["template_id"] for m in sent] == [VISITOR_TEMPLATE]
        # Mute a kind of message; the safety kinds cannot be muted.
        await page.click("summary.summary")
        assert await page.is_disabled("input[data-pref='security_alarm']")
        await page.uncheck("input[data-pref='door_opened']")
        await page.wait_for_selector("text=已保存")
        pref = await NotificationPreference.get(
            subject_type="resident", subject_id=resident.id, event_type="door_opened"
        )
        assert pref.muted

        # A delivery pass, revoked with two taps: every gate now refuses it.
        await on(page, "/passes/new/delivery")
        await page.fill("input[name=max_uses]", "2")
        await page.click("form button[type=submit]")
        await page.wait_for_selector("img.qr")
        delivery_route = await page.get_attribute("main", "data-screen")
        await page.get_by_role("button", name="作废通行证").click()
        await page.get_by_role("button", name="确认作废").click()
        await page.wait_for_selector("main .chip >> text=已作废")
        delivery = await VisitorPass.get(id=int(str(delivery_route).rsplit("/", 1)[1]))
        assert delivery.kind == "delivery" and delivery.max_uses == 2
        assert delivery.state == "revoked"

        # The console's access log shows both entries.
        await console.goto(f"/console/c/{cid}/access")
        rows = console.locator("#access-rows")
        await rows.locator("text=访客通行证").first.wait_for()
        text = await rows.inner_text()
        assert "住户通行" in text and "访客通行证" in text and "南门闸机" in text, text

        # An intercom call rings in the page; accepting it opens the door.
        await on(page, "/")
        await intercom.call_room("1-1-101")
        dialog = page.locator("dialog#call-dialog[open]")
        await dialog.wait_for()
        await assert_accessible(page, "h5 call (zh)")
        await shot(page, "h5-call", "zh", be)
        await dialog.locator("[data-call-accept]").click()
        await dialog.locator("text=门已打开").wait_for()
        assert (await intercom.wait_opened()).reason
        await dialog.locator("text=关闭").click()
        call = await IntercomCallRecord.filter(device_id=panel["id"]).first()
        assert call is not None and call.answered_by_id == resident.id

        # A pass that is not ours (or does not exist): the API's 404, said in words.
        await on(page, "/passes/2147483000")
        assert await page.get_attribute("[data-error]", "data-error") == "not_found"
        await page.wait_for_selector("a:has-text('回到首页')")

        # An access token that no longer works: the page refreshes it and carries on.
        stale = await page.evaluate(
            "() => { const t = JSON.parse(localStorage.getItem('anxin.h5.tokens'));"
            " const old = t.access_token; t.access_token = 'expired'; "
            "localStorage.setItem('anxin.h5.tokens', JSON.stringify(t)); return old; }"
        )
        await on(page, "/passes")
        await page.wait_for_selector(f"[data-pass='{pass_route.rsplit('/', 1)[1]}']")
        fresh = await page.evaluate("JSON.parse(localStorage.getItem('anxin.h5.tokens'))")
        assert fresh["access_token"] not in ("expired", stale)

        # Household: members, a new household code, a vehicle; the phone button; export.
        await on(page, "/household")
        await page.wait_for_selector(f"[data-member='{resident.id}']")
        await page.click("text=随机生成新密码")
        await page.wait_for_selector("text=/新密码：\\d{6,8}/")
        await page.fill("input[name=code]", "2580147")
        await page.click("text=保存密码")
        await page.wait_for_selector("text=密码已更新")
        await page.click("text=停用密码")
        await page.wait_for_selector("text=密码已停用")
        await page.fill("input[name=plate]", "粤B54321")
        await page.click("text=添加车辆")
        await page.wait_for_selector(".plate >> text=粤B54321")
        await on(page, "/me")
        await page.click("[data-bind-phone]")
        await page.fill("input[name=phone]", "13912345678")
        await page.click("form.sheet button[type=submit]")
        await page.wait_for_selector("[data-phone='13912345678']")
        await page.click("[data-export]")
        await page.wait_for_selector("a[download]")

        # Every screen in both languages: axe-core, fits 375 px, a screenshot.
        screens = [
            ("home", "/"),
            ("join", "/join"),
            ("face", "/face"),
            ("passes", "/passes"),
            ("pass-new", "/passes/new/visitor"),
            ("pass", pass_route),
            ("household", "/household"),
            ("messages", "/messages"),
            ("me", "/me"),
        ]
        for lang in ("zh", "en"):
            if lang == "en":
                await page.click("#lang-switch")
                await page.wait_for_selector("html[lang='en']")
            for name, route in screens:
                await on(page, route)
                await screen(page, name, lang, be)
        assert (await Resident.get(id=resident.id)).language == "en"

        # A second call, in English, declined.
        await on(page, "/")
        await intercom.call_room("1-1-101")
        await dialog.wait_for()
        await shot(page, "h5-call", "en", be)
        await dialog.locator("[data-call-decline]").click()
        await dialog.locator("text=Declined").wait_for()
        await dialog.locator("text=Close").click()

        # Log out, and back in as the same WeChat user: the same resident, still English.
        await on(page, "/me")
        await page.click("text=Log out")
        await page.wait_for_selector("main[data-screen='/login']")
        await page.click("#login")
        await page.wait_for_selector("main[data-screen='/']:not([aria-busy])")
        assert await Resident.filter(openid=resident.openid).count() == 1
        assert await page.inner_text("h1") == "My home"

        # Deleting the account (two taps) ends everything and returns to the login.
        await on(page, "/me")
        await page.get_by_role("button", name="Delete my account", exact=True).click()
        await page.get_by_role("button", name="Yes, delete my account").click()
        await page.wait_for_selector("main[data-screen='/login']")
        assert (await Resident.get(id=resident.id)).deleted_at is not None

    events = await AccessEvent.filter(device_id=gate["id"]).order_by("id")
    assert [e.method for e in events][:3] == [
        AccessMethod.FACE,
        AccessMethod.REMOTE,
        AccessMethod.QR,
    ], [(e.method, e.reason) for e in events]


async def _photo_enrollment(resident_id: int) -> FaceEnrollment | None:
    return await FaceEnrollment.get_or_none(resident_id=resident_id, method=EnrollmentMethod.PHOTO)


async def _wechat_messages(wechat: FakeWeChatControl, openid: str) -> list[dict[str, Any]]:
    return await wechat.messages(openid)


async def _pass_used(pass_id: int) -> bool:
    p = await VisitorPass.get(id=pass_id)
    return p.uses == 1
