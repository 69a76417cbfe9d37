"""Words for codes: refusal reasons, methods, results, roles, alarm kinds (zh, en)."""

from __future__ import annotations

from domain.access.policy import REASONS

METHODS = {
    "face": ("人脸", "face"),
    "card": ("门禁卡", "card"),
    "qr": ("二维码通行证", "QR pass"),
    "code": ("住户密码", "household code"),
    "plate": ("车牌", "plate"),
    "remote": ("手机开门", "phone"),
    "intercom": ("可视对讲", "intercom"),
    "staff": ("值班开门", "staff open"),
}
RESULTS = {
    "granted": ("放行", "granted"),
    "denied": ("拒绝", "refused"),
    "failed": ("未执行", "failed"),
}
ROLES = {
    "admin": ("管理员", "admin"),
    "approver": ("审核员", "approver"),
    "guard": ("门岗", "guard"),
    "security": ("治安保卫", "security"),
}


def pick(table: dict[str, tuple[str, str]], code: str, lang: str) -> str:
    pair = table.get(code)
    if pair is None:
        return code.replace("_", " ")
    return pair[1] if lang == "en" else pair[0]


def reason(code: str, lang: str) -> str:
    """A refusal (or grant) reason in words; an unknown code shows as itself."""
    return pick(REASONS, code, lang)
