"""HTTPS: the session cookie is ``Secure`` and HSTS is sent when the request came over HTTPS
(behind nginx, uvicorn takes the scheme from X-Forwarded-Proto of 127.0.0.1 only).
Pure ASGI, so streamed responses pass untouched."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class TransportSecurityMiddleware:
    """``force_secure``: mark the cookie Secure whatever the scheme (AUTO_BUILD_COOKIE_SECURE).
    ``hsts_seconds``: the Strict-Transport-Security max-age over HTTPS; 0 sends none."""

    def __init__(self, app: ASGIApp, cookie_name: str, force_secure: bool = False,
                 hsts_seconds: int = 31536000) -> None:
        self.app = app
        self.cookie_prefix = cookie_name + "="
        self.force_secure = force_secure
        self.hsts = f"max-age={hsts_seconds}" if hsts_seconds > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        if not (https or self.force_secure):
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                cookies = headers.getlist("set-cookie")
                if cookies:
                    del headers["set-cookie"]
                    for cookie in cookies:
                        if cookie.startswith(self.cookie_prefix) and \
                                "; secure" not in cookie.lower():
                            cookie += "; secure"
                        headers.append("set-cookie", cookie)
                if https and self.hsts:
                    headers.setdefault("Strict-Transport-Security", self.hsts)
            await send(message)

        await self.app(scope, receive, send_secure)
