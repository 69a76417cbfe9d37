"""Chinese licence plates: normalise what people and cameras write, refuse the rest.

Formats accepted (GA 36-2018):
* ordinary 7 characters: province + issuing-office letter + 5 letters/digits, the last one
  may be 挂 (trailer), 学 (driving school), 警 (police), 港/澳 (cross-border);
* new-energy 8 characters: small cars province + letter + D/F + letter/digit + 4 digits
  (e.g. 粤BD12345), large vehicles province + letter + 5 digits + D/F (e.g. 粤B12345D).
Letters I and O are never used (they read as 1 and 0).
"""

from __future__ import annotations

import re

from anxin.errors import invalid

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_L = "A-HJ-NP-Z"  # letters without I and O
_ORDINARY = re.compile(rf"^[{PROVINCES}][{_L}][{_L}0-9]{{4}}[{_L}0-9挂学警港澳]$")
_NEV_SMALL = re.compile(rf"^[{PROVINCES}][{_L}][DF][{_L}0-9][0-9]{{4}}$")
_NEV_LARGE = re.compile(rf"^[{PROVINCES}][{_L}][0-9]{{5}}[DF]$")
_SEPARATORS = re.compile(r"[\s·•.\-_]")


def normalize_plate(raw: str) -> str:
    return _SEPARATORS.sub("", raw or "").upper()


def is_valid_plate(plate: str) -> bool:
    return bool(_ORDINARY.match(plate) or _NEV_SMALL.match(plate) or _NEV_LARGE.match(plate))


def parse_plate(raw: str) -> str:
    """The normalised plate, or Invalid with a stable code."""
    plate = normalize_plate(raw)
    if not is_valid_plate(plate):
        raise invalid(
            "plate_invalid",
            "车牌号格式不正确（例：粤B12345，新能源粤BD12345）",
            "not a valid Chinese licence plate (e.g. 粤B12345, new-energy 粤BD12345)",
        )
    return plate
