"""Subscribe-message templates: which template an event uses and how its data is filled.

The mapping lives in `wechat_templates.json` (override the path with
ANXIN_WECHAT_TEMPLATES_FILE): template ids come from the mini-program's WeChat console, so
they change without code. Values are cut to WeChat's per-type limits here, because WeChat
rejects the whole message (47003) when one field is too long.
"""

from __future__ import annotations

import json
import os
import re
import string
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from notifications.catalog import render

DEFAULT_FILE = Path(__file__).with_name("wechat_templates.json")

# Maximum characters per data type, from WeChat's subscribe-message documentation.
MAX_LEN = {
    "thing": 20,
    "number": 32,
    "letter": 32,
    "symbol": 5,
    "character_string": 32,
    "phone_number": 17,
    "car_number": 8,
    "name": 10,
    "phrase": 5,
    "time": 30,
    "date": 30,
    "amount": 14,
}
_NOT_CJK = re.compile(r"[^\u4e00-\u9fff]")
_NOT_ASCII_PRINTABLE = re.compile(r"[^\x21-\x7e]")


@dataclass(frozen=True)
class Template:
    template_id: str
    data: dict[str, str]  # WeChat key ("thing3") -> text with {payload} fields
    page: str | None = None


def load_templates(path: str | Path | None = None) -> dict[str, Template]:
    path = Path(path or os.environ.get("ANXIN_WECHAT_TEMPLATES_FILE") or DEFAULT_FILE)
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {
        event: Template(str(t["template_id"]), dict(t["data"]), t.get("page"))
        for event, t in raw.items()
        if not event.startswith("_")
    }


@lru_cache(maxsize=1)
def default_templates() -> dict[str, Template]:
    return load_templates()


def key_type(key: str) -> str:
    return key.rstrip(string.digits)


def fit(key: str, value: Any) -> str:
    """Make `value` acceptable for the WeChat data key `key` (e.g. "thing3", "time2")."""
    kind = key_type(key)
    if isinstance(value, datetime):
        value = value.strftime("%Y年%m月%d日" if kind == "date" else "%Y-%m-%d %H:%M")
    text = " ".join(str(value).split())  # no newlines or runs of spaces
    if kind == "phrase":
        text = _NOT_CJK.sub("", text) or "通知"  # phrase: Chinese characters only
    elif kind in ("character_string", "letter", "number", "car_number"):
        text = _NOT_ASCII_PRINTABLE.sub("", text)
    limit = MAX_LEN.get(kind)
    if kind == "name" and text.isascii():
        limit = 20  # names: 10 Chinese characters or 20 letters
    if limit is not None and len(text) > limit:
        # Things read better with an ellipsis; codes and phrases are simply cut.
        text = text[: limit - 1] + "…" if kind == "thing" else text[:limit]
    return text or "-"


def build_data(template: Template, values: dict[str, Any]) -> dict[str, str]:
    return {key: fit(key, render(text, values, "zh")) for key, text in template.data.items()}
