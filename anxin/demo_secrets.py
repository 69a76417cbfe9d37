"""The demo's own secrets: generated on its first run, kept in its data dir, reused after.

Nothing in the source is a usable secret (Settings.check_secrets refuses the ones that
ever were). `anxin demo` on loopback calls `load_or_create` and puts what it returns into
its environment unless the operator configured a value; bound to any other address it
refuses to generate secrets at all (a reachable server is configured, not improvised).
The file is created with mode 0600 and refused when others can read it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import stat
from pathlib import Path

from anxin.crypto import generate_key_spec

FILE_NAME = "secrets.json"
# Environment variable -> how a fresh value is made.
GENERATED = {
    "ANXIN_JWT_SECRET": lambda: secrets.token_urlsafe(48),
    "ANXIN_FACE_KEYS": lambda: generate_key_spec("demo1"),
    # The demo's fake WeChat is started with these too, so they are as private as the rest.
    "ANXIN_WECHAT_APPID": lambda: "wx" + secrets.token_hex(8),
    "ANXIN_WECHAT_SECRET": lambda: secrets.token_hex(16),
}


class DemoSecretsError(RuntimeError):
    pass


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_or_create(data_dir: Path) -> dict[str, str]:
    """The demo's secrets from data_dir/secrets.json, made (mode 0600) when missing; a
    value missing from an older file is added."""
    path = Path(data_dir) / FILE_NAME
    values: dict[str, str] = {}
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise DemoSecretsError(
                f"{path} is readable by others (mode {mode:o}); chmod 600 it or delete it"
            )
        values = json.loads(path.read_text())
    missing = {k: make() for k, make in GENERATED.items() if not values.get(k)}
    if missing:
        values.update(missing)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(values, f, indent=1)
        os.replace(tmp, path)
    return values


def apply_demo_secrets(host: str, data_dir: Path, environ: dict[str, str] | None = None) -> None:
    """Fill the environment's missing secrets from the demo's file (loopback only)."""
    env = os.environ if environ is None else environ
    if all(env.get(k) for k in GENERATED):
        return  # all configured by the operator
    if not is_loopback(host):
        missing = ", ".join(k for k in GENERATED if not env.get(k))
        raise DemoSecretsError(
            f"the demo generates secrets only when bound to loopback; bound to {host}, set "
            f"{missing} yourself"
        )
    for key, value in load_or_create(data_dir).items():
        if not env.get(key):
            env[key] = value
