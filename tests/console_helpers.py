"""Signing in to the console over HTTP (no browser): for the page and authz tests."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.helpers import STAFF_PASSWORD
from tests.stack import Stack

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = _CSRF.search(html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def anonymous_client(stack: Stack) -> httpx.AsyncClient:
    """A client of its own (its own cookies), on the stack's app."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stack.app), base_url="http://anxin.test", timeout=30
    )


@asynccontextmanager
async def console_client(
    stack: Stack, username: str, password: str = STAFF_PASSWORD
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client holding a console session of `username`, and its CSRF token."""
    async with anonymous_client(stack) as client:
        yield client, await sign_in(client, username, password)


async def sign_in(client: httpx.AsyncClient, username: str, password: str = STAFF_PASSWORD) -> str:
    r = await client.get("/console/login")
    assert r.status_code == 200, r.text
    r = await client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(r.text)},
    )
    assert r.status_code == 303, r.text
    r = await client.get("/console/", follow_redirects=True)
    assert r.status_code == 200, r.text
    return csrf_of(r.text)
