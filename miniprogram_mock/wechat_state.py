"""In-memory state of the fake WeChat API: users, one-time codes, tokens, subscriptions.

Kept apart from the HTTP layer so the rules (what WeChat accepts, which errcode it
answers) read in one place. All time comes from `anxin.clock`, so tests move time.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from anxin.clock import clock

CODE_TTL_S = 300  # js_code and phone code: one use, 5 minutes (WeChat docs)
TOKEN_TTL_S = 7200
# stable_token hands out a new token in the last 5 minutes; an old /cgi-bin/token token
# keeps working 5 minutes after a newer one is issued (WeChat's smooth hand-over).
TOKEN_OVERLAP_S = 300

ERRMSG: dict[int, str] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40029: "invalid code",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    40163: "code been used",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    42001: "access_token expired",
    43101: "user refuse to accept the msg",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    47003: "argument invalid!",
}

# Subscribe-message templates the fake knows: template_id -> data keys (type + index,
# exactly like WeChat's "thing1", "time2"). Ids are 43 url-safe chars like real ones.
DEFAULT_TEMPLATES: dict[str, list[str]] = {
    # 访客到访提醒: visitor name, arrival time, door, note
    "AnxinVisitorArrivedTmpl0000000000000000001": ["name1", "time2", "thing3", "thing4"],
    # 门禁告警: alarm type, time, location
    "AnxinDoorAlarmTmpl000000000000000000000002": ["phrase1", "time2", "thing3"],
    # 快递到达: courier, pickup code, time
    "AnxinParcelArrivedTmpl00000000000000000003": ["thing1", "character_string2", "time3"],
    # 物业通知: title, text, time
    "AnxinPropertyNoticeTmpl0000000000000000006": ["thing1", "thing2", "time3"],
}

_ALNUM = string.ascii_letters + string.digits
# Per WeChat's subscribe-message docs: max length per data type (chars).
_MAX_LEN = {
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
_PATTERNS = {
    "number": re.compile(r"^-?\d+(\.\d+)?$"),
    "letter": re.compile(r"^[A-Za-z]+$"),
    "symbol": re.compile(r"^[^\w\s]+$"),
    "character_string": re.compile(r"^[\x21-\x7e]+$"),
    "phone_number": re.compile(r"^[\d+\-() ]+$"),
    "phrase": re.compile(r"^[\u4e00-\u9fff]+$"),
    "time": re.compile(r"\d{1,2}:\d{2}"),
    "date": re.compile(r"\d{4}(年|-|/)\d{1,2}"),
    "amount": re.compile(r"^[¥￥$]?\d{1,10}(\.\d{1,2})?元?$"),
}


def rid() -> str:
    """WeChat's request id: hex timestamp and two random hex groups."""
    return f"{int(clock.time()):08x}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def error(errcode: int, detail: str | None = None) -> dict[str, Any]:
    msg = detail or ERRMSG.get(errcode, "unknown error")
    return {"errcode": errcode, "errmsg": f"{msg}, rid: {rid()}"}


def new_openid() -> str:
    # Real openids: 28 chars, start with "o", url-safe alphabet.
    return "o" + "".join(secrets.choice(_ALNUM + "-_") for _ in range(27))


def _token() -> str:
    return "".join(secrets.choice(_ALNUM + "_-") for _ in range(136))


@dataclass
class OneTimeCode:
    value: dict[str, Any]
    expires_at: float
    used: bool = False


@dataclass
class Token:
    appid: str
    expires_at: float
    stable: bool  # stable_token and /cgi-bin/token tokens live independently
    revoked: bool = False  # force_refresh invalidates at once -> 40001, not 42001


@dataclass
class Fault:
    errcode: int
    remaining: int
    http_status: int = 200
    delay_s: float = 0.0


@dataclass
class FakeWeChat:
    appid: str
    secret: str
    users: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # openid -> {session_key, unionid}
    login_codes: dict[str, OneTimeCode] = field(default_factory=dict)
    phone_codes: dict[str, OneTimeCode] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    stable_current: str | None = None
    templates: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_TEMPLATES))
    quota: dict[tuple[str, str], int] = field(default_factory=dict)  # (openid, template) -> n
    refused: set[tuple[str, str]] = field(default_factory=set)
    faults: dict[str, list[Fault]] = field(default_factory=dict)  # endpoint -> queue
    per_minute: dict[str, int] = field(default_factory=dict)
    minute_calls: dict[str, list[float]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        fresh = FakeWeChat(self.appid, self.secret)
        self.__dict__.update(fresh.__dict__)

    # -- control side (what the phone / the user would do) --------------------------
    def wx_login(self, openid: str | None = None, unionid: str | None = None) -> dict[str, Any]:
        openid = openid or new_openid()
        user = self.users.setdefault(openid, {"session_key": None, "unionid": None})
        if unionid:
            user["unionid"] = unionid
        code = "".join(secrets.choice(_ALNUM) for _ in range(32))
        self.login_codes[code] = OneTimeCode({"openid": openid}, clock.time() + CODE_TTL_S)
        return {"code": code, "openid": openid, "expires_in": CODE_TTL_S}

    def phone_code(self, phone_number: str, country_code: str = "86") -> dict[str, Any]:
        code = secrets.token_hex(32)
        self.phone_codes[code] = OneTimeCode(
            {"purePhoneNumber": phone_number, "countryCode": country_code},
            clock.time() + CODE_TTL_S,
        )
        return {"code": code, "expires_in": CODE_TTL_S}

    def subscribe(
        self, openid: str, template_id: str, action: str, count: int = 1
    ) -> dict[str, Any]:
        key = (openid, template_id)
        if action == "accept":
            self.refused.discard(key)
            self.quota[key] = self.quota.get(key, 0) + count
        else:  # "reject": the user tapped 取消 or turned the template off
            self.refused.add(key)
            self.quota.pop(key, None)
        return {
            "openid": openid,
            "template_id": template_id,
            "quota": self.quota.get(key, 0),
            "refused": key in self.refused,
        }

    def expire_tokens(self) -> int:
        now = clock.time()
        for tok in self.tokens.values():
            tok.expires_at = min(tok.expires_at, now)
        return len(self.tokens)

    def add_fault(
        self,
        endpoint: str,
        errcode: int,
        count: int = 1,
        http_status: int = 200,
        delay_s: float = 0.0,
    ) -> None:
        self.faults.setdefault(endpoint, []).append(Fault(errcode, count, http_status, delay_s))

    def encrypted_data(
        self, openid: str, data: dict[str, Any], appid: str | None = None
    ) -> dict[str, str]:
        """Legacy open-data payload: AES-128-CBC, key = session_key, PKCS#7, base64."""
        user = self.users.get(openid)
        if not user or not user["session_key"]:
            raise KeyError(openid)
        payload = dict(data)
        payload["watermark"] = {"timestamp": int(clock.time()), "appid": appid or self.appid}
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        plain = padder.update(json.dumps(payload, ensure_ascii=False).encode()) + padder.finalize()
        enc = Cipher(
            algorithms.AES(base64.b64decode(user["session_key"])), modes.CBC(iv)
        ).encryptor()
        cipher = enc.update(plain) + enc.finalize()
        return {
            "encryptedData": base64.b64encode(cipher).decode(),
            "iv": base64.b64encode(iv).decode(),
        }

    # -- WeChat side -----------------------------------------------------------------
    def before_call(self, endpoint: str) -> Fault | dict[str, Any] | None:
        """Count the call; return an injected fault or a minute-quota error, if any."""
        self.calls[endpoint] = self.calls.get(endpoint, 0) + 1
        queue = self.faults.get(endpoint)
        if queue:
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
            return fault
        limit = self.per_minute.get(endpoint)
        if limit is not None:
            now = clock.time()
            recent = [t for t in self.minute_calls.get(endpoint, []) if now - t < 60]
            if len(recent) >= limit:
                self.minute_calls[endpoint] = recent
                return error(45011)
            self.minute_calls[endpoint] = [*recent, now]
        return None

    def check_app(self, appid: str | None, secret: str | None) -> dict[str, Any] | None:
        if not appid:
            return error(41002)
        if appid != self.appid:
            return error(40013)
        if not secret:
            return error(41004)
        if secret != self.secret:
            return error(40125)
        return None

    def jscode2session(self, js_code: str) -> dict[str, Any]:
        entry = self.login_codes.get(js_code)
        if entry is None or entry.expires_at <= clock.time():
            return error(40029)
        if entry.used:
            return error(40163)
        entry.used = True
        openid = entry.value["openid"]
        user = self.users[openid]
        # A fresh login rotates session_key, as WeChat may; old encryptedData stops decrypting.
        user["session_key"] = base64.b64encode(os.urandom(16)).decode()
        out = {"session_key": user["session_key"], "openid": openid}
        if user["unionid"]:
            out["unionid"] = user["unionid"]
        return out

    def _issue(self, stable: bool) -> str:
        tok = _token()
        self.tokens[tok] = Token(self.appid, clock.time() + TOKEN_TTL_S, stable)
        return tok

    def get_token(self) -> dict[str, Any]:
        now = clock.time()
        for tok in self.tokens.values():  # earlier plain tokens live 5 more minutes
            if not tok.stable:
                tok.expires_at = min(tok.expires_at, now + TOKEN_OVERLAP_S)
        return {"access_token": self._issue(stable=False), "expires_in": TOKEN_TTL_S}

    def stable_token(self, force_refresh: bool) -> dict[str, Any]:
        now = clock.time()
        current = self.tokens.get(self.stable_current or "")
        if force_refresh and current:
            current.revoked = True
        elif current and not current.revoked and current.expires_at - now > TOKEN_OVERLAP_S:
            return {
                "access_token": self.stable_current,
                "expires_in": int(current.expires_at - now),
            }
        self.stable_current = self._issue(stable=True)
        return {"access_token": self.stable_current, "expires_in": TOKEN_TTL_S}

    def check_token(self, access_token: str | None) -> dict[str, Any] | None:
        if not access_token:
            return error(41001)
        tok = self.tokens.get(access_token)
        if tok is None or tok.revoked:
            return error(40001)
        if tok.expires_at <= clock.time():
            return error(42001)
        return None

    def get_phone_number(self, code: str | None) -> dict[str, Any]:
        if not code:
            return error(41008)
        entry = self.phone_codes.get(code)
        if entry is None or entry.used or entry.expires_at <= clock.time():
            return error(40029)
        entry.used = True
        pure, cc = entry.value["purePhoneNumber"], entry.value["countryCode"]
        return {
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": pure if cc == "86" else f"+{cc}{pure}",
                "purePhoneNumber": pure,
                "countryCode": cc,
                "watermark": {"timestamp": int(clock.time()), "appid": self.appid},
            },
        }

    def send_subscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        openid, template_id = body.get("touser"), body.get("template_id")
        if not openid or openid not in self.users:
            return error(40003)
        keys = self.templates.get(template_id or "")
        if keys is None:
            return error(40037)
        data = body.get("data")
        if not isinstance(data, dict):
            return error(47001)
        for key in keys:
            problem = _check_value(key, data.get(key))
            if problem:
                return error(47003, f"argument invalid! data.{key}.value {problem}")
        if body.get("miniprogram_state", "formal") not in ("developer", "trial", "formal"):
            return error(47003, "argument invalid! miniprogram_state invalid")
        if body.get("lang", "zh_CN") not in ("zh_CN", "en_US", "zh_HK", "zh_TW"):
            return error(47003, "argument invalid! lang invalid")
        qkey = (str(openid), str(template_id or ""))
        if qkey in self.refused or self.quota.get(qkey, 0) <= 0:
            return error(43101)
        self.quota[qkey] -= 1  # one-time subscription: one tap, one message
        msgid = secrets.randbelow(2**62) + 1
        self.messages.append(
            {
                "msgid": msgid,
                "touser": openid,
                "template_id": template_id,
                "page": body.get("page"),
                "data": data,
                "lang": body.get("lang", "zh_CN"),
                "miniprogram_state": body.get("miniprogram_state", "formal"),
                "sent_at": clock.time(),
            }
        )
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}


def _check_value(key: str, item: Any) -> str | None:
    """Why WeChat would reject this data item (None when fine)."""
    kind = key.rstrip(string.digits)
    value = item.get("value") if isinstance(item, dict) else None
    if not isinstance(value, str) or not value:
        return "is empty"
    limit = _MAX_LEN.get(kind)
    if limit is not None and kind == "name" and value.isascii():
        limit = 20  # names: 10 Chinese characters or 20 letters
    if limit is not None and len(value) > limit:
        return "exceeds limit"
    pattern = _PATTERNS.get(kind)
    if pattern is not None and not pattern.search(value):
        return "invalid format"
    return None
