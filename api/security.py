"""Security middleware: the client's real address (proxies trusted only when configured) and
the security headers every response carries. Pure ASGI, no body buffering."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Every response: never sniff a type (an uploaded "photo" is never run as HTML or script),
# never framed, never leaks its URL (pass share links carry a secret) as a referrer.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
# Anything that is not a page (JSON, images, files) may load and run nothing; pages set
# their own policy (the API docs, the console, the share page).
NON_HTML_CSP = b"default-src 'none'; frame-ancestors 'none'"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authenticated = any(k == b"authorization" for k, _ in scope.get("headers", []))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if b"content-security-policy" not in present and not content_type.startswith(
                    b"text/html"
                ):
                    headers.append((b"content-security-policy", NON_HTML_CSP))
                if authenticated and b"cache-control" not in present:
                    # A person's own data is never kept by a shared cache.
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def parse_networks(spec: str) -> list[Network]:
    """'10.0.0.0/8, 127.0.0.1' -> networks; a bad entry is a configuration error."""
    items = [item.strip() for item in spec.split(",")]
    return [ipaddress.ip_network(item, strict=False) for item in items if item]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_from_forwarded(peer: str, forwarded_for: str, trusted: Sequence[Network]) -> str:
    """The client address: the peer, unless the peer is a trusted proxy; then the
    right-most X-Forwarded-For entry that is not itself a trusted proxy (entries left of
    it were written by the client and prove nothing)."""

    def is_trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return addr is not None and any(addr in net for net in trusted)

    if not trusted or not is_trusted(_address(peer)):
        return peer
    client = peer
    for hop in reversed([h for h in forwarded_for.split(",") if h.strip()]):
        addr = _address(hop)
        if addr is None:
            break  # garbage: stop at the last address we could vouch for
        client = str(addr)
        if not is_trusted(addr):
            break
    return client


class ClientAddressMiddleware:
    """Sets scope["client"] from X-Forwarded-For only when the peer is a configured proxy
    (ANXIN_TRUSTED_PROXIES; default none, so the header is ignored)."""

    def __init__(self, app: ASGIApp, trusted: Sequence[Network] = ()) -> None:
        self.app = app
        self.trusted = list(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.trusted and scope["type"] in ("http", "websocket") and scope.get("client"):
            headers = [v for k, v in scope.get("headers", []) if k == b"x-forwarded-for"]
            if headers:
                host, port = scope["client"]
                forwarded = b",".join(headers).decode("latin-1")
                real = client_from_forwarded(host, forwarded, self.trusted)
                if real != host:
                    scope = {**scope, "client": (real, 0)}
        await self.app(scope, receive, send)
