"""Settings → API tokens: an engineer makes, lists and revokes their own personal API tokens.

A new token is shown once, on the page that answers the form (never through a redirect: the
session cookie is signed, not encrypted), with ``Cache-Control: no-store``.
"""

from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...domain.api_tokens import (
    ApiTokens, InvalidApiToken, NewApiToken, TokenAdministration, parse_expiry_days,
)
from ..containers import Container
from ..rendering import render
from ..security import FormCsrf, User, flash

# HTML pages and forms (documented as text/html; the JSON API is under /api).
router = APIRouter(tags=["pages"], default_response_class=HTMLResponse)

Tokens = Annotated[ApiTokens, Depends(Provide[Container.api_tokens])]
Admin = Annotated[TokenAdministration, Depends(Provide[Container.token_admin])]
PAGE = "/settings/api-tokens"


def _page(request: Request, user: str, tokens: ApiTokens, admin: TokenAdministration,
          made: NewApiToken | None = None, error: str | None = None,
          values: dict[str, str] | None = None, status_code: int = 200) -> Response:
    listed = [(token, tokens.is_expired(token)) for token in tokens.list(user)]
    response = render(request, "api_tokens.html", {
        "tokens": listed, "made": made, "error": error,
        "administers": admin.may_administer(user),
        "values": values or {"name": "", "expires_days": ""}}, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get(PAGE)
@inject
def api_tokens_page(request: Request, user: User, tokens: Tokens, admin: Admin) -> Response:
    return _page(request, user, tokens, admin)


@router.post(PAGE, dependencies=[FormCsrf])
@inject
def create_api_token(
    request: Request, user: User, tokens: Tokens, admin: Admin,
    name: Annotated[str, Form(max_length=1024)] = "",
    expires_days: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    values = {"name": name[:64], "expires_days": expires_days[:8]}
    try:
        made = tokens.create(user, name, parse_expiry_days(expires_days))
    except InvalidApiToken as exc:
        return _page(request, user, tokens, admin, error=str(exc), values=values,
                     status_code=400)
    return _page(request, user, tokens, admin, made=made, status_code=201)


@router.post(PAGE + "/revoke", dependencies=[FormCsrf])
@inject
def revoke_api_token(
    request: Request, user: User, tokens: Tokens,
    token_id: Annotated[str, Form(alias="id", max_length=64)] = "",
) -> Response:
    if tokens.revoke(user, token_id):
        flash(request, f"Token abt_{token_id}… is revoked: scripts using it are refused from "
                       "now on.")
    else:
        flash(request, "You have no such token (already revoked?).", "error")
    return RedirectResponse(PAGE, status_code=303)
