"""Turning errors into answers: an HTML page for the browser, ``{"detail": ...}`` for /api.

Errors a user can cause get a 4xx with a message fit to show; nothing answers with a traceback.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..domain.artifacts import ArtifactNotFound
from ..domain.jobs import InvalidTransition
from ..domain.limits import LimitReached
from ..domain.logs import LogNotFound
from ..domain.ports import RunnerError, StorageFull
from ..domain.requests import InvalidRequest
from ..domain.permissions import NotAllowed
from ..domain.queries import JobNotFound
from .query_values import CLEAR
from .rendering import render
from .security import CsrfFailed, LoginRequired, is_api, login_url

log = logging.getLogger(__name__)

HTTP_MESSAGES = {
    404: "There is no such page.",
    405: "This address does not take that kind of request.",
}


def error_response(
    request: Request,
    status_code: int,
    message: str,
    title: str | None = None,
    back: str | None = None,
    extra: dict | None = None,
    anonymous: bool = False,
) -> Response:
    if is_api(request):
        return JSONResponse({"detail": message, **(extra or {})}, status_code=status_code)
    context = {"status_code": status_code, "title": title or "Something is not right",
               "message": message, "back": back}
    return render(request, "error.html", context, status_code=status_code, anonymous=anonymous)


async def _login_required(request: Request, exc: Exception) -> Response:
    if is_api(request):
        # The same answer for no credentials and for an unknown, revoked or expired token.
        return JSONResponse({"detail": "Sign in first."}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    return RedirectResponse(login_url(request), status_code=303)


async def _csrf_failed(request: Request, exc: Exception) -> Response:
    back = exc.back if isinstance(exc, CsrfFailed) else "/"
    message = ("This form was not sent from an open Autobuild page, or it has expired. "
               "Go back, reload the page and try again.")
    return error_response(request, 403, message, "Form expired", back)


async def _job_not_found(request: Request, exc: Exception) -> Response:
    return error_response(request, 404, f"Build #{exc.args[0]} does not exist.",
                          "No such build", "/")


async def _artifact_not_found(request: Request, exc: Exception) -> Response:
    return error_response(request, 404, "This build has no artifact of that name.",
                          "No such artifact")


async def _log_not_found(request: Request, exc: Exception) -> Response:
    return error_response(request, 404, "This build has no log yet.", "No log")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return error_response(request, 403, str(exc), "Not allowed")


async def _invalid_request(request: Request, exc: Exception) -> Response:
    errors = exc.errors if isinstance(exc, InvalidRequest) else {}
    return error_response(request, 422, str(exc), "The build request is not valid",
                          extra={"errors": errors})


LIMIT_RETRY_SECONDS = 30


async def _storage_full(request: Request, exc: Exception) -> Response:
    message = (f"{str(exc)[:1].upper()}{str(exc)[1:]}: nothing was saved. Ask the admin to "
               "free space, then try again.")
    # Rendered without the session: the session store is on the same full disk.
    return error_response(request, 507, message, "Disk full", request.url.path, anonymous=True)



async def _limit_reached(request: Request, exc: Exception) -> Response:
    response = error_response(request, 429, str(exc), "Limit reached", "/")
    response.headers["Retry-After"] = str(LIMIT_RETRY_SECONDS)
    return response


async def _invalid_transition(request: Request, exc: Exception) -> Response:
    return error_response(request, 409, "The build changed state meanwhile; reload and retry.",
                          "Conflict")


async def _runner_error(request: Request, exc: Exception) -> Response:
    return error_response(request, 503, f"The build runner could not do this: {exc}",
                          "Runner unavailable")


async def _validation_error(request: Request, exc: Exception) -> Response:
    problems, clear = [], []
    for error in exc.errors() if isinstance(exc, RequestValidationError) else []:
        if error.get("type") == CLEAR:  # a message fit to show as it is (query_values.py)
            clear.append(str(error.get("msg")))
            continue
        where = ".".join(str(part) for part in error.get("loc", ())[1:]) or "request"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    if clear and not problems:
        return error_response(request, 400, " ".join(clear), "Bad request")
    message = "The request was not understood: " + ("; ".join(clear + problems)
                                                     or "invalid input")
    return error_response(request, 400, message, "Bad request")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = HTTP_MESSAGES.get(exc.status_code, str(exc.detail))
    response = error_response(request, exc.status_code, message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, "Something went wrong on the server; it has been "
                          "logged. Try again, or ask the administrator.", "Server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(CsrfFailed, _csrf_failed)
    app.add_exception_handler(JobNotFound, _job_not_found)
    app.add_exception_handler(ArtifactNotFound, _artifact_not_found)
    app.add_exception_handler(LogNotFound, _log_not_found)
    app.add_exception_handler(NotAllowed, _not_allowed)
    app.add_exception_handler(InvalidRequest, _invalid_request)
    app.add_exception_handler(InvalidTransition, _invalid_transition)
    app.add_exception_handler(LimitReached, _limit_reached)
    app.add_exception_handler(RunnerError, _runner_error)
    app.add_exception_handler(StorageFull, _storage_full)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _server_error)
