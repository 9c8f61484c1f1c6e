"""ASGI middlewares in front of the app: the bearer token check, the Host check (without a
token) and the request size limit.

Plain ASGI (not route dependencies) so they also cover /openapi.json and /docs, and answer
before a request body is read.
"""

from __future__ import annotations

import hmac
import ipaddress
import json


async def _send_json(send, status: int, body: dict, headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": base + (headers or [])})
    await send({"type": "http.response.body", "body": payload})


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


class BearerTokenGuard:
    """Every HTTP request but those to ``open_paths`` needs ``Authorization: Bearer TOKEN``:
    none gives 401, a wrong one 403. Compared in constant time."""

    def __init__(self, app, token: str, open_paths=("/health",)):
        self.app = app
        self.token = token.encode()
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            return await self.app(scope, receive, send)
        value = _header(scope, b"authorization")
        scheme, _, given = (value or b"").partition(b" ")
        if value is None or scheme.lower() != b"bearer" or not given.strip():
            return await _send_json(
                send,
                401,
                {"detail": "missing token: send the header 'Authorization: Bearer TOKEN'"},
                [(b"www-authenticate", b"Bearer")],
            )
        if not hmac.compare_digest(given.strip(), self.token):
            return await _send_json(send, 403, {"detail": "wrong token"})
        return await self.app(scope, receive, send)


def host_of(header: str) -> str | None:
    """The host part of a Host header, lower case, without port or IPv6 brackets:
    'LocalHost:8765' -> 'localhost', '[::1]:8765' -> '::1'. None when it is malformed."""
    header = header.strip().lower()
    if header.startswith("["):  # [IPv6] or [IPv6]:port
        host, bracket, rest = header[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return host
    if header.count(":") > 1:  # a bare IPv6 address (not valid in Host, but unambiguous)
        return header
    host, colon, port = header.partition(":")
    if colon and not port.isdigit():
        return None
    return host


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (as host_of gives them)."""
    if host.rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LocalHostGuard:
    """Without a token, only requests addressed to this machine by name are served: a Host
    header that is not a loopback name/address (or the exact host the server was bound to)
    gets 403. This stops DNS rebinding, where a web page's own domain is pointed at 127.0.0.1
    so the browser lets that page talk to the backend (its Host header stays the page's name)."""

    def __init__(self, app, bound_host: str | None = None):
        self.app = app
        self.bound_host = host_of(bound_host) if bound_host else None

    def allowed(self, header: str) -> bool:
        host = host_of(header)
        return host is not None and (is_loopback_host(host) or host == self.bound_host)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        value = _header(scope, b"host")
        # No Host at all (HTTP/1.0 tools) is let through: browsers, the rebinding vector, always send it.
        if value is not None and not self.allowed(value.decode("latin-1")):
            shown = value.decode("latin-1")[:100]
            return await _send_json(
                send,
                403,
                {
                    "detail": f"Host header {shown!r} is not this machine; without --token the backend"
                    " only answers requests addressed to localhost, 127.0.0.1 or [::1] (DNS rebinding"
                    " guard): use http://127.0.0.1:PORT, or start the backend with --token"
                },
            )
        return await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Requests whose body is over ``max_bytes`` get 413: by their Content-Length before
    anything is read, and by counting the bytes as they arrive (chunked or lying clients)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> dict:
        return {"detail": f"request too large: the limit is {self.max_bytes} bytes (--max-request-mb)"}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = _header(scope, b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
            return await _send_json(send, 413, self._message(), [(b"connection", b"close")])

        received = 0
        too_large = False
        response_started = False

        async def counting_receive():
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message):
            nonlocal response_started
            if too_large:
                return  # the app's answer to the broken read is replaced by our 413
            response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            pass
        if too_large and not response_started:
            await _send_json(send, 413, self._message(), [(b"connection", b"close")])
