"""Every engineer's API tokens, for administrators (domain/api_tokens.py TokenAdministration):
the page Settings → API tokens → All engineers' tokens, and the same under /api/admin/tokens.

A leaked token is looked up through a POST (never in a URL, which nginx would log) and is not
shown back: the answer names its id only, with ``Cache-Control: no-store``.
"""

from typing import Annotated, Any
from urllib.parse import urlencode

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Body, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ...domain.api_tokens import MAX_NAME, InvalidApiToken, TokenAdministration
from ...domain.ports import StoredApiToken
from ..containers import Container
from ..rendering import iso, render
from ..schemas import AdminToken, AdminTokenList, RevokedTokens, errors, ok
from ..security import FormCsrf, HeaderCsrf, User, flash, require_user

router = APIRouter()
# HTML pages and forms (tagged "pages", documented as text/html), and the JSON API under /api.
PAGES, HTML = ["pages"], HTMLResponse

Admin = Annotated[TokenAdministration, Depends(Provide[Container.token_admin])]
PAGE = "/settings/api-tokens/all"
API = "/api/admin/tokens"
MAX_PASTE = 1024  # a token is 47 characters; the domain reads at most 256 of what is pasted
Owner = Annotated[str, Form(max_length=MAX_NAME)]
SignedIn = Depends(require_user)  # before the CSRF check: no credentials is a 401, not a 403


def _back(owner: str | None) -> str:
    return PAGE + ("?" + urlencode({"owner": owner}) if owner else "")


def _page(request: Request, user: str, admin: TokenAdministration, owner: str | None = None,
          found: StoredApiToken | None = None, looked_up: bool = False,
          error: str | None = None, status_code: int = 200) -> Response:
    everybody = admin.live(user)
    tokens = [t for t in everybody if t.owner == owner] if owner else everybody
    response = render(request, "admin_api_tokens.html", {
        "tokens": tokens, "owner": owner, "owners": sorted({t.owner for t in everybody}),
        "found": found, "found_state": admin.state(found) if found else None,
        "looked_up": looked_up, "error": error}, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get(PAGE, tags=PAGES, response_class=HTML)
@inject
def all_api_tokens_page(
    request: Request, user: User, admin: Admin,
    owner: Annotated[str, Query(max_length=MAX_NAME)] = "",
) -> Response:
    return _page(request, user, admin, owner=owner.strip() or None)


@router.get(PAGE + "/find", tags=PAGES, response_class=HTML, status_code=303,
            responses={303: {"description": "To the page of all tokens (the form's address, "
                                            "reopened from history)"}})
@inject
def find_api_token_reopened(user: User, admin: Admin) -> Response:
    """The answer to Find is not kept (a token never goes in a URL): back to the page."""
    admin.check(user)
    return RedirectResponse(PAGE, status_code=303)


@router.post(PAGE + "/find", dependencies=[FormCsrf], tags=PAGES, response_class=HTML)
@inject
def find_api_token(
    request: Request, user: User, admin: Admin,
    token: Annotated[str, Form(max_length=MAX_PASTE)] = "",
) -> Response:
    try:
        found = admin.find(user, token)
    except InvalidApiToken as exc:
        return _page(request, user, admin, error=str(exc), status_code=400)
    return _page(request, user, admin, found=found, looked_up=True,
                 status_code=200 if found else 404)


@router.post(PAGE + "/revoke", dependencies=[FormCsrf], tags=PAGES, response_class=HTML)
@inject
def revoke_any_api_token(
    request: Request, user: User, admin: Admin,
    token_id: Annotated[str, Form(alias="id", max_length=64)] = "",
    back_owner: Annotated[str, Form(alias="owner", max_length=MAX_NAME)] = "",
) -> Response:
    revoked = admin.revoke(user, token_id)
    if revoked is None:
        flash(request, "There is no such live token (already revoked?).", "error")
    else:
        flash(request, f"Revoked {revoked.owner}’s token abt_{revoked.id}… "
                       f"(“{revoked.name}”): scripts using it are refused from now on.")
    return RedirectResponse(_back(back_owner.strip()), status_code=303)


@router.post(PAGE + "/revoke-owner", dependencies=[FormCsrf], tags=PAGES, response_class=HTML)
@inject
def revoke_all_api_tokens_of(request: Request, user: User, admin: Admin,
                             owner: Owner = "") -> Response:
    owner = owner.strip()
    revoked = admin.revoke_all(user, owner)
    if revoked:
        ids = ", ".join(f"abt_{token.id}…" for token in revoked)
        if len(revoked) == 1:
            done = f"Revoked {owner}’s only token ({ids}): scripts using it are"
        else:
            done = f"Revoked all {len(revoked)} of {owner}’s tokens ({ids}): scripts using them are"
        flash(request, f"{done} refused from now on.")
    else:
        flash(request, f"{owner or 'Nobody'} has no token to revoke.", "error")
    return RedirectResponse(_back(owner), status_code=303)


# --- JSON ----------------------------------------------------------------------------------

def token_json(token: StoredApiToken, admin: TokenAdministration) -> dict[str, Any]:
    """A token as /api/admin/tokens gives it (never its hash)."""
    return {"id": token.id, "owner": token.owner, "name": token.name,
            "created_at": iso(token.created_at), "last_used_at": iso(token.last_used_at),
            "expires_at": iso(token.expires_at), "revoked_at": iso(token.revoked_at),
            "state": admin.state(token)}


class Lookup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(max_length=MAX_PASTE, description="A leaked token, its first part as "
                       "Settings shows it (abt_ and 8 characters) or its bare id")


class OwnerOnly(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: str = Field(min_length=1, max_length=MAX_NAME)


@router.get(API, response_model=None, tags=["api"],
         responses={**ok(AdminTokenList, "Every live token, by owner, newest first"),
                    **errors(400, 401, 403)})
@inject
def list_all_api_tokens(
    user: User, admin: Admin, owner: Annotated[str, Query(max_length=MAX_NAME)] = "",
) -> dict[str, Any]:
    """Administrators only: every engineer's live API tokens (`?owner=` one engineer's)."""
    return {"items": [token_json(t, admin) for t in admin.live(user, owner.strip() or None)]}


@router.post(API + "/find", dependencies=[SignedIn, HeaderCsrf], response_model=None,
             tags=["api"],
          responses={**ok(AdminToken, "The token it names, whatever its state"),
                     **errors(400, 401, 403, 404)})
@inject
def find_api_token_json(user: User, admin: Admin, body: Annotated[Lookup, Body()]) -> Response:
    """Administrators only: whose is a leaked token (matched by its hash) or an id."""
    try:
        found = admin.find(user, body.token)
    except InvalidApiToken as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    if found is None:
        return JSONResponse({"detail": "No token matches."}, status_code=404)
    return JSONResponse(token_json(found, admin))


@router.post(API + "/{token_id}/revoke", dependencies=[SignedIn, HeaderCsrf],
             response_model=None, tags=["api"],
          responses={**ok(AdminToken, "The token, now revoked"), **errors(401, 403, 404)})
@inject
def revoke_any_api_token_json(token_id: str, user: User, admin: Admin) -> Response:
    """Administrators only: revoke any engineer's token; refused from the next request on."""
    revoked = admin.revoke(user, token_id)
    if revoked is None:
        return JSONResponse({"detail": "There is no such live token (already revoked?)."},
                            status_code=404)
    return JSONResponse(token_json(revoked, admin))


@router.post(API + "/revoke-owner", dependencies=[SignedIn, HeaderCsrf],
             response_model=None, tags=["api"],
          responses={**ok(RevokedTokens, "The tokens revoked (none: an empty list)"),
                     **errors(400, 401, 403)})
@inject
def revoke_all_api_tokens_json(user: User, admin: Admin,
                               body: Annotated[OwnerOnly, Body()]) -> dict[str, Any]:
    """Administrators only: revoke every token of one engineer (e.g. who left)."""
    revoked = admin.revoke_all(user, body.owner.strip())
    return {"owner": body.owner.strip(), "revoked": [token_json(t, admin) for t in revoked]}

