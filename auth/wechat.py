"""Async client for the WeChat mini-program server API.

Every call goes to `settings.wechat_base_url` (production: https://api.weixin.qq.com; dev,
tests and the demo: the fake in `miniprogram_mock.fake_wechat`) through one pool of
keep-alive connections (`auth.wechat_http`: a lean HTTP/1.1 client, since a notice to a
community is one call per resident). wechatpy is synchronous, so it is used only where it does work
without I/O: decrypting legacy `encryptedData` and its errcode constants.
See docs/wechat.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlencode

from wechatpy.constants import WeChatErrorCode as Err
from wechatpy.crypto import WeChatWxaCrypto
from wechatpy.exceptions import WeChatException

from anxin.clock import clock
from anxin.errors import (
    BadRequest,
    DomainError,
    Unauthenticated,
    Unavailable,
    UpstreamFailed,
)
from anxin.runtime import Key, Runtime
from anxin.settings import get_settings
from auth.wechat_http import HTTPPool, HTTPTimeout, HTTPTransportError

log = logging.getLogger(__name__)

# Explicit: a stuck WeChat must not hold a login request (or a worker) for long.
DEFAULT_TIMEOUT_S, CONNECT_TIMEOUT_S = 5.0, 3.0
# Connections kept open to WeChat: enough in flight to hide the round trips of a notice's
# messages (the dispatcher's concurrency), few enough to stay a polite client.
POOL_SIZE = 64
# stable_token hands out a new token in the last 5 minutes; refresh in step with it.
TOKEN_MARGIN_S = 300
TOKEN_ERRORS = {Err.INVALID_CREDENTIAL, Err.EXPIRED_ACCESS_TOKEN}  # 40001, 42001
RATE_LIMIT_ERRORS = {Err.OUT_OF_API_FREQ_LIMIT, Err.API_MINUTE_QUOTA_REACH_LIMIT}  # 45009, 45011
CONFIG_ERRORS = {Err.INVALID_APP_ID, Err.INVALID_APP_SECRET, 40002, 41002, 41004}
RETRY_AFTER_S: dict[int, int] = {
    Err.API_MINUTE_QUOTA_REACH_LIMIT: 60,
    Err.OUT_OF_API_FREQ_LIMIT: 3600,
}


class WeChatAPIError(Exception):
    """WeChat answered with a non-zero errcode."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeChatUnavailable(Exception):
    """No usable answer: network failure, timeout, HTTP error, non-JSON, or -1 system busy."""

    def __init__(self, reason: str, *, answered: bool = False, errcode: int | None = None) -> None:
        super().__init__(reason)
        self.answered = answered  # False: unreachable; True: it answered, but badly
        self.errcode = errcode


@dataclass(frozen=True)
class Session:
    openid: str
    session_key: str = field(repr=False)  # secret: never log it
    unionid: str | None = None


@dataclass(frozen=True)
class PhoneInfo:
    phone_number: str  # with country code for non-mainland numbers
    pure_phone_number: str
    country_code: str
    watermark_appid: str
    watermark_timestamp: int

    @classmethod
    def from_wechat(cls, d: dict[str, Any]) -> PhoneInfo:
        wm = d.get("watermark") or {}
        return cls(
            phone_number=str(d["phoneNumber"]),
            pure_phone_number=str(d["purePhoneNumber"]),
            country_code=str(d["countryCode"]),
            watermark_appid=str(wm.get("appid", "")),
            watermark_timestamp=int(wm.get("timestamp", 0)),
        )


class SendOutcome(StrEnum):
    OK = "ok"
    REFUSED_OR_NO_QUOTA = "refused_or_no_quota"  # 43101: undeliverable, keep the in-app copy
    RATE_LIMITED = "rate_limited"  # 45009/45011: back off, retry later
    INVALID = "invalid"  # 40037/47003/...: permanent, fix the template or data
    UNAVAILABLE = "unavailable"  # network, 5xx, -1, token trouble: retry later


@dataclass(frozen=True)
class SendResult:
    outcome: SendOutcome
    msgid: int | None = None
    errcode: int = 0
    errmsg: str = ""
    retry_after_s: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is SendOutcome.OK

    @property
    def retryable(self) -> bool:
        return self.outcome in (SendOutcome.RATE_LIMITED, SendOutcome.UNAVAILABLE)


class TokenStore(Protocol):
    """The part of `redis.asyncio.Redis` the token cache uses."""

    async def get(self, name: str) -> Any: ...
    async def set(self, name: str, value: str, ex: int | None = None) -> Any: ...


_ERRORS: dict[str, tuple[str, str, type[DomainError]]] = {
    "wechat_code_invalid": (
        "微信登录凭证无效或已过期，请重新登录",
        "WeChat login code is invalid or expired; please log in again",
        Unauthenticated,
    ),
    "wechat_code_used": (
        "微信登录凭证已被使用，请重新登录",
        "WeChat login code has already been used; please log in again",
        Unauthenticated,
    ),
    "wechat_phone_code_invalid": (
        "手机号授权凭证无效或已过期，请重新授权",
        "phone number code is invalid or expired; please authorize again",
        BadRequest,
    ),
    "wechat_decrypt_failed": (
        "微信数据解密失败，请重新登录后再试",
        "could not decrypt WeChat data; log in again and retry",
        BadRequest,
    ),
    "wechat_rate_limited": (
        "微信服务调用过于频繁，请稍后再试",
        "WeChat API rate limit reached; please try again later",
        Unavailable,
    ),
    "wechat_unavailable": (
        "微信服务暂时不可用，请稍后再试",
        "WeChat is temporarily unavailable; please try again later",
        Unavailable,
    ),
    "wechat_misconfigured": (
        "微信小程序配置有误，请联系管理员",
        "WeChat rejected the app credentials; contact the administrator",
        UpstreamFailed,
    ),
    "wechat_error": (
        "微信服务返回错误，请稍后再试",
        "WeChat returned an unexpected error",
        UpstreamFailed,
    ),
}


def wechat_error(
    code: str, kind: type[DomainError] | None = None, details: Any = None
) -> DomainError:
    zh, en, default_kind = _ERRORS[code]
    return (kind or default_kind)(code, zh, en, details)


def _to_domain_error(
    exc: WeChatAPIError | WeChatUnavailable, code_errors: dict[int, str]
) -> DomainError:
    """Map a WeChat failure on a user-facing path (login, phone) to a stable domain error."""
    if isinstance(exc, WeChatUnavailable):
        kind = UpstreamFailed if exc.answered else Unavailable
        return wechat_error("wechat_unavailable", kind, {"errcode": exc.errcode})
    details = {"errcode": exc.errcode}
    if exc.errcode in code_errors:
        return wechat_error(code_errors[exc.errcode], details=details)
    if exc.errcode in RATE_LIMIT_ERRORS:
        return wechat_error(
            "wechat_rate_limited", details={**details, "retry_after": RETRY_AFTER_S[exc.errcode]}
        )
    if exc.errcode in CONFIG_ERRORS:
        return wechat_error("wechat_misconfigured", details=details)
    if exc.errcode in TOKEN_ERRORS:  # still rejected after one refresh
        return wechat_error("wechat_unavailable", UpstreamFailed, details)
    return wechat_error("wechat_error", details=details)


def _send_result(exc: WeChatAPIError | WeChatUnavailable) -> SendResult:
    if isinstance(exc, WeChatUnavailable):
        return SendResult(SendOutcome.UNAVAILABLE, errcode=exc.errcode or 0, errmsg=str(exc))
    code, msg = exc.errcode, exc.errmsg
    if code == Err.USER_REFUSE_TO_ACCEPT_THE_MESSAGE:
        return SendResult(SendOutcome.REFUSED_OR_NO_QUOTA, errcode=code, errmsg=msg)
    if code in RATE_LIMIT_ERRORS:
        return SendResult(
            SendOutcome.RATE_LIMITED, errcode=code, errmsg=msg, retry_after_s=RETRY_AFTER_S[code]
        )
    if code in TOKEN_ERRORS or code in CONFIG_ERRORS:
        return SendResult(SendOutcome.UNAVAILABLE, errcode=code, errmsg=msg)
    # 40037, 47003, 40003 and anything unknown: resending the same message will not help.
    return SendResult(SendOutcome.INVALID, errcode=code, errmsg=msg)


def decrypt_open_data(session_key: str, encrypted_data: str, iv: str, appid: str) -> dict[str, Any]:
    """Decrypt legacy `encryptedData` (AES-128-CBC keyed by session_key) with wechatpy.

    wechatpy also checks that the watermark's appid is ours. There is no MAC, so that
    check and a parseable JSON are all the integrity there is.
    """
    try:
        return WeChatWxaCrypto(session_key, iv, appid).decrypt_message(encrypted_data)
    except (ValueError, KeyError, TypeError, WeChatException) as exc:
        # ValueError covers bad base64, wrong key/iv size, bad padding, non-UTF-8 and bad JSON.
        raise wechat_error(
            "wechat_decrypt_failed", details={"reason": type(exc).__name__}
        ) from None


class WeChatClient:
    def __init__(
        self,
        base_url: str | None = None,
        appid: str | None = None,
        secret: str | None = None,
        *,
        redis: TokenStore | None = None,
        redis_prefix: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        pool_size: int = POOL_SIZE,
    ) -> None:
        settings = get_settings()
        self.base_url = (base_url or settings.wechat_base_url).rstrip("/")
        self.appid = appid or settings.wechat_appid
        self._secret = secret or settings.wechat_secret
        self._http = HTTPPool(
            self.base_url,
            size=pool_size,
            timeout=timeout,
            connect_timeout=min(connect_timeout, timeout),
        )
        self._redis = redis
        prefix = settings.redis_prefix if redis_prefix is None else redis_prefix
        self._redis_key = f"{prefix}wechat:access_token:{self.appid}"
        self._token: tuple[str, float] | None = None  # (token, expires_at)
        self._lock = asyncio.Lock()  # concurrent callers share one refresh
        self._query: tuple[str, str] | None = None  # (token, its query string)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- transport ---------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | str | None = None,
        json_body: dict[str, Any] | None = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        query = params if isinstance(params, str) or params is None else urlencode(params)
        target = f"{path}?{query}" if query else path
        payload = None
        if json_body is not None:
            payload = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            resp = await self._http.request(method, target, payload, idempotent=idempotent)
        except HTTPTimeout:
            raise WeChatUnavailable(f"timeout calling {path}") from None
        except HTTPTransportError as exc:
            raise WeChatUnavailable(f"network error calling {path}: {exc}") from None
        if resp.status != 200:
            raise WeChatUnavailable(f"HTTP {resp.status} from {path}", answered=True)
        try:
            # Parse the bytes: jscode2session says text/plain although it sends JSON.
            body = json.loads(resp.body)
        except ValueError:
            raise WeChatUnavailable(f"non-JSON answer from {path}", answered=True) from None
        if not isinstance(body, dict):
            raise WeChatUnavailable(f"unexpected answer from {path}", answered=True)
        errcode = int(body.get("errcode") or 0)
        if errcode == Err.SYSTEM_BUSY:
            raise WeChatUnavailable(f"system busy at {path}", answered=True, errcode=errcode)
        if errcode:
            log.warning("wechat %s errcode=%s errmsg=%s", path, errcode, body.get("errmsg"))
            raise WeChatAPIError(errcode, str(body.get("errmsg", "")))
        return body

    # -- login -------------------------------------------------------------------------
    async def code2session(self, js_code: str) -> Session:
        """Exchange a wx.login() code. Never retried: a code is one-time (retry -> 40163)."""
        try:
            body = await self._request(
                "GET",
                "/sns/jscode2session",
                params={
                    "appid": self.appid,
                    "secret": self._secret,
                    "js_code": js_code,
                    "grant_type": "authorization_code",
                },
            )
        except (WeChatAPIError, WeChatUnavailable) as exc:
            raise _to_domain_error(
                exc,
                {
                    Err.INVALID_OAUTH_CODE: "wechat_code_invalid",
                    Err.CODE_BEEN_USED: "wechat_code_used",
                },
            ) from None
        if not body.get("openid") or not body.get("session_key"):
            raise wechat_error("wechat_error", details={"reason": "no openid in answer"})
        return Session(body["openid"], body["session_key"], body.get("unionid") or None)

    def decrypt_phone_number(
        self, session: Session | str, encrypted_data: str, iv: str
    ) -> PhoneInfo:
        """Legacy getPhoneNumber payload (before phone codes), decrypted with session_key."""
        key = session.session_key if isinstance(session, Session) else session
        return PhoneInfo.from_wechat(decrypt_open_data(key, encrypted_data, iv, self.appid))

    def decrypt(self, session: Session | str, encrypted_data: str, iv: str) -> dict[str, Any]:
        key = session.session_key if isinstance(session, Session) else session
        return decrypt_open_data(key, encrypted_data, iv, self.appid)

    # -- access token --------------------------------------------------------------------
    def _cached(self, rejected: str | None) -> str | None:
        if (
            self._token
            and self._token[0] != rejected
            and self._token[1] - TOKEN_MARGIN_S > clock.time()
        ):
            return self._token[0]
        return None

    async def _from_redis(self, rejected: str | None) -> str | None:
        if self._redis is None:
            return None
        raw = await self._redis.get(self._redis_key)
        if not raw:
            return None
        try:
            rec = json.loads(raw)
            self._token = (str(rec["access_token"]), float(rec["expires_at"]))
        except (ValueError, KeyError, TypeError):
            return None
        return self._cached(rejected)

    async def _fetch_stable(self, force_refresh: bool) -> str:
        body = await self._request(
            "POST",
            "/cgi-bin/stable_token",
            # Asking again for the current token hands out the same one; a forced refresh
            # is not repeated.
            idempotent=not force_refresh,
            json_body={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self._secret,
                "force_refresh": force_refresh,
            },
        )
        token, expires_at = str(body["access_token"]), clock.time() + int(body["expires_in"])
        self._token = (token, expires_at)
        if self._redis is not None:
            ttl = max(1, int(expires_at - clock.time()))
            value = json.dumps({"access_token": token, "expires_at": expires_at})
            await self._redis.set(self._redis_key, value, ex=ttl)
        return token

    async def access_token(self, rejected: str | None = None) -> str:
        """A valid access token; `rejected` is one WeChat just refused (40001/42001)."""
        if token := self._cached(rejected):
            return token
        async with self._lock:
            # Whoever held the lock may have refreshed already: check again before calling.
            if token := (self._cached(rejected) or await self._from_redis(rejected)):
                return token
            token = await self._fetch_stable(force_refresh=False)
            if token == rejected:
                # WeChat still hands out the token it refused: only then force a new one
                # (force_refresh invalidates the token for every other instance too).
                token = await self._fetch_stable(force_refresh=True)
            return token

    async def _call_with_token(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        token = await self.access_token()
        try:
            return await self._request(
                "POST", path, params=self._token_query(token), json_body=body
            )
        except WeChatAPIError as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
        token = await self.access_token(rejected=token)  # refresh once, retry once
        return await self._request("POST", path, params=self._token_query(token), json_body=body)

    def _token_query(self, token: str) -> str:
        # Encoded once per token, not once per message.
        if self._query is None or self._query[0] != token:
            self._query = (token, urlencode({"access_token": token}))
        return self._query[1]

    # -- phone number ------------------------------------------------------------------
    async def get_phone_number(self, code: str) -> PhoneInfo:
        try:
            body = await self._call_with_token("/wxa/business/getuserphonenumber", {"code": code})
        except (WeChatAPIError, WeChatUnavailable) as exc:
            raise _to_domain_error(
                exc, {Err.INVALID_OAUTH_CODE: "wechat_phone_code_invalid"}
            ) from None
        info = PhoneInfo.from_wechat(body["phone_info"])
        if info.watermark_appid != self.appid:
            raise wechat_error("wechat_error", details={"reason": "watermark appid mismatch"})
        return info

    # -- subscribe messages ------------------------------------------------------------
    async def send_subscribe_message(
        self,
        openid: str,
        template_id: str,
        data: dict[str, Any],
        page: str | None = None,
        *,
        miniprogram_state: str = "formal",
        lang: str = "zh_CN",
    ) -> SendResult:
        """Send a one-time subscribe message. Never raises for WeChat's answers: the
        notifications layer acts on `SendResult.outcome`."""
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            # Accept {"thing1": "x"} or WeChat's own {"thing1": {"value": "x"}}.
            "data": {k: v if isinstance(v, dict) else {"value": str(v)} for k, v in data.items()},
            "miniprogram_state": miniprogram_state,
            "lang": lang,
        }
        if page:
            body["page"] = page
        try:
            answer = await self._call_with_token("/cgi-bin/message/subscribe/send", body)
        except (WeChatAPIError, WeChatUnavailable) as exc:
            return _send_result(exc)
        return SendResult(SendOutcome.OK, msgid=answer.get("msgid"))


# -- one shared client for the app -------------------------------------------------------
_client: WeChatClient | None = None


def get_client() -> WeChatClient:
    global _client
    if _client is None:
        _client = WeChatClient()
    return _client


def set_client(client: WeChatClient | None) -> None:
    """Install the app's client (e.g. with Redis, at startup) or clear it (tests)."""
    global _client
    _client = client


async def close_client() -> None:
    global _client
    if _client is not None:
        await _client.aclose()
        _client = None


async def code2session(js_code: str) -> Session:
    return await get_client().code2session(js_code)


async def get_phone_number(code: str) -> PhoneInfo:
    return await get_client().get_phone_number(code)


async def send_subscribe_message(
    openid: str, template_id: str, data: dict[str, Any], page: str | None = None, **kw: Any
) -> SendResult:
    return await get_client().send_subscribe_message(openid, template_id, data, page, **kw)


class WeChatService:
    """Owns the WeChat client for the process (its token cache shared through Redis)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._client: WeChatClient | None = None

    @property
    def client(self) -> WeChatClient:
        if self._client is None:
            raise RuntimeError("the WeChat service is not started")
        return self._client

    async def start(self) -> None:
        s = self._runtime.settings
        self._client = WeChatClient(
            s.wechat_base_url,
            s.wechat_appid,
            s.wechat_secret,
            redis=self._runtime.redis,
            redis_prefix=s.redis_prefix,
        )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()


WECHAT: Key[WeChatService] = Key("wechat")


def install(runtime: Runtime) -> None:
    runtime.provide(WECHAT, WeChatService(runtime))
