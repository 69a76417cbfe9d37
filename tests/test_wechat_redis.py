"""Access-token sharing through a real Redis (skipped when redis-server is not installed)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from auth.wechat import WeChatClient
from miniprogram_mock.fake_wechat import STABLE_TOKEN, run_fake_wechat
from miniprogram_mock.wechat_control import FakeWeChatControl

redis_asyncio = pytest.importorskip("redis.asyncio")
pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path_factory.mktemp("redis")),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[object]:
    r = redis_asyncio.from_url(redis_url)
    await r.flushdb()
    yield r
    await r.aclose()


async def test_two_instances_share_one_token(redis: object) -> None:
    async with run_fake_wechat(port=0) as url:
        ctl = FakeWeChatControl(url)
        a = WeChatClient(url, redis=redis, redis_prefix="anxin-test:")
        b = WeChatClient(url, redis=redis, redis_prefix="anxin-test:")
        try:
            token = await a.access_token()
            key = f"anxin-test:wechat:access_token:{a.appid}"
            assert 7000 < await redis.ttl(key) <= 7200
            tokens = await asyncio.gather(*(b.access_token() for _ in range(5)))
            assert set(tokens) == {token}
            assert (await ctl.stats())[STABLE_TOKEN] == 1
            # Another instance refreshed after a rejection: b picks that up from Redis.
            await ctl.expire_tokens()
            fresh = await a.access_token(rejected=token)
            assert fresh != token
            assert await b.access_token(rejected=token) == fresh
            assert (await ctl.stats())[STABLE_TOKEN] == 2
        finally:
            await a.aclose()
            await b.aclose()
            await ctl.aclose()
