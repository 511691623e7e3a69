"""The JSON API's shapes for /openapi.json: what rendering.py's ``*_json`` and the routes
give, and the error answers (errors.py). Documentation only: the routes return their dicts
unchanged (``response_model=None``); tests/web/test_openapi.py checks every answer against
these schemas, so a model that disagrees with a route fails there (the route is right).

Every model forbids extra fields: a field a route starts returning must be documented here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["PENDING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED"]
PhaseName = Literal["starting", "cloning", "checkout", "parsing", "setscene", "tasks",
                    "collecting", "finished"]
Timestamp = str  # ISO-8601 UTC with a trailing Z


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiError(_Shape):
    """Every JSON error: a message fit to show; ``errors`` (field -> message) on a 422 of
    POST /api/jobs."""

    detail: str
    errors: dict[str, str] | None = Field(
        default=None, description="Per field, why it is not acceptable (422 of a build request)")


class Job(_Shape):
    """A job as the API gives it (rendering.job_json)."""

    id: int
    owner: str
    repo_url: str
    ref: str
    machine: str
    target: str
    kas_file: str | None = Field(description="Null: the runner looks for kas.yml itself")
    status: Status
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    exit_code: int | None
    reason: str | None
    cancel_requested_by: str | None
    waiting_reason: str | None
    node: str | None
    commit: str | None = Field(
        description="The full commit id its ref resolved to (provenance); null until it ended, "
                    "or when it ended before the checkout. GET /api/jobs?commit= filters by it")
    commit_short: str | None = Field(description="The commit's first 12 hex digits")
    purged_at: Timestamp | None = Field(description="When its files were removed (retention)")
    duration_seconds: float | None
    can_cancel: bool


class Progress(_Shape):
    """A build's progress (rendering.progress_json); also the SSE ``progress`` event."""

    phase: PhaseName
    label: str
    percent: int | None = Field(description="0-100, null while unknown")
    setscene_done: int
    setscene_total: int | None
    tasks_done: int
    tasks_total: int | None
    current: str | None


class FailedTask(_Shape):
    recipe: str
    task: str
    messages: list[str]
    log_name: str | None
    log_tail: str | None


class Failure(_Shape):
    """Why a build failed, as the job page says it (rendering.failure_json)."""

    disk_problem: str | None
    git_problem: str | None
    tasks: list[FailedTask]
    more_tasks: int
    incomplete: str | None = Field(description="What of the log the summary could not read")


class Packages(_Shape):
    """The package count of the image manifest."""

    count: int
    manifest: str


class Layer(_Shape):
    name: str
    branch: str | None
    revision: str | None


class KasRepo(_Shape):
    name: str
    commit: str
    url: str | None = Field(description="Without credentials; null: the build's own repository")


class Provenance(_Shape):
    """What the build really built: the commit, bitbake's Build Configuration, the layers,
    and for a kas build the kas file and the repositories kas checked out."""

    commit: str | None
    variables: dict[str, str]
    layers: list[Layer]
    kas_file: str | None = Field(description="The kas file a kas build used; null otherwise")
    kas_repos: list[KasRepo]


class JobDetail(Job):
    """GET /api/jobs/{id}: the job with its progress, failure, packages and provenance."""

    progress: Progress
    failure: Failure | None = Field(description="Null unless FAILED with a recognisable cause")
    packages: Packages | None
    provenance: Provenance | None


class JobPage(_Shape):
    """A page of jobs, newest first; ``newer``/``older`` are the neighbouring pages' cursors
    (``?after=`` / ``?before=``), null at either end."""

    items: list[Job]
    per_page: int
    newer: int | None
    older: int | None


class Artifact(_Shape):
    name: str
    size: int
    mtime: Timestamp
    sha256: str | None


class LogChunk(_Shape):
    """A piece of the build log from ``offset``; read on from ``next_offset``."""

    offset: int
    next_offset: int
    text: str
    complete: bool = Field(description="The job is over and this is the end of its log")
    status: Status


class StatusEvent(_Shape):
    """SSE ``status``: first, then on every change."""

    status: Status
    exit_code: int | None
    reason: str | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    waiting_reason: str | None
    node: str | None


class LogEvent(_Shape):
    """SSE ``log``: new log text; the event id is the byte offset after it (Last-Event-ID)."""

    text: str


class EndEvent(_Shape):
    """SSE ``end``: the job is over and the whole log was sent; the stream closes."""

    status: Status
    offset: int


SSE_EVENTS: dict[str, type[BaseModel]] = {
    "status": StatusEvent, "log": LogEvent, "progress": Progress, "end": EndEvent}

_MESSAGES = {
    400: "The request was not understood (a parameter out of range or malformed)",
    401: "Not signed in, or the API token is unknown, revoked or expired",
    403: "Not allowed, or (with a session cookie) no valid X-CSRF-Token",
    404: "No such job, artifact or log",
    409: "The build changed state meanwhile",
    413: "The request body is too large",
    422: "A field of the build request is not acceptable (see errors)",
    429: "A limit was reached (queue, live logs); see Retry-After",
    503: "The build runner could not do this",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that can answer the error ``codes``."""
    answers: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        if code == 416:
            answers[code] = {"description": "The range lies outside the file (no body)"}
        else:
            answers[code] = {"model": ApiError, "description": _MESSAGES[code]}
    return answers


def ok(model: Any, description: str, code: int = 200) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": model, "description": description}}


def sse_components() -> dict[str, Any]:
    """The SSE events' data schemas, for components/schemas (by the model's name)."""
    return {model.__name__: model.model_json_schema(ref_template="#/components/schemas/{model}")
            for model in SSE_EVENTS.values()}


SSE_DESCRIPTION = (
    "Server-Sent Events. Events: "
    + "; ".join(f"`{name}` (data: {model.__name__})" for name, model in SSE_EVENTS.items())
    + ". `log` events carry `id` = the byte offset after them: reconnect with Last-Event-ID "
    "to resume exactly. A comment is sent as keep-alive.")
