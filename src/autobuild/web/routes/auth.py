"""Signing in and out. Passwords are checked by the Authenticator port (PAM, as the user).

A failed login (whatever the cause) is answered with one message, after the same time from
the start of the request (login_pacing.py), is counted by the LoginThrottle (per user name and
per client address) and logged as one line for fail2ban (docs/fail2ban.md):
``autobuild: login failed for user 'NAME' from ADDRESS``.
"""

import logging
import re
from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...domain.logins import LoginThrottle, LoginThrottled
from ...domain.ports import Authenticator
from ..containers import Container
from ..login_pacing import LoginBusy, LoginPacer
from ..rendering import render
from ..security import FormCsrf, current_user, flash, safe_next, sign_in, sign_out

# HTML pages and forms (documented as text/html; the JSON API is under /api).
router = APIRouter(tags=["sign-in"], default_response_class=HTMLResponse)
log = logging.getLogger(__name__)

# One message for every cause, so the form does not tell which user names exist.
LOGIN_FAILED = "Wrong user name or password, or this account may not use Autobuild."
MAX_FIELD = 256
_UNSAFE_IN_LOG = re.compile(r"[^A-Za-z0-9._@+-]")


def client_address(request: Request) -> str:
    """The client's address (behind nginx, uvicorn takes it from X-Forwarded-For of
    127.0.0.1 only)."""
    return request.client.host if request.client else "unknown"


def log_name(username: str) -> str:
    """``username`` as it may appear in the one-line log: no quotes, spaces or control
    characters a forged name could use to fool fail2ban, at most 64 characters."""
    return _UNSAFE_IN_LOG.sub("?", username[:64])


@router.get("/login")
def login_form(request: Request, next_: Annotated[str, Query(alias="next")] = "/") -> Response:
    target = safe_next(next_)
    if current_user(request):
        return RedirectResponse(target, status_code=303)
    return render(request, "login.html", {"next": target, "username": "", "error": None})


@router.post("/login", dependencies=[FormCsrf])
@inject
async def login(
    request: Request,
    auth: Annotated[Authenticator, Depends(Provide[Container.auth])],
    throttle: Annotated[LoginThrottle, Depends(Provide[Container.login_throttle])],
    pacer: Annotated[LoginPacer, Depends(Provide[Container.login_pacer])],
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next_: Annotated[str, Form(alias="next")] = "/",
) -> Response:
    started = pacer.started()
    username = username.strip()
    target = safe_next(next_)
    address = client_address(request)
    context = {"next": target, "username": username[:MAX_FIELD]}
    try:
        throttle.check(username, address)
    except LoginThrottled as exc:
        log.warning("autobuild: login failed for user '%s' from %s (too many failures, "
                    "not checked)", log_name(username), address)
        return _retry_later(request, context, str(exc), 429, exc.retry_after)
    try:
        accepted = (
            0 < len(username) <= MAX_FIELD
            and 0 < len(password) <= MAX_FIELD
            and await pacer.check(auth.authenticate, username, password)
        )
    except LoginBusy as exc:
        return _retry_later(request, context, str(exc), 503, exc.retry_after)
    if not accepted:
        throttle.failed(username, address)
        log.warning("autobuild: login failed for user '%s' from %s", log_name(username), address)
        await pacer.pad_failure(started)
        return render(request, "login.html", {**context, "error": LOGIN_FAILED}, status_code=401)
    throttle.succeeded(username)
    await run_in_threadpool(sign_in, request, username)
    return RedirectResponse(target, status_code=303)


def _retry_later(request: Request, context: dict, message: str, status_code: int,
                 seconds: int) -> Response:
    response = render(request, "login.html", {**context, "error": message},
                      status_code=status_code)
    response.headers["Retry-After"] = str(seconds)
    return response


@router.get("/logout")
def logout_form(request: Request) -> Response:
    if not current_user(request):
        return RedirectResponse("/login", status_code=303)
    return render(request, "logout.html")


@router.post("/logout", dependencies=[FormCsrf])
def logout(request: Request) -> Response:
    sign_out(request)
    flash(request, "You are signed out.")
    return RedirectResponse("/login", status_code=303)
