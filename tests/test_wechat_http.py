"""auth.wechat_http, the keep-alive HTTP/1.1 client, against scripted servers on loopback:
framing (Content-Length, chunked, read-to-close, 100 Continue), reuse, a server closing
keep-alive connections, timeouts, garbled and truncated answers, the pool's bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from auth.wechat import SendOutcome, WeChatClient
from auth.wechat_http import (
    ConnectionClosed,
    HTTPPool,
    HTTPTimeout,
    HTTPTransportError,
    ProtocolError,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


class Server:
    """A loopback server whose every connection runs `handler`; it records requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.connections = 0
        self.url = ""

    async def read_request(self, r: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
        head = (await r.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        body = await r.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((head[0], headers, body))
        return head[0], headers, body

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(r, w, self)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[Server]:
    s = Server(handler)
    server = await asyncio.start_server(s._serve, "127.0.0.1", 0)
    s.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield s
    finally:
        server.close()


def ok(body: bytes = b'{"errcode":0,"errmsg":"ok"}', extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


async def keep_alive_ok(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
    while True:
        _, _, body = await s.read_request(r)
        w.write(ok(b'{"echo":' + (body or b"null") + b"}"))
        await w.drain()


async def test_request_format_and_reuse() -> None:
    async with serve(keep_alive_ok) as s:
        pool = HTTPPool(s.url + "/base")
        try:
            for i in range(3):
                resp = await pool.request("POST", f"/x?n={i}", b'{"a":1}')
                assert resp.status == 200 and resp.body == b'{"echo":{"a":1}}'
            assert (await pool.request("GET", "/y")).body == b'{"echo":null}'
        finally:
            await pool.aclose()
    assert s.connections == 1  # one keep-alive connection carried all four
    line, headers, body = s.requests[0]
    assert line == "POST /base/x?n=0 HTTP/1.1"
    assert headers["host"] == s.url.removeprefix("http://")
    assert headers["content-type"] == "application/json" and headers["content-length"] == "7"
    assert s.requests[3][0] == "GET /base/y HTTP/1.1" and "content-length" not in s.requests[3][1]


async def test_chunked_and_interim_answers() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await w.drain()
        for piece in (b'5;ext=1\r\n{"a":\r\n', b"2\r\n1}\r\n", b"0\r\nX-T: 1\r\n\r\n"):
            w.write(piece)  # in pieces: the client must wait for the last chunk
            await w.drain()
            await asyncio.sleep(0.01)
        await s.read_request(r)  # the connection is still in step for a second request
        w.write(ok(b"{}"))
        await w.drain()
        await r.read()  # until the client closes

    async with serve(handler) as s:
        pool = HTTPPool(s.url)
        try:
            assert (await pool.request("POST", "/c", b"{}")).body == b'{"a":1}'
            assert (await pool.request("POST", "/c", b"{}")).body == b"{}"
        finally:
            await pool.aclose()
    assert s.connections == 1


async def test_read_to_close_body() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        w.write(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"errcode":0}')
        await w.drain()

    async with serve(handler) as s:
        pool = HTTPPool(s.url)
        try:
            assert (await pool.request("GET", "/")).body == b'{"errcode":0}'
            assert (await pool.request("GET", "/")).body == b'{"errcode":0}'
        finally:
            await pool.aclose()
    assert s.connections == 2  # "Connection: close" is honoured: never reused


async def test_server_closing_idle_connections_is_transparent() -> None:
    async def one_then_close(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        w.write(ok())
        await w.drain()
        # A keep-alive timeout: the server closes after answering, without saying so.

    async with serve(one_then_close) as s:
        pool = HTTPPool(s.url)
        try:
            for _ in range(3):
                assert (await pool.request("POST", "/send", b"{}")).status == 200
                await asyncio.sleep(0.05)  # the close reaches the client while idle
        finally:
            await pool.aclose()
    assert s.connections == 3 and len(s.requests) == 3  # each sent once


async def test_post_not_resent_when_closed_without_answer() -> None:
    async def swallow(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        if len(s.requests) == 1:
            w.write(ok())
            await w.drain()
            await s.read_request(r)  # second request on the reused connection: read, drop

    async with serve(swallow) as s:
        pool = HTTPPool(s.url)
        try:
            await pool.request("POST", "/send", b"{}")
            with pytest.raises(ConnectionClosed):
                await pool.request("POST", "/send", b"{}")
        finally:
            await pool.aclose()
    assert len(s.requests) == 2  # the POST the server may have acted on is not repeated


async def test_get_resent_once_on_a_fresh_connection() -> None:
    async def swallow(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        if s.connections == 1 and len(s.requests) == 1:
            w.write(ok())
            await w.drain()
            await s.read_request(r)  # dropped without an answer
            return
        w.write(ok(b'{"again":1}'))
        await w.drain()

    async with serve(swallow) as s:
        pool = HTTPPool(s.url)
        try:
            await pool.request("GET", "/token")
            assert (await pool.request("GET", "/token")).body == b'{"again":1}'
        finally:
            await pool.aclose()
    assert s.connections == 2 and len(s.requests) == 3


async def test_timeout_closes_the_connection() -> None:
    async def slow_first(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        while True:
            await s.read_request(r)
            if len(s.requests) == 1:
                await asyncio.sleep(0.5)
            w.write(ok(f'{{"n":{len(s.requests)}}}'.encode()))
            await w.drain()

    async with serve(slow_first) as s:
        pool = HTTPPool(s.url, timeout=0.1)
        try:
            with pytest.raises(HTTPTimeout):
                await pool.request("POST", "/send", b"{}")
            # The late answer to the first request is never read as the second's.
            assert (await pool.request("POST", "/send", b"{}")).body == b'{"n":2}'
        finally:
            await pool.aclose()
    assert s.connections == 2


async def test_connect_refused_and_timeout() -> None:
    pool = HTTPPool("http://127.0.0.1:9", connect_timeout=1.0)  # discard port: nothing listens
    with pytest.raises(HTTPTransportError) as info:
        await pool.request("GET", "/")
    assert "connect to 127.0.0.1:9" in str(info.value)
    await pool.aclose()


@pytest.mark.parametrize(
    "answer",
    [
        b"NOPE 200\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"errcode":0}',  # then closed
        b"HTTP/1.1 200 OK\r\nContent-Le",  # closed in the head
    ],
)
async def test_garbled_or_truncated_answers(answer: bytes) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        w.write(answer)
        await w.drain()

    async with serve(handler) as s:
        pool = HTTPPool(s.url)
        try:
            with pytest.raises(ProtocolError):
                await pool.request("POST", "/send", b"{}")
            assert pool.open_connections == 0
        finally:
            await pool.aclose()


async def test_pool_is_bounded_and_shared() -> None:
    in_flight = 0
    peak = 0

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        nonlocal in_flight, peak
        while True:
            await s.read_request(r)
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            w.write(ok())
            await w.drain()

    async with serve(handler) as s:
        pool = HTTPPool(s.url, size=4)
        try:
            answers = await asyncio.gather(
                *(pool.request("POST", "/send", b"{}") for _ in range(40))
            )
        finally:
            await pool.aclose()
    assert all(a.status == 200 for a in answers)
    assert s.connections == 4 and peak == 4 and len(s.requests) == 40


async def test_wechat_client_maps_transport_failures() -> None:
    """Through WeChatClient: a garbled or missing answer to a subscribe message is
    UNAVAILABLE (retried later by the dispatcher), never OK and never raised."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        while True:
            line, _, _ = await s.read_request(r)
            if "stable_token" in line:
                w.write(ok(b'{"access_token":"T","expires_in":7200}'))
            elif len(s.requests) == 2:
                w.write(b'HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n{"e')
                await w.drain()
                return
            else:
                w.write(ok(b"<html>not json</html>"))
            await w.drain()

    async with serve(handler) as s:
        c = WeChatClient(s.url, "wxapp", "secret")
        try:
            first = await c.send_subscribe_message("o1", "T1", {"thing1": "x"})
            second = await c.send_subscribe_message("o1", "T1", {"thing1": "x"})
        finally:
            await c.aclose()
    assert first.outcome is SendOutcome.UNAVAILABLE and "closed" in first.errmsg
    assert second.outcome is SendOutcome.UNAVAILABLE and "non-JSON" in second.errmsg
    assert s.requests[1][0].startswith("POST /cgi-bin/message/subscribe/send?access_token=T ")


def test_pool_on_uvloop() -> None:
    """uvicorn runs the app on uvloop, whose transports differ from asyncio's."""
    import uvloop

    async def main() -> list[bytes]:
        async with serve(keep_alive_ok) as s:
            pool = HTTPPool(s.url)
            try:
                return [(await pool.request("POST", "/x", b"[1]")).body for _ in range(3)]
            finally:
                await pool.aclose()

    assert uvloop.run(main()) == [b'{"echo":[1]}'] * 3
