"""Session, sign-in and CSRF helpers shared by every route.

The session (a signed cookie) holds ``user``, ``csrf`` and pending ``flashes``; nothing else.
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Form, Header, Request

SESSION_COOKIE = "autobuild_session"
SESSION_MAX_AGE = 7 * 24 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class LoginRequired(Exception):
    """Nobody is signed in; pages redirect to /login, the API answers 401."""


class CsrfFailed(Exception):
    """A POST came without the session's CSRF token; answered with 403."""

    def __init__(self, back: str) -> None:
        super().__init__("missing or wrong CSRF token")
        self.back = back


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def current_user(request: Request) -> str | None:
    user = request.session.get("user")
    return user if isinstance(user, str) and user else None


def require_user(request: Request) -> str:
    """Dependency: the signed-in user name, or LoginRequired."""
    user = current_user(request)
    if user is None:
        raise LoginRequired()
    return user


User = Annotated[str, Depends(require_user)]


def sign_in(request: Request, user: str) -> None:
    """Start a fresh session for ``user``: nothing from before sign-in survives (no fixation)."""
    request.session.clear()
    request.session["user"] = user
    request.session["csrf"] = secrets.token_urlsafe(32)


def sign_out(request: Request) -> None:
    request.session.clear()


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def _token_matches(request: Request, sent: str | None) -> bool:
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not expected or not sent:
        return False
    # Compare bytes: compare_digest refuses non-ASCII str, and a 500 is no answer to a bad token.
    return secrets.compare_digest(sent.encode("utf-8"), expected.encode("utf-8"))


def _back_link(request: Request) -> str:
    return re.sub(r"/(cancel|rebuild)$", "", request.url.path) or "/"


def require_form_csrf(request: Request, csrf_token: Annotated[str, Form()] = "") -> None:
    """Dependency of every form POST: the hidden ``csrf_token`` field must match the session."""
    if not _token_matches(request, csrf_token):
        raise CsrfFailed(_back_link(request))


def require_header_csrf(
    request: Request, x_csrf_token: Annotated[str, Header()] = ""
) -> None:
    """Dependency of every API POST: the ``X-CSRF-Token`` header must match the session."""
    if not _token_matches(request, x_csrf_token):
        raise CsrfFailed(_back_link(request))


FormCsrf = Depends(require_form_csrf)
HeaderCsrf = Depends(require_header_csrf)


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else "/" (no open redirect via ?next=)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def login_url(request: Request) -> str:
    """/login with ``next`` pointing back at the page that was asked for."""
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return "/login?next=" + quote(target, safe="/")


def flash(request: Request, message: str, kind: str = "info") -> None:
    """Show ``message`` on the next page this user sees."""
    pending = list(request.session.get("flashes", []))
    pending.append([kind, message])
    request.session["flashes"] = pending[-5:]


def pop_flashes(request: Request) -> list[tuple[str, str]]:
    if "flashes" not in request.session:
        return []
    pending = request.session.pop("flashes")
    return [(str(kind), str(text)) for kind, text in pending]
