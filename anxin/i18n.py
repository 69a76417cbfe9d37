"""Which language a person reads: Chinese first, English available.

`negotiate` reads an HTTP Accept-Language header properly (RFC 9110 §12.5.4: quality
values, language ranges such as zh-Hans, zh-CN, en-US, `*`), so `en;q=0.1, zh` is Chinese
and `zh;q=0` refuses Chinese. A resident's stored setting (`Resident.language`) is used
when a request names no language we have, and always for what is sent to them later
(notifications).
"""

from __future__ import annotations

from typing import Literal

Language = Literal["zh", "en"]
SUPPORTED: tuple[Language, ...] = ("zh", "en")
DEFAULT: Language = "zh"
_MAX_HEADER = 512  # a longer header is read up to here, never refused


def negotiate(header: str | None) -> Language | None:
    """The best supported language the header accepts; None when it names none of them."""
    if not header:
        return None
    best: tuple[float, int, Language] | None = None
    refused: set[str] = set()
    wildcard_q: float | None = None
    for position, part in enumerate(header[:_MAX_HEADER].split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = -1.0
        if not tag or not 0.0 <= q <= 1.0:
            continue  # malformed entries are ignored, as browsers do
        if tag == "*":
            wildcard_q = q
            continue
        primary = tag.split("-", 1)[0]
        if primary not in SUPPORTED:
            continue
        if q == 0.0:
            refused.add(primary)
            continue
        candidate = (q, -position, primary)
        if best is None or candidate > best:
            best = candidate
    if best is not None:
        return best[2]
    if wildcard_q:
        return next((lang for lang in SUPPORTED if lang not in refused), None)
    return None


def choose(header: str | None, stored: str | None = None) -> Language:
    """The header's choice, else the person's stored setting, else Chinese."""
    chosen = negotiate(header)
    if chosen is not None:
        return chosen
    if stored in SUPPORTED:
        return stored
    return DEFAULT
