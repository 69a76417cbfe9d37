"""QR rendering for pass tokens.

A ~260-character token in byte mode is a version 12 symbol (65x65 modules) at error
correction M. M (15 % recovery) rather than L: the code is read off a phone screen with
glare and cracks; Q/H would push it to version 15-18 and make the modules smaller for
the same screen width, which hurts more than it helps. PNGs are rendered at 8 px per
module with the 4-module quiet zone the standard asks for (584 px square), large enough
for gate scanners at 10-30 cm; the SVG scales freely.
"""

from __future__ import annotations

import io

import segno

ERROR_LEVEL = "m"
PNG_SCALE = 8
BORDER = 4


def qr_png(token: str, scale: int = PNG_SCALE) -> bytes:
    buf = io.BytesIO()
    segno.make(token, error=ERROR_LEVEL, micro=False, boost_error=False).save(
        buf, kind="png", scale=scale, border=BORDER
    )
    return buf.getvalue()


def qr_svg(token: str, scale: int = 4) -> bytes:
    buf = io.BytesIO()
    segno.make(token, error=ERROR_LEVEL, micro=False, boost_error=False).save(
        buf, kind="svg", scale=scale, border=BORDER, xmldecl=False, svgns=True
    )
    return buf.getvalue()
