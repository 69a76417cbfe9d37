"""No secret from the source is ever accepted; a server without secrets refuses to start,
except the demo on loopback, which makes its own (mode 0600) and keeps them."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from anxin.clock import clock
from anxin.crypto import generate_key_spec
from anxin.demo_secrets import (
    GENERATED,
    DemoSecretsError,
    apply_demo_secrets,
    load_or_create,
)
from anxin.settings import InsecureConfiguration, Settings
from auth.tokens import decode_access_token
from miniprogram_mock.fake_wechat import FAKE_APPID, FAKE_SECRET
from tests.stack import Stack

ROOT = Path(__file__).resolve().parents[1]
OLD_PUBLIC_SECRET = "dev-only-insecure-secret-change-me"  # the default before issue 10
MODES = ("development", "test", "production")


def good(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "jwt_secret": "j" * 48,
        "face_keys": generate_key_spec("k1"),
        "wechat_appid": "wx1234567890abcdef",
        "wechat_secret": "0123456789abcdef0123456789abcdef",
        "wechat_base_url": "https://api.weixin.qq.com",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def forged(secret: str, sub: str = "staff:1") -> str:
    now = int(clock.time())
    claims = {"iss": "anxin", "sub": sub, "typ": "access", "iat": now, "exp": now + 600}
    return jwt.encode({**claims, "jti": "x", "roles": {"1": ["admin"]}}, secret, "HS256")


@pytest.mark.parametrize("env", MODES)
def test_old_public_secret_refused_in_every_mode(env: str) -> None:
    settings = good(env=env, jwt_secret=OLD_PUBLIC_SECRET)
    with pytest.raises(InsecureConfiguration):
        settings.check_secrets()
    # Also where settings were built some other way than the server's start.
    with pytest.raises(InsecureConfiguration):
        decode_access_token(settings, forged(OLD_PUBLIC_SECRET))


async def test_token_signed_with_the_old_default_is_refused(stack: Stack) -> None:
    r = await stack.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {forged(OLD_PUBLIC_SECRET)}"}
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_invalid"


@pytest.mark.parametrize("env", MODES)
def test_no_configured_secrets_no_start(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in GENERATED:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(InsecureConfiguration) as exc:
        Settings(env=env).check_secrets()
    text = str(exc.value)
    assert "ANXIN_JWT_SECRET" in text and "ANXIN_FACE_KEYS" in text and "WECHAT" in text
    with pytest.raises(InsecureConfiguration):
        good(env=env, jwt_secret="short").check_secrets()
    with pytest.raises(InsecureConfiguration):
        good(env=env, face_keys="").check_secrets()
    good(env=env).check_secrets()  # fully configured: fine


async def test_app_refuses_to_start_with_the_old_secret() -> None:
    from asgi_lifespan import LifespanManager

    from boot.roles import build_app

    app = build_app(good(jwt_secret=OLD_PUBLIC_SECRET))
    with pytest.raises(InsecureConfiguration):
        async with LifespanManager(app):
            pass


@pytest.mark.parametrize(
    ("overrides", "what"),
    [
        ({"wechat_base_url": "http://127.0.0.1:8765"}, "the fake on loopback"),
        ({"wechat_base_url": "http://api.weixin.qq.com"}, "plain http"),
        ({"wechat_base_url": "https://weixin.qq.com.evil.example"}, "look-alike host"),
        ({"wechat_appid": FAKE_APPID}, "the fake's app id"),
        ({"wechat_secret": FAKE_SECRET}, "the fake's secret"),
    ],
)
def test_production_refuses_the_fake_wechat(overrides: dict[str, str], what: str) -> None:
    with pytest.raises(InsecureConfiguration):
        good(env="production", **overrides).check_secrets()
    good(env="development", **overrides).check_secrets()  # the fake is for development


def test_production_accepts_real_wechat_hosts() -> None:
    for url in ("https://api.weixin.qq.com", "https://sh.api.weixin.qq.com/"):
        good(env="production", wechat_base_url=url).check_secrets()


def test_demo_secrets_are_made_once_private_and_reused(tmp_path: Path) -> None:
    first = load_or_create(tmp_path)
    path = tmp_path / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(first) == set(GENERATED)
    assert load_or_create(tmp_path) == first  # reused, not regenerated
    other = load_or_create(tmp_path / "elsewhere")
    assert all(first[k] != other[k] for k in GENERATED)  # random per data dir
    settings = Settings(
        jwt_secret=first["ANXIN_JWT_SECRET"],
        face_keys=first["ANXIN_FACE_KEYS"],
        wechat_appid=first["ANXIN_WECHAT_APPID"],
        wechat_secret=first["ANXIN_WECHAT_SECRET"],
    )
    settings.check_secrets()
    path.chmod(0o644)
    with pytest.raises(DemoSecretsError):
        load_or_create(tmp_path)  # others can read it: refused, not used


def test_demo_makes_secrets_only_on_loopback(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    apply_demo_secrets("127.0.0.1", tmp_path, env)
    assert all(env[k] for k in GENERATED)
    configured = {"ANXIN_JWT_SECRET": "mine" * 10}
    apply_demo_secrets("::1", tmp_path, configured)
    assert configured["ANXIN_JWT_SECRET"] == "mine" * 10  # the operator's value wins
    for host in ("0.0.0.0", "192.168.1.5", "demo.example.com"):
        with pytest.raises(DemoSecretsError):
            apply_demo_secrets(host, tmp_path / host, {})
        assert not (tmp_path / host / "secrets.json").exists()


def _cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANXIN_")}
    for key in ("DATABASE_URL", "REDIS_URL", "MQTT_URL"):
        env.pop(key, None)
    env.update(
        PYTHONPATH=str(ROOT),
        ANXIN_DATA_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite://{tmp_path / 'demo.sqlite3'}",
    )
    return env


def test_serve_without_secrets_refuses(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "boot.cli", "serve", "--port", "1"],
        cwd=ROOT,
        env=_cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "refusing to start" in proc.stderr and "ANXIN_JWT_SECRET" in proc.stderr


def test_demo_on_a_public_address_without_secrets_refuses(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "boot.cli", "demo", "--host", "0.0.0.0", "--port", "1"],
        cwd=ROOT,
        env=_cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "loopback" in proc.stderr
    assert not (tmp_path / "secrets.json").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_demo(tmp_path: Path, port: int, wechat_port: int) -> subprocess.Popen[str]:
    env = _cli_env(tmp_path) | {
        "ANXIN_DEMO_PASSWORD": "demo-password-for-test",
        "ANXIN_EMBEDDED_BROKER_PORT": str(_free_port()),
    }
    args = ["demo", "--port", str(port), "--wechat-port", str(wechat_port)]
    return subprocess.Popen(
        [sys.executable, "-m", "boot.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_ready(proc: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"demo exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("demo did not start")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_demo_generates_its_secrets_and_keeps_them_across_restarts(tmp_path: Path) -> None:
    port, wechat_port = _free_port(), _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start_demo(tmp_path, port, wechat_port)
    try:
        _wait_ready(proc, url)
        login = httpx.post(
            url + "/api/v1/auth/staff/login",
            json={"username": "admin", "password": "demo-password-for-test"},
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        # The fake WeChat answers with the demo's own app id, not the published one.
        code = httpx.post(f"http://127.0.0.1:{wechat_port}/__mock__/login", json={}).json()
        r = httpx.post(url + "/api/v1/auth/wechat/login", json={"js_code": code["code"]})
        assert r.status_code == 200, r.text
    finally:
        _stop(proc)
    path = tmp_path / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["ANXIN_WECHAT_APPID"] != FAKE_APPID
    assert saved["ANXIN_JWT_SECRET"] != OLD_PUBLIC_SECRET
    proc = _start_demo(tmp_path, port, wechat_port)
    try:
        _wait_ready(proc, url)
        # Same secrets after the restart: the earlier login is still good.
        me = httpx.get(url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
    finally:
        _stop(proc)
    assert json.loads(path.read_text()) == saved
