"""The share page a visitor opens on their phone: /p/{share_token}, no login.

It shows the pass and nothing else: community name, kind, validity in the community's
time zone, uses left and the QR. Not the household, not who made it. The page is not
cached, indexed, or sent as a referrer.
"""

from __future__ import annotations

from html import escape

from anxin.clock import utcnow
from anxin.timefmt import zone
from api.passes.qr import qr_svg
from domain.passes.service import effective_state
from models import Community, PassKind, PassState, VisitorPass

STATE_TEXT = {
    PassState.ACTIVE: ("有效", "valid"),
    PassState.REVOKED: ("已作废", "cancelled"),
    PassState.EXHAUSTED: ("次数已用完", "used up"),
    PassState.EXPIRED: ("已过期", "expired"),
}
KIND_TEXT = {
    PassKind.VISITOR: ("访客通行证", "Visitor pass"),
    PassKind.DELIVERY: ("外卖快递通行证", "Delivery pass"),
}
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
}


def _fmt(value, tz: str) -> str:
    return value.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")


def render_share_page(p: VisitorPass, community: Community, token: str) -> str:
    tz = community.timezone
    state = effective_state(p)
    if state == PassState.ACTIVE and p.valid_from > utcnow():
        state_zh, state_en = "未到生效时间", "not yet valid"
    else:
        state_zh, state_en = STATE_TEXT[state]
    kind_zh, kind_en = KIND_TEXT[p.kind]
    left = max(0, p.max_uses - p.uses)
    qr = qr_svg(token).decode() if state == PassState.ACTIVE else ""
    name = escape(community.name)
    name_en = escape(community.name_en or community.name)
    plate = f"<p>车牌 Plate: <b>{escape(p.plate)}</b></p>" if p.plate else ""
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex">
<title>{kind_zh} · {kind_en}</title>
<style>body{{font-family:sans-serif;max-width:28rem;margin:1rem auto;padding:0 1rem;
text-align:center}}.qr svg{{width:100%;height:auto;max-width:22rem}}
.s{{font-size:1.2rem;font-weight:bold}}small{{color:#666}}</style></head>
<body>
<h1>{kind_zh}<br><small>{kind_en}</small></h1>
<p>{name}<br><small>{name_en}</small></p>
<p class="s">{state_zh} · {state_en}</p>
<div class="qr">{qr}</div>
<p>有效期 Valid: {_fmt(p.valid_from, tz)} — {_fmt(p.valid_until, tz)}<br>
<small>({escape(tz)})</small></p>
<p>剩余次数 Uses left: {left} / {p.max_uses}</p>
{plate}
<p><small>请在门口扫码处出示此二维码 · Show this code at the gate scanner</small></p>
</body></html>"""
