"""Shared fixtures: the fake WeChat server and the service on both backends."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from anxin.clock import clock
from tests.stack import configure_test_secrets

# Tests configure their secrets as an operator would; nothing falls back to a default.
configure_test_secrets()
from miniprogram_mock.fake_wechat import run_fake_wechat  # noqa: E402
from tests.stack import Stack, postgres_available, running_stack  # noqa: E402
from tests.video_support import camera, vstack  # noqa: E402, F401 - video fixtures

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
async def wechat_url() -> AsyncIterator[str]:
    async with run_fake_wechat() as url:
        yield url


@pytest.fixture(scope="session", params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest, wechat_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    backend = request.param
    if backend == "postgres" and not await postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable; CI must test on it")
        pytest.skip("PostgreSQL not reachable")
    async with running_stack(backend, wechat_url, tmp_path_factory.mktemp(backend)) as s:
        yield s


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()
