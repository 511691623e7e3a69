"""Session, sign-in and CSRF helpers shared by every route.

The cookie is signed and holds ``sid`` (the id of a session the service keeps, see
domain/sessions.py) and pending ``flashes``; before sign-in, the login form's ``csrf`` token.
Who is signed in, and the CSRF token of a signed-in session, are only on the server: signing
out, expiry or leaving the users group ends a session wherever its cookie is.

Routes under /api/ (and /openapi.json) also take a personal API token (domain/api_tokens.py) in
``Authorization: Bearer abt_...``: such a request is its owner's whatever cookie it carries,
needs no CSRF token (no other site can make a browser send that header), and a token that is
not live is a 401 that does not say why. Never in a URL, never on the HTML pages.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Form, Header, Request

from ..domain.api_tokens import ApiTokens, looks_like_token, token_id
from ..domain.jobs import Job, JobStatus
from ..domain.ports import StoredSession
from ..domain.sessions import Sessions

SESSION_COOKIE = "autobuild_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_NO_SESSION = object()
_REFUSED = object()

log = logging.getLogger(__name__)


class LoginRequired(Exception):
    """Nobody is signed in; pages redirect to /login, the API answers 401."""


class CsrfFailed(Exception):
    """A POST came without the session's CSRF token; answered with 403."""

    def __init__(self, back: str) -> None:
        super().__init__("missing or wrong CSRF token")
        self.back = back


def is_api(request: Request) -> bool:
    """JSON answers and API tokens: /api/ and the API's schema, /openapi.json."""
    path = request.url.path
    return path.startswith("/api/") or path == "/openapi.json"


def _sessions(request: Request) -> Sessions:
    return request.app.state.container.sessions()


def signed_in(request: Request) -> StoredSession | None:
    """The live server-side session of this request, looked up once per request (it reads
    the database: call it from a sync dependency or route, which run in the thread pool)."""
    cached = getattr(request.state, "autobuild_session", _NO_SESSION)
    if cached is not _NO_SESSION:
        return cached  # type: ignore[return-value]
    sid = request.session.get("sid")
    session = _sessions(request).resume(sid) if isinstance(sid, str) else None
    if session is None and "sid" in request.session:
        request.session.clear()  # expired, revoked or forged: the browser forgets it
    request.state.autobuild_session = session
    return session


def still_signed_in(request: Request) -> bool:
    """Whether this request's session, or API token, is still live now (looked up again, not
    the cached answer): long-lived responses such as the live log ask it from time to time."""
    presented = bearer_token(request)
    if presented is not None:
        return _api_tokens(request).authenticate(presented) is not None
    sid = request.session.get("sid")
    return isinstance(sid, str) and _sessions(request).resume(sid) is not None


def current_user(request: Request) -> str | None:
    session = signed_in(request)
    return session.user if session is not None else None


def _api_tokens(request: Request) -> ApiTokens:
    return request.app.state.container.api_tokens()


def bearer_token(request: Request) -> str | None:
    """What an /api request sends in ``Authorization: Bearer ...`` (None without such a
    header, and always on other paths: pages take no tokens)."""
    if not is_api(request):
        return None
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None  # none, or another scheme (e.g. Basic added by a proxy in front)
    return value.strip()


def token_user(request: Request) -> str | None:
    """The owner of this request's live API token, looked up once per request; None when it
    sends none; LoginRequired when it sends one that is not live (call it from a sync
    dependency or route: it reads the database)."""
    cached = getattr(request.state, "autobuild_token_user", _NO_SESSION)
    if cached is _REFUSED:
        raise LoginRequired()
    if cached is not _NO_SESSION:
        return cached  # type: ignore[return-value]
    presented = bearer_token(request)
    user = None if presented is None else _api_tokens(request).authenticate(presented)
    if presented is not None and user is None:
        request.state.autobuild_token_user = _REFUSED
        # The id only (never the token): enough to tell which stale token a script still uses.
        shown = token_id(presented) if looks_like_token(presented) else "malformed"
        log.warning("autobuild: API token refused (%s) from %s", shown,
                    request.client.host if request.client else "unknown")
        raise LoginRequired()
    request.state.autobuild_token_user = user
    return user


def require_user(request: Request) -> str:
    """Dependency: the user of this request's API token (on /api), else the signed-in user;
    LoginRequired when there is neither, or the token is not live."""
    user = token_user(request) or current_user(request)
    if user is None:
        raise LoginRequired()
    return user


User = Annotated[str, Depends(require_user)]


def sign_in(request: Request, user: str) -> None:
    """Start a fresh session for ``user`` with a new id: nothing from before sign-in survives
    (no fixation), and the session this browser had before ends."""
    old = request.session.get("sid")
    session = _sessions(request).start(user, replacing=old if isinstance(old, str) else None)
    request.session.clear()
    request.session["sid"] = session.id
    request.state.autobuild_session = session


def sign_out(request: Request) -> None:
    """End the session on the server (every copy of the cookie stops working) and here."""
    sid = request.session.get("sid")
    _sessions(request).end(sid if isinstance(sid, str) else None)
    request.session.clear()
    request.state.autobuild_session = None


def csrf_token(request: Request) -> str:
    """The CSRF token of the signed-in session, or of the login form (created on first use)."""
    session = signed_in(request)
    if session is not None:
        return session.csrf
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def _token_matches(request: Request, sent: str | None) -> bool:
    session = signed_in(request)
    expected = session.csrf if session is not None else request.session.get("csrf")
    if not isinstance(expected, str) or not expected or not sent:
        return False
    # Compare bytes: compare_digest refuses non-ASCII str, and a 500 is no answer to a bad token.
    return secrets.compare_digest(sent.encode("utf-8"), expected.encode("utf-8"))


def _back_link(request: Request) -> str:
    # The page a form was on: a job's for cancel and rebuild, the token list's for the rest.
    return re.sub(r"/(cancel|rebuild|revoke|revoke-owner|find)$", "", request.url.path) or "/"


def require_form_csrf(request: Request, csrf_token: Annotated[str, Form()] = "") -> None:
    """Dependency of every form POST: the hidden ``csrf_token`` field must match the session."""
    if not _token_matches(request, csrf_token):
        raise CsrfFailed(_back_link(request))


def require_header_csrf(
    request: Request, x_csrf_token: Annotated[str, Header()] = ""
) -> None:
    """Dependency of every API POST: the ``X-CSRF-Token`` header must match the session,
    unless the request is made with a live API token (LoginRequired for one not live)."""
    if token_user(request) is not None:
        return
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


@dataclass(frozen=True)
class Flash:
    """A one-shot message: shown on the next page this user sees, then gone. One that tells
    the state of a job (``job_id``) holds only ``while_status`` (e.g. "queued": PENDING): the
    job's page leaves it out, and its script takes it away, once the job has moved on."""

    kind: str
    text: str
    job_id: int | None = None
    while_status: tuple[str, ...] = ()

    def outdated_by(self, job: Job) -> bool:
        """Whether ``job``'s status now says more than this message does."""
        return (self.job_id == job.id and bool(self.while_status)
                and str(job.status) not in self.while_status)


def flash(request: Request, message: str, kind: str = "info", job_id: int | None = None,
          while_status: tuple[JobStatus, ...] = ()) -> None:
    """Show ``message`` once, on the next page this user sees (see Flash)."""
    pending = list(request.session.get("flashes", []))
    pending.append([kind, message, job_id, [str(status) for status in while_status]])
    request.session["flashes"] = pending[-5:]


def pop_flashes(request: Request) -> list[Flash]:
    """The pending messages, taken out of the session: a reload shows them no more."""
    if "flashes" not in request.session:
        return []
    pending = request.session.pop("flashes")
    flashes = []
    for kind, text, *about in pending:  # [kind, text] in cookies from before job_id
        job_id, statuses = (about + [None, []])[:2]
        flashes.append(Flash(str(kind), str(text), job_id if isinstance(job_id, int) else None,
                             tuple(str(s) for s in statuses or ())))
    return flashes
