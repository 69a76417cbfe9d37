"""A lean HTTP/1.1 client for the WeChat server API: a small pool of keep-alive connections.

WeChat's subscribe message has no batch API, so a notice to a whole community is one
HTTPS call per resident; a general-purpose client (httpx: httpcore, anyio, h11) spent
~8 ms of CPU on each. This one speaks only what WeChat needs: a request with a JSON body
(or none) on a persistent connection (TLS when the URL is https), an answer with
Content-Length, chunked or read-to-close framing, and nothing else.

- `size` connections at most; idle ones are reused, and one the server has closed while
  idle (keep-alive timeout) is dropped before use.
- `connect_timeout` for opening a connection, `timeout` for the whole request once a
  connection is held; a request that times out closes its connection (a late answer
  must not be read as the next request's).
- A request is sent once. Only an `idempotent` request (a GET, the token fetch) is sent
  again, once, on a fresh connection, and only when a reused connection closed before any
  byte of the answer: the server dropped an idle connection as we wrote to it. A
  subscribe message that fails that way is reported as a transport failure and its
  delivery retried with backoff by the dispatcher, as any other.
- Every failure is an `HTTPTransportError` (`TimeoutError` subclass `HTTPTimeout` for
  timeouts), with the connection closed; a garbled answer is a `ProtocolError`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD = 16 * 1024  # status line and headers
MAX_BODY = 4 * 1024 * 1024  # WeChat's JSON answers are a few hundred bytes


class HTTPTransportError(Exception):
    """No usable answer: the connection failed, closed, timed out or spoke nonsense."""


class HTTPTimeout(HTTPTransportError, TimeoutError):
    pass


class ProtocolError(HTTPTransportError):
    """The answer is not HTTP/1.1 as we read it (garbled, truncated, too large)."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case; a repeated header keeps its last value
    body: bytes


class _Incomplete(Exception):
    pass


def _parse(buf: bytearray, closed: bool) -> tuple[Response, int, bool] | None:
    """A whole response at the start of `buf`: (response, bytes used, keep-alive), or
    None when more bytes are needed. `closed`: the peer has closed (read-to-close ends)."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise ProtocolError("response head too large")
            if closed:
                raise ProtocolError("connection closed in the response head")
            return None
        lines = bytes(buf[:end]).split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise ProtocolError(f"bad status line {lines[0][:60]!r}")
        try:
            status = int(status_line[1])
        except ValueError:
            raise ProtocolError(f"bad status {status_line[1][:10]!r}") from None
        if not 100 <= status <= 599:
            raise ProtocolError(f"bad status {status}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise ProtocolError(f"bad header line {line[:60]!r}")
            headers[name.decode("latin-1").lower()] = value.strip().decode("latin-1")
        start = end + 4
        if 100 <= status < 200:  # 100 Continue and friends: an interim answer, skip it
            del buf[:start]
            continue
        break
    keep_alive = status_line[0] == b"HTTP/1.1" and headers.get("connection", "").lower() != (
        "close"
    )
    if status in (204, 304):
        return Response(status, headers, b""), start, keep_alive
    if "chunked" in headers.get("transfer-encoding", "").lower():
        try:
            body, used = _chunked(buf, start)
        except _Incomplete:
            if closed:
                raise ProtocolError("connection closed in a chunked body") from None
            return None
        return Response(status, headers, body), used, keep_alive
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ProtocolError(f"bad content-length {length[:20]!r}")
        n = int(length)
        if n > MAX_BODY:
            raise ProtocolError("response body too large")
        if len(buf) - start < n:
            if closed:
                raise ProtocolError("connection closed before the whole body came")
            return None
        return Response(status, headers, bytes(buf[start : start + n])), start + n, keep_alive
    # Neither: the body runs to the end of the connection.
    if len(buf) - start > MAX_BODY:
        raise ProtocolError("response body too large")
    if not closed:
        return None
    return Response(status, headers, bytes(buf[start:])), len(buf), False


def _chunked(buf: bytearray, pos: int) -> tuple[bytes, int]:
    parts: list[bytes] = []
    total = 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > 1024:
                raise ProtocolError("bad chunk size line")
            raise _Incomplete
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        pos = eol + 2
        if size == 0:
            # Trailers (if any) end with an empty line.
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    raise _Incomplete
                if eol == pos:
                    return b"".join(parts), eol + 2
                pos = eol + 2
        total += size
        if total > MAX_BODY:
            raise ProtocolError("response body too large")
        if len(buf) < pos + size + 2:
            raise _Incomplete
        if buf[pos + size : pos + size + 2] != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.keep_alive = True
        self.used = False  # has carried a request before (a reused connection)

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None or self.waiter.done():
            # Bytes nobody asked for: the connection is no longer in step; drop it.
            self.keep_alive = False
            self.close()
            return
        self._try_finish(closed=False)

    def eof_received(self) -> bool | None:
        self._peer_closed(None)
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._peer_closed(exc)

    def _peer_closed(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is None or self.waiter.done():
            return
        if self.buf:  # a body that runs to the close ends here; anything else is cut short
            self._try_finish(closed=True)
        else:
            reason = f": {type(exc).__name__}" if exc else ""
            self.waiter.set_exception(
                ConnectionClosed(f"connection closed before an answer{reason}", True)
            )

    # -- use -----------------------------------------------------------------------------
    def _try_finish(self, *, closed: bool) -> None:
        assert self.waiter is not None
        try:
            parsed = _parse(self.buf, closed)
        except ProtocolError as exc:
            self.keep_alive = False
            self.waiter.set_exception(exc)
            self.close()
            return
        if parsed is None:
            return
        response, used, keep_alive = parsed
        del self.buf[:used]
        if self.buf or not keep_alive:  # extra bytes: out of step; or the server said close
            self.keep_alive = False
        self.waiter.set_result(response)

    def usable(self) -> bool:
        return (
            not self.closed
            and self.keep_alive
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def send(self, data: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.waiter = loop.create_future()
        self.used = True
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class ConnectionClosed(HTTPTransportError):
    def __init__(self, message: str, nothing_received: bool) -> None:
        super().__init__(message)
        self.nothing_received = nothing_received
        self.reused = False  # set by the pool: the connection had carried a request


class HTTPPool:
    """Keep-alive connections to one origin (scheme, host, port)."""

    def __init__(
        self,
        base_url: str,
        *,
        size: int = 32,
        timeout: float = 5.0,
        connect_timeout: float = 3.0,
        user_agent: str = "anxin",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.https = url.scheme == "https"
        self.host = url.hostname
        self.port = url.port or (443 if self.https else 80)
        self.prefix = url.path.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._ssl = (ssl_context or ssl.create_default_context()) if self.https else None
        default_port = self.port == (443 if self.https else 80)
        host_header = self.host if default_port else f"{self.host}:{self.port}"
        if ":" in self.host and not self.host.startswith("["):  # an IPv6 literal
            host_header = f"[{self.host}]" if default_port else f"[{self.host}]:{self.port}"
        self._fixed = f"Host: {host_header}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\n"
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(size)
        self._all: set[_Connection] = set()
        self._closed = False

    async def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        *,
        content_type: str = "application/json",
        idempotent: bool | None = None,
    ) -> Response:
        """`target`: the path (and query) under the base URL."""
        if self._closed:
            raise HTTPTransportError("client closed")
        head = f"{method} {self.prefix}{target} HTTP/1.1\r\n{self._fixed}"
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        data = (head + "\r\n").encode("latin-1") + (body or b"")
        retry_ok = method in ("GET", "HEAD") if idempotent is None else idempotent
        async with self._slots:
            try:
                return await self._once(data)
            except ConnectionClosed as exc:
                if not (retry_ok and exc.nothing_received and exc.reused):
                    raise
            return await self._once(data, fresh=True)

    async def _once(self, data: bytes, *, fresh: bool = False) -> Response:
        conn = None if fresh else self._take_idle()
        reused = conn is not None
        if conn is None:
            conn = await self._connect()
        loop = asyncio.get_running_loop()
        waiter = conn.send(data, loop)
        timer = loop.call_later(self.timeout, _expire, waiter)
        try:
            response = await waiter
        except ConnectionClosed as exc:
            exc.reused = reused
            self._drop(conn)
            raise
        except BaseException:  # timeout, garbled answer, or the caller cancelled
            self._drop(conn)
            raise
        finally:
            timer.cancel()
        conn.waiter = None
        if conn.usable() and not self._closed:
            self._idle.append(conn)
        else:
            self._drop(conn)
        return response

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()  # the most recently used: least likely closed by now
            if conn.usable():
                return conn
            self._drop(conn)
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                transport, conn = await loop.create_connection(
                    _Connection,
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                )
        except TimeoutError:
            raise HTTPTimeout(f"connect to {self.host}:{self.port} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise HTTPTransportError(f"connect to {self.host}:{self.port}: {exc}") from None
        conn.transport = transport  # uvloop may call connection_made after this returns
        self._all.add(conn)
        return conn

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        self._all.discard(conn)

    async def aclose(self) -> None:
        self._closed = True
        self._idle.clear()
        for conn in list(self._all):
            self._drop(conn)
        await asyncio.sleep(0)  # let the transports close

    @property
    def open_connections(self) -> int:
        return sum(1 for c in self._all if not c.closed)


def _expire(waiter: asyncio.Future[Response]) -> None:
    if not waiter.done():
        waiter.set_exception(HTTPTimeout("no answer in time"))
