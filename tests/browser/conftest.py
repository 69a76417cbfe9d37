"""Browser-test fixtures: the app served over real HTTP, and Debian's Chromium driven by
Playwright (from PyPI; never `playwright install`: nothing is downloaded at run time).

Fixtures (reuse them for any browser test, e.g. the resident H5 pages):
- `live_url`: base URL of the stack's app served by uvicorn on a free loopback port (the
  stack is parametrised, so each browser test runs on both backends);
- `browser`: one headless Chromium per session;
- `open_page(lang="zh", width=1280, height=800)`: a fresh context (own cookies) and page;
  it records console errors, page errors and CSP violations, and the test fails at
  teardown if there were any;
- helpers in `tests/browser/support.py`: `sign_in`, `shot` (screenshots under
  `artifacts/screenshots/`), `assert_accessible` (axe-core: no serious/critical issues).
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import uvicorn

from tests.stack import Stack

CHROMIUM = os.environ.get("ANXIN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: scripts/test installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
async def live_url(stack: Stack) -> AsyncIterator[str]:
    """The stack's app (already started by its lifespan) behind a real HTTP server."""
    import asyncio

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        stack.app,
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=1,
        ws="websockets-sansio",  # the resident H5's realtime socket
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@pytest.fixture(scope="session")
async def browser(chromium_path: str) -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


OpenPage = Callable[..., Awaitable[object]]


@pytest.fixture
async def open_page(browser: object, live_url: str) -> AsyncIterator[OpenPage]:
    contexts: list[object] = []
    problems: list[str] = []

    async def _open(
        lang: str = "zh", width: int = 1280, height: int = 800, http_errors: bool = False
    ) -> object:
        """`http_errors`: the page's own 4xx/5xx answers are part of the test (a refused
        photo, a door that did not answer): Chromium's "Failed to load resource" lines
        for them are not problems; script errors still are."""
        context = await browser.new_context(  # type: ignore[attr-defined]
            base_url=live_url,
            viewport={"width": width, "height": height},
            locale="en-US" if lang == "en" else "zh-CN",
        )
        contexts.append(context)
        if lang == "en":
            host = live_url.split("//", 1)[1].split(":")[0]
            await context.add_cookies(
                [{"name": "anxin_lang", "value": "en", "domain": host, "path": "/console"}]
            )
        page = await context.new_page()
        page.on(
            "console",
            lambda msg: (
                problems.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error"
                and "401" not in msg.text
                and "404" not in msg.text
                and not (http_errors and msg.text.startswith("Failed to load resource"))
                else None
            ),
        )
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        return page

    yield _open
    for context in contexts:
        await context.close()  # type: ignore[attr-defined]
    assert not problems, "browser reported problems:\n" + "\n".join(problems)
