"""The composition root: ``create_app`` is the only place adapters are chosen and wired."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from dependency_injector import providers
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from .. import __version__
from ..config import Settings
from .containers import Container
from .errors import install_error_handlers
from .middleware import SecurityHeadersMiddleware
from .rendering import STATIC_DIR, make_templates
from .routes import admin_tokens, api, api_tokens, auth, cli, compare, docs, insights, pages, stream
from .request_limits import RequestLimitsMiddleware
from .security import SESSION_COOKIE
from .transport import TransportSecurityMiddleware

ROUTE_MODULES = (auth, compare, pages, api_tokens, admin_tokens, api, stream, cli, docs, insights)


def build_container(settings: Settings, overrides: Mapping[str, Any] | None = None) -> Container:
    """The container for ``settings``; ``overrides`` maps provider names to ready objects
    (tests pass fakes: ``{"jobs": FakeJobRepository(), ...}``). Unknown names raise ValueError."""
    container = Container(settings=settings)
    for name, value in (overrides or {}).items():
        provider = container.providers.get(name)
        if provider is None or name == "settings":
            raise ValueError(f"no provider named {name!r} to override")
        provider.override(providers.Object(value))
    return container


def create_app(settings: Settings, overrides: Mapping[str, Any] | None = None) -> FastAPI:
    """A ready app. Raises ConfigError (from Settings) when there is no usable session key,
    so the service refuses to start. Nothing connects or starts until the app's lifespan.

    Wiring binds the route modules to this app's container, so one process serves one app
    at a time (tests build a fresh app per test)."""
    session_secret = settings.session_secret()
    container = build_container(settings, overrides)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Open the database now (creating its schema): a bad AUTO_BUILD_DB stops the start.
        await run_in_threadpool(container.jobs().count)
        await run_in_threadpool(container.sessions().purge_expired)
        scheduler = container.scheduler()
        scheduler.start()
        try:
            yield
        finally:
            await scheduler.stop()

    # FastAPI's own /docs (Swagger UI from a CDN) and /openapi.json stay off: routes/docs.py
    # serves both, to signed-in users only, with nothing from elsewhere.
    app = FastAPI(title="Autobuild", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.container = container
    app.state.settings = settings
    app.state.templates = make_templates()

    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret,
        session_cookie=SESSION_COOKIE,
        # The server-side session decides; the cookie need not outlive it.
        max_age=int(settings.session_lifetime.total_seconds()),
        same_site="lax",
    )
    app.add_middleware(TransportSecurityMiddleware, cookie_name=SESSION_COOKIE,
                       force_secure=settings.cookie_secure, hsts_seconds=settings.hsts_seconds)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestLimitsMiddleware)  # outermost: nothing reads a body before it
    install_error_handlers(app)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in ROUTE_MODULES:
        app.include_router(module.router)
    container.wire(modules=list(ROUTE_MODULES))
    return app
