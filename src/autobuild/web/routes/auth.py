"""Signing in and out. Passwords are checked by the Authenticator port (PAM, as the user)."""

from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from ...domain.ports import Authenticator
from ..containers import Container
from ..rendering import render
from ..security import FormCsrf, current_user, flash, safe_next, sign_in, sign_out

router = APIRouter()

# One message for every cause, so the form does not tell which user names exist.
LOGIN_FAILED = "Wrong user name or password, or this account may not use Autobuild."
MAX_FIELD = 256


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
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next_: Annotated[str, Form(alias="next")] = "/",
) -> Response:
    username = username.strip()
    target = safe_next(next_)
    accepted = (
        0 < len(username) <= MAX_FIELD
        and 0 < len(password) <= MAX_FIELD
        # The check starts a process (sudo + PAM): keep it off the event loop.
        and await run_in_threadpool(auth.authenticate, username, password)
    )
    if not accepted:
        context = {"next": target, "username": username[:MAX_FIELD], "error": LOGIN_FAILED}
        return render(request, "login.html", context, status_code=401)
    sign_in(request, username)
    return RedirectResponse(target, status_code=303)


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
