"""Helpers for browser tests: sign in, screenshots, accessibility (axe-core)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tests.helpers import STAFF_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("ANXIN_SCREENSHOT_DIR", ROOT / "artifacts" / "screenshots"))
AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1" / "axe.min.js"
TABLET = {"width": 820, "height": 1180}
PHONE = {"width": 390, "height": 844}


async def sign_in(page: Any, username: str, password: str = STAFF_PASSWORD) -> None:
    await page.goto("/console/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("form button[type=submit]")
    await page.wait_for_load_state("domcontentloaded")
    assert "/console/login" not in page.url, await page.inner_text("body")


async def shot(page: Any, name: str, lang: str = "zh", backend: str = "") -> Path:
    """Save a full-page screenshot: artifacts/screenshots/<backend>/<lang>/<name>.png."""
    folder = SCREENSHOTS / (backend or "any") / lang
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{re.sub(r'[^A-Za-z0-9_-]', '_', name)}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def assert_accessible(page: Any, what: str = "") -> None:
    """axe-core on the page as it stands: no serious or critical violation."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        # evaluate() runs through the DevTools protocol, so the page's CSP does not block it
        await page.evaluate(AXE.read_text())
    result = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
    )
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"accessibility violations on {what or page.url}: {bad}"


async def assert_fits(page: Any, what: str = "") -> None:
    """Usable at this width: the page does not scroll sideways (tables scroll in place)."""
    await page.wait_for_timeout(150)  # let resize observers redraw the charts
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{what or page.url} is {overflow}px wider than the screen"
