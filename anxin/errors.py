"""One error format for the whole API, with stable machine-readable codes.

Every 4xx/5xx body is `{"error": {"code", "message", "message_zh", "message_en",
"request_id", "details"}}`. `message` is in the caller's language (Chinese first).
Domain functions raise `AppError`; routes never build error bodies themselves.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status: int = 400

    def __init__(
        self,
        code: str,
        zh: str,
        en: str,
        status: int | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(f"{code}: {en}")
        self.code = code
        self.zh = zh
        self.en = en
        if status is not None:
            self.status = status
        self.details = details

    def body(self, lang: str = "zh", request_id: str | None = None) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.en if lang == "en" else self.zh,
                "message_zh": self.zh,
                "message_en": self.en,
                "request_id": request_id,
                "details": self.details,
            }
        }


def not_found(what: str = "resource") -> AppError:
    """One not-found for everything, also for rows the caller may not see (no id probing)."""
    return AppError("not_found", "未找到该记录", f"{what} not found", 404)


def forbidden(en: str = "not allowed", zh: str = "无权执行此操作") -> AppError:
    return AppError("forbidden", zh, en, 403)


def unauthorized(
    code: str = "unauthorized", en: str = "login required", zh: str = "请先登录"
) -> AppError:
    return AppError(code, zh, en, 401)


def conflict(code: str, zh: str, en: str, details: Any = None) -> AppError:
    return AppError(code, zh, en, 409, details)


def invalid(code: str, zh: str, en: str, details: Any = None) -> AppError:
    return AppError(code, zh, en, 422, details)


def too_many(
    code: str = "rate_limited",
    zh: str = "操作过于频繁，请稍后再试",
    en: str = "too many requests, try later",
    retry_after: int | None = None,
) -> AppError:
    return AppError(code, zh, en, 429, {"retry_after": retry_after} if retry_after else None)
