"""Domain errors: what went wrong, in words a person reads and a code a program keeps.

Every error has a stable machine-readable `code` ("door_no_ack", "pass_revoked"...), a
Chinese and an English text, optional `details`, and a *kind* (its class): not found,
forbidden, conflict, invalid... The domain raises them and knows nothing of transports.
Each adapter translates the kind once: `api/errors.py` to an HTTP status and the one error
body (`{"error": {"code", "message", "message_zh", "message_en", "request_id",
"details"}}`), the device bridge to a refusal reason written to the access log.

Raise a kind (`raise Conflict("pass_revoked", zh, en)`) or use a factory below.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """Base of every error a person may be shown. Raise a kind, not this class."""

    kind: ClassVar[str] = "invalid"

    def __init__(self, code: str, zh: str, en: str, details: Any = None) -> None:
        super().__init__(f"{code}: {en}")
        self.code = code
        self.zh = zh
        self.en = en
        self.details = details

    def message(self, lang: str = "zh") -> str:
        return self.en if lang == "en" else self.zh

    def body(self, lang: str = "zh", request_id: str | None = None) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message(lang),
                "message_zh": self.zh,
                "message_en": self.en,
                "request_id": request_id,
                "details": self.details,
            }
        }


class BadRequest(DomainError):
    """The request cannot be read at all (malformed, wrong encoding)."""

    kind = "bad_request"


class Invalid(DomainError):
    """Readable, but breaks a rule about its content (a field, a file, a photo)."""

    kind = "invalid"


class Unauthenticated(DomainError):
    """No valid login (missing, expired or revoked credentials)."""

    kind = "unauthenticated"


class Forbidden(DomainError):
    """Known caller, not allowed to do this (role, community, account blocked, policy)."""

    kind = "forbidden"


class NotFound(DomainError):
    """No such thing, or one the caller may not see (the two are not told apart)."""

    kind = "not_found"


class Conflict(DomainError):
    """The thing's current state does not allow this (already used, revoked, taken)."""

    kind = "conflict"


class Gone(DomainError):
    """It existed and is no longer available (expired challenge, deleted photo)."""

    kind = "gone"


class TooLarge(DomainError):
    """Over a size cap (upload, file, image)."""

    kind = "too_large"


class Unsupported(DomainError):
    """A type or format this system does not take."""

    kind = "unsupported"


class RateLimited(DomainError):
    """Too many attempts; `retry_after` seconds until the next is allowed."""

    kind = "rate_limited"

    def __init__(
        self, code: str, zh: str, en: str, details: Any = None, *, retry_after: int | None = None
    ) -> None:
        if retry_after:
            details = {**(details or {}), "retry_after": retry_after}
        super().__init__(code, zh, en, details)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A service this needs (WeChat, a broker) cannot be reached now; try again later."""

    kind = "unavailable"


class UpstreamFailed(DomainError):
    """A device or an outside service answered, but refused or failed."""

    kind = "upstream_failed"


class UpstreamTimeout(DomainError):
    """A device or an outside service did not answer in time."""

    kind = "upstream_timeout"


KINDS: tuple[type[DomainError], ...] = (
    BadRequest,
    Invalid,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    Gone,
    TooLarge,
    Unsupported,
    RateLimited,
    Unavailable,
    UpstreamFailed,
    UpstreamTimeout,
)


def not_found(what: str = "resource") -> NotFound:
    """One not-found for everything, also for rows the caller may not see (no id probing)."""
    return NotFound("not_found", "未找到该记录", f"{what} not found")


def forbidden(en: str = "not allowed", zh: str = "无权执行此操作") -> Forbidden:
    return Forbidden("forbidden", zh, en)


def unauthorized(
    code: str = "unauthorized", en: str = "login required", zh: str = "请先登录"
) -> Unauthenticated:
    return Unauthenticated(code, zh, en)


def conflict(code: str, zh: str, en: str, details: Any = None) -> Conflict:
    return Conflict(code, zh, en, details)


def invalid(code: str, zh: str, en: str, details: Any = None) -> Invalid:
    return Invalid(code, zh, en, details)


def too_many(
    code: str = "rate_limited",
    zh: str = "操作过于频繁，请稍后再试",
    en: str = "too many requests, try later",
    retry_after: int | None = None,
) -> RateLimited:
    return RateLimited(code, zh, en, retry_after=retry_after)
