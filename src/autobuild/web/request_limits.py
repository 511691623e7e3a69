"""Request size limits, before any route reads a byte: bodies over ``max_body`` get 413,
too many or too long header lines get 431. (nginx in front refuses header blocks beyond its
buffers before they get here.)
Pure ASGI: a body is counted as it arrives, so a chunked upload without Content-Length is
cut off at the limit too."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 64 * 1024  # every form and API body of Autobuild is far smaller
MAX_HEADERS = 100
MAX_HEADER_LINE = 8 * 1024


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the body passes the limit; the app's error handlers turn
    it into the 413 page or JSON (FastAPI lets HTTPExceptions out of body parsing)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large(limit))


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY, max_headers: int = MAX_HEADERS,
                 max_header_line: int = MAX_HEADER_LINE) -> None:
        self.app = app
        self.max_body = max_body
        self.max_headers = max_headers
        self.max_header_line = max_header_line

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        if len(headers) > self.max_headers or any(
                len(name) + len(value) + 2 > self.max_header_line for name, value in headers):
            await _answer(scope, send, 431, "The request headers are too large.")
            return
        declared = _content_length(headers)
        if declared is not None and declared > self.max_body:
            await _answer(scope, send, 413, _too_large(self.max_body))
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await _answer(scope, send, 413, _too_large(self.max_body))


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(limit: int) -> str:
    return f"The request is too large (at most {limit // 1024} KiB)."


async def _answer(scope: Scope, send: Send, status: int, message: str) -> None:
    """A short answer in the shape the client expects: JSON for /api, else plain text."""
    if str(scope.get("path", "")).startswith("/api/"):
        body, kind = json.dumps({"detail": message}).encode(), b"application/json"
    else:
        body, kind = message.encode(), b"text/plain; charset=utf-8"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
