"""The HTML pages: job list, new build, job page, cancel/rebuild forms, settings (/profile)."""

from typing import Annotated
from urllib.parse import urlencode, urlsplit

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...domain.failures import FailureSummary
from ...domain.jobs import Job, JobStatus
from ...domain.ports import Clock, RunnerError, TokenStore
from ...domain.provenance import short_commit
from ...domain.requests import InvalidRequest
from ...domain.commands import JobCommands
from ...domain.comparison import BuildComparisons, previous
from ...domain.permissions import Permissions
from ...domain.queries import JobNotFound, JobQueries
from ...domain.suggestions import BuildSuggestions, FormSuggestions
from ...scheduler import Scheduler
from ..containers import Container
from ..job_list_params import ListParams
from ..rendering import render
from ..security import FormCsrf, User, flash

# HTML pages and forms (documented as text/html; the JSON API is under /api).
router = APIRouter(tags=["pages"], default_response_class=HTMLResponse)

Queries = Annotated[JobQueries, Depends(Provide[Container.queries])]
Commands = Annotated[JobCommands, Depends(Provide[Container.commands])]
Perms = Annotated[Permissions, Depends(Provide[Container.permissions])]
Tokens = Annotated[TokenStore, Depends(Provide[Container.tokens])]
Sched = Annotated[Scheduler, Depends(Provide[Container.scheduler])]
Now = Annotated[Clock, Depends(Provide[Container.clock])]
Suggest = Annotated[BuildSuggestions, Depends(Provide[Container.suggestions])]
Comparisons = Annotated[BuildComparisons, Depends(Provide[Container.comparisons])]

PER_PAGE = 25
FIELDS = ("repo_url", "ref", "machine", "target", "kas_file")
NEW_JOB_DEFAULTS = {"repo_url": "", "ref": "main", "machine": "", "target": "core-image-minimal",
                    "kas_file": ""}
MAX_TOKEN_LENGTH = 512  # the runner's own limit


@router.get("/")
@inject
def job_list(request: Request, user: User, service: Queries, perms: Perms, clock: Now,
             params: ListParams) -> Response:
    result = service.list_page(params.where, PER_PAGE, params.before, params.after, params.page)
    progress = {job.id: service.progress(job.id) for job in result.items
                if job.status is JobStatus.RUNNING}
    cancellable = {job.id for job in result.items if perms.may_cancel(job, user)}
    newer = None if result.newer is None else "/?" + urlencode(params.query(after=result.newer))
    older = None if result.older is None else "/?" + urlencode(params.query(before=result.older))
    return render(request, "jobs.html", {
        "page": result, "now": clock.now(), "progress": progress, "cancellable": cancellable,
        "filters": params.where, "statuses": [status.value for status in JobStatus],
        "newer_href": newer, "older_href": older})


def _token_on_file(tokens: TokenStore, user: str) -> bool | None:
    """Whether the user saved a token; None when the runner cannot tell (shown as unknown)."""
    try:
        return tokens.has_token(user)
    except RunnerError:
        return None


def _new_job_page(
    request: Request,
    user: str,
    tokens: TokenStore,
    values: dict[str, str],
    suggestions: FormSuggestions,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    copied_from: dict[str, object] | None = None,
    prefilled_from: int | None = None,
) -> Response:
    context = {
        "values": values,
        "errors": errors or {},
        "token_on_file": _token_on_file(tokens, user),
        "copied_from": copied_from,
        "suggestions": suggestions,
        "prefilled_from": prefilled_from,
    }
    return render(request, "new_job.html", context, status_code=status_code)


@router.get("/new")
@inject
def new_job_form(
    request: Request,
    user: User,
    service: Queries,
    tokens: Tokens,
    suggest: Suggest,
    from_: Annotated[str, Query(alias="from")] = "",
    exact: Annotated[str, Query()] = "",
) -> Response:
    """The form, filled from build `from` (Edit and rebuild, Build this as mine; with
    `exact=1` the commit it built as the ref, when it recorded one), else from the user's
    last build, else with the defaults."""
    suggestions = suggest.for_user(user)
    values = dict(NEW_JOB_DEFAULTS)
    copied_from = None
    prefilled_from = None
    if suggestions.last is not None:
        values.update({name: value for name, value in suggestions.last.items() if value})
        prefilled_from = suggestions.last_id
    if from_.isascii() and from_.isdigit() and len(from_) <= 12:
        try:
            old = service.get(int(from_))
        except JobNotFound:
            pass  # a stale link: start from the defaults
        else:
            values = {name: getattr(old, name) or "" for name in FIELDS}
            prefilled_from = None
            if exact == "1" and old.commit:
                values["ref"] = old.commit
            if old.owner != user:
                copied_from = {"id": old.id, "owner": old.owner,
                               "host": urlsplit(old.repo_url).hostname or old.repo_url}
    return _new_job_page(request, user, tokens, values, suggestions, copied_from=copied_from,
                         prefilled_from=prefilled_from)


@router.post("/new", dependencies=[FormCsrf])
@inject
def submit_job(
    request: Request,
    user: User,
    commands: Commands,
    tokens: Tokens,
    scheduler: Sched,
    suggest: Suggest,
    repo_url: Annotated[str, Form()] = "",
    ref: Annotated[str, Form()] = "",
    machine: Annotated[str, Form()] = "",
    target: Annotated[str, Form()] = "",
    kas_file: Annotated[str, Form()] = "",
) -> Response:
    values = {"repo_url": repo_url, "ref": ref, "machine": machine, "target": target,
              "kas_file": kas_file}
    try:
        job = commands.submit(user, **values)
    except InvalidRequest as exc:
        # The user's own input comes back as typed, never replaced by their last build's.
        return _new_job_page(request, user, tokens, values, suggest.for_user(user),
                             exc.errors, status_code=422)
    scheduler.wake()
    flash(request, f"Build #{job.id} is queued.", job_id=job.id,
          while_status=(JobStatus.PENDING,))
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id:jobid}")
@inject
def job_page(request: Request, job_id: int, user: User, service: Queries, perms: Perms,
             clock: Now, comparisons: Comparisons) -> Response:
    job = service.get(job_id)
    compare_with = comparisons.candidates(job)  # the "Compare with build #…" form
    context = {
        "job": job,
        "artifacts": service.artifacts(job_id),
        "packages": service.packages(job_id),
        "provenance": service.provenance(job_id),
        "cache": service.cache_reuse(job_id),
        "now": clock.now(),
        "can_cancel": perms.may_cancel(job, user),
        "progress": None if job.is_terminal else service.progress(job_id),
        "failure": _failure_of(service, job),
        "log_size": service.log_size(job_id),  # the log view opens at its tail
        "retention_days": request.app.state.settings.retention_days,
        "compare_with": compare_with, "compare_default": previous(job, compare_with),
        "timing": service.timing(job_id) if job.is_terminal and not job.purged_at else None,
    }
    return render(request, "job.html", context)


def _failure_of(service: JobQueries, job: Job) -> FailureSummary | None:
    """What the log says about the failure of a FAILED job; None otherwise or if nothing."""
    if job.status is not JobStatus.FAILED:
        return None
    summary = service.failure_summary(job.id)
    return None if summary.is_empty else summary


@router.get("/jobs/{job_id:jobid}/failure")
@inject
def job_failure(request: Request, job_id: int, user: User, service: Queries) -> Response:
    """The "Why it failed" box alone, for the job page to show when a build fails live."""
    failure = _failure_of(service, service.get(job_id))
    if failure is None:
        return Response(status_code=204)
    return render(request, "_failure.html", {"failure": failure})


@router.post("/jobs/{job_id:jobid}/cancel", dependencies=[FormCsrf])
@inject
def cancel_job(
    request: Request, job_id: int, user: User, commands: Commands, scheduler: Sched,
    back: Annotated[str, Form()] = "",
) -> Response:
    try:
        job = commands.cancel(job_id, user)
    except RunnerError as exc:
        flash(request, f"Build #{job_id} goes on: {exc}", job_id=job_id,
              while_status=(JobStatus.PENDING, JobStatus.RUNNING))
        return RedirectResponse("/" if back == "list" else f"/jobs/{job_id}", status_code=303)
    scheduler.wake()
    if job.status is JobStatus.CANCELLED and job.cancel_requested_by is None:
        flash(request, f"Build #{job_id} was cancelled before it started.")
    elif job.status is JobStatus.RUNNING:
        flash(request, f"Build #{job_id} has been asked to stop; it shows CANCELLED once it has.",
              job_id=job_id, while_status=(JobStatus.RUNNING,))
    else:
        flash(request, f"Build #{job_id} had already ended ({job.status}).")
    # Only a fixed choice of where to go back to: a free URL would be an open redirect.
    return RedirectResponse("/" if back == "list" else f"/jobs/{job_id}", status_code=303)


@router.post("/jobs/{job_id:jobid}/rebuild", dependencies=[FormCsrf])
@inject
def rebuild_job(
    request: Request, job_id: int, user: User, commands: Commands, scheduler: Sched,
    exact: Annotated[str, Form()] = "",
) -> Response:
    """The job's Rebuild buttons: the same ref, or (`exact=1`) the commit it built."""
    job = commands.rebuild(job_id, user, exact=exact == "1")
    scheduler.wake()
    what = f"commit {short_commit(job.ref)} of #{job_id}" if exact == "1" else f"#{job_id}"
    flash(request, f"Build #{job.id} is queued: a rebuild of {what}.", job_id=job.id,
          while_status=(JobStatus.PENDING,))
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be a GitLab token (the runner's rules), or None."""
    if not token:
        return "Paste your GitLab personal access token first."
    if len(token) > MAX_TOKEN_LENGTH:
        return f"That is longer than any GitLab token ({MAX_TOKEN_LENGTH} characters at most)."
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in token):
        return "A token has no spaces or line breaks inside; copy it again."
    return None


def _settings_page(
    request: Request, user: str, tokens: TokenStore, error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {"token_on_file": _token_on_file(tokens, user), "error": error,
               "action": request.url.path}
    return render(request, "settings.html", context, status_code=status_code)


@router.get("/settings")
@router.get("/profile")
@inject
def settings_page(request: Request, user: User, tokens: Tokens) -> Response:
    return _settings_page(request, user, tokens)


@router.post("/settings", dependencies=[FormCsrf])
@router.post("/profile", dependencies=[FormCsrf])
@inject
def save_token(
    request: Request, user: User, tokens: Tokens, token: Annotated[str, Form()] = ""
) -> Response:
    token = token.strip()
    problem = token_problem(token)
    if problem:
        return _settings_page(request, user, tokens, problem, status_code=400)
    try:
        tokens.store(user, token)
    except RunnerError as exc:  # the message says why (sudo refused, runner rule...)
        message = str(exc)[:1].upper() + str(exc)[1:]
        return _settings_page(request, user, tokens, message, status_code=503)
    flash(request, "Your GitLab token is saved. New builds clone with it.")
    return RedirectResponse(request.url.path, status_code=303)
