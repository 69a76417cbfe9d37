"""Console texts, Chinese first with English beside it.

`t(key, lang)` looks a key up; a page module adds its own texts with `add({...})` so the
whole console stays one table. A missing key shows the key itself (visible in tests).
"""

from __future__ import annotations

from fastapi import Request

LANGS = ("zh", "en")
LANG_COOKIE = "anxin_lang"

_TEXTS: dict[str, tuple[str, str]] = {}


def add(texts: dict[str, tuple[str, str]]) -> None:
    for key, pair in texts.items():
        if key in _TEXTS and _TEXTS[key] != pair:
            raise ValueError(f"console text {key!r} defined twice")
        _TEXTS[key] = pair


def t(key: str, lang: str) -> str:
    pair = _TEXTS.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "en" else pair[0]


def request_lang(request: Request) -> str:
    """The language cookie, else Accept-Language, else Chinese."""
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LANGS:
        return chosen
    accept = request.headers.get("accept-language", "").lower()
    return "en" if accept.startswith("en") else "zh"


add(
    {
        "app.name": ("安心 · 物业管理台", "Anxin · Property console"),
        "app.short": ("安心", "Anxin"),
        "lang.switch": ("English", "中文"),
        "lang.other": ("en", "zh"),
        "login.title": ("工作人员登录", "Staff sign-in"),
        "login.username": ("用户名", "Username"),
        "login.password": ("密码", "Password"),
        "login.submit": ("登录", "Sign in"),
        "logout": ("退出登录", "Sign out"),
        "nav.label": ("主导航", "Main navigation"),
        "nav.menu": ("菜单", "Menu"),
        "nav.communities": ("切换小区", "Switch community"),
        "skip": ("跳到正文", "Skip to content"),
        "error.title": ("出错了", "Something went wrong"),
        "error.back": ("返回首页", "Back to the console"),
        "error.csrf": (
            "页面已过期，请刷新后重试",
            "This page has expired; reload it and try again",
        ),
        "done.saved": ("已保存", "Saved"),
        "done.approved": ("已批准", "Approved"),
        "done.rejected": ("已驳回", "Rejected"),
        "none": ("暂无记录", "Nothing here"),
        "search": ("搜索", "Search"),
        "filter": ("筛选", "Filter"),
        "reason": ("原因", "Reason"),
        "actions": ("操作", "Actions"),
        "time": ("时间", "Time"),
        "state": ("状态", "State"),
        "name": ("名称", "Name"),
        "yes": ("是", "yes"),
        "no": ("否", "no"),
        "prev": ("上一页", "Previous"),
        "next": ("下一页", "Next"),
        "export.csv": ("导出 CSV", "Export CSV"),
        "no_community": (
            "您的账号尚未分配小区，请联系运营人员",
            "Your account has no community yet; ask your operator",
        ),
    }
)
