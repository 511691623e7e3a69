"""The JSON API's shapes for /openapi.json: what rendering.py's `*_json` and the routes
give, and the error answers (errors.py). Documentation only: the routes return their dicts
unchanged (`response_model=None`); tests/web/test_openapi.py checks every answer against
these schemas, so a model that disagrees with a route fails there (the route is right).

Every model forbids extra fields: a field a route starts returning must be documented here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..domain.artifacts import MAX_ARTIFACTS_LISTED

Status = Literal["PENDING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED"]
PhaseName = Literal["starting", "cloning", "checkout", "parsing", "setscene", "tasks",
                    "collecting", "finished"]
Timestamp = str  # ISO-8601 UTC with a trailing Z


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiError(_Shape):
    """Every JSON error: a message fit to show; `errors` (field -> message) on a 422 of
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
    """A build's progress (rendering.progress_json); also the SSE `progress` event."""

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
    read_bytes: int | None = Field(description=(
        "Set while the summary has read the log only up to this byte (a later request goes "
        "on from there); null otherwise"))
    log_bytes: int | None = Field(description="The log's size in bytes when `read_bytes` is set")


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


class CacheReuse(_Shape):
    """What the sstate cache saved a build (insights_render.cache_json), from bitbake's
    "Sstate summary" (added up when bitbake ran more than once), its "Running setscene
    task" / "Running task" lines and its Tasks Summary."""

    summaries: int = Field(description="How many sstate summaries the log has")
    wanted: int
    found: int = Field(description="Objects reused: local + mirrors")
    local: int | None = Field(description="Found in SSTATE_DIR (null: bitbake only said Found)")
    mirrors: int | None = Field(description="Found on SSTATE_MIRRORS (null: unknown)")
    missed: int
    current: int
    match_percent: int | None = Field(
        description="found / wanted, as bitbake prints it; null when nothing was wanted "
                    "(every task already current) or without a summary")
    complete_percent: int | None
    setscene_tasks: int = Field(description="Setscene tasks run (restored from sstate)")
    tasks_run: int = Field(description="Real tasks run")
    noexec_tasks: int
    tasks_attempted: int | None = Field(description="From the Tasks Summary (null before it)")
    tasks_not_rerun: int | None
    tasks_failed: int | None


class JobDetail(Job):
    """GET /api/jobs/{id}: the job with its progress, failure, packages, provenance and cache
    reuse."""

    progress: Progress
    failure: Failure | None = Field(description="Null unless FAILED with a recognisable cause")
    packages: Packages | None
    provenance: Provenance | None
    cache: CacheReuse | None = Field(description="Null while the log says nothing of sstate")


class ImageSize(_Shape):
    """The largest image artifact of a build: its name and size in bytes."""

    name: str
    size: int


class BuildPoint(_Shape):
    """One ended build on the team view or a trend (insights_render.point_json)."""

    id: int
    owner: str
    status: Status
    repo_url: str
    machine: str
    target: str
    finished_at: Timestamp | None
    duration_seconds: float | None
    match_percent: int | None
    cache: CacheReuse | None
    image: ImageSize | None = Field(description="The largest image artifact")
    packages: int | None = Field(description="Packages in the image manifest")


class TeamReuse(_Shape):
    """GET /api/insights/reuse: the last ended builds (at most `limit`), oldest first."""

    limit: int
    median_match_percent: float | None = Field(
        description="Median match of the builds that printed an sstate summary, each build "
                    "counting once: what the team's builds typically reuse (null: none did)")
    average_match_percent: float | None = Field(
        description="Mean match of the builds that printed an sstate summary")
    found: int = Field(deprecated=True,
                       description="sstate objects reused, summed over these builds as their "
                                   "logs say: one build's log can make it any size, so it is "
                                   "no measure of the team (read median_match_percent)")
    wanted: int = Field(deprecated=True, description="sstate objects wanted, summed as found is")
    builds: list[BuildPoint]


class Trend(_Shape):
    """GET /api/insights/trends: one target's last ended builds (at most `limit`), oldest
    first."""

    repo_url: str
    machine: str
    target: str
    limit: int
    builds: list[BuildPoint]


class SeenTarget(_Shape):
    """A repository/MACHINE/target built recently, with the URL of its trends."""

    repo_url: str
    machine: str
    target: str
    builds: int
    last_id: int
    last_at: Timestamp
    trends: str


class JobPage(_Shape):
    """A page of jobs, newest first; `newer`/`older` are the neighbouring pages' cursors
    (`?after=` / `?before=`), null at either end."""

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
    """A piece of the build log from `offset`; read on from `next_offset`."""

    offset: int
    next_offset: int
    text: str
    complete: bool = Field(description="The job is over and this is the end of its log")
    status: Status


class StatusEvent(_Shape):
    """SSE `status`: first, then on every change."""

    status: Status
    exit_code: int | None
    reason: str | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    waiting_reason: str | None
    node: str | None


class LogEvent(_Shape):
    """SSE `log`: new log text; the event id is the byte offset after it (Last-Event-ID)."""

    text: str


class EndEvent(_Shape):
    """SSE `end`: the job is over and the whole log was sent; the stream closes."""

    status: Status
    offset: int


SSE_EVENTS: dict[str, type[BaseModel]] = {
    "status": StatusEvent, "log": LogEvent, "progress": Progress, "end": EndEvent}

_MESSAGES = {
    400: "The request was not understood (a parameter out of range or malformed)",
    401: "Not signed in, or the API token is unknown, revoked or expired",
    403: "Not allowed, or (with a session cookie) no valid X-CSRF-Token",
    404: "No such job, artifact, log or API token",
    409: "The build changed state meanwhile",
    413: "The request body is too large",
    422: "A field of the build request is not acceptable (see errors)",
    429: "A limit was reached (queue, live logs); see Retry-After",
    503: "The build runner could not do this",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can answer the error `codes`."""
    answers: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        if code == 416:
            answers[code] = {"description": "The range lies outside the file (no body)"}
        else:
            answers[code] = {"model": ApiError, "description": _MESSAGES[code]}
    return answers


def ok(model: Any, description: str, code: int = 200,
       headers: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    answer: dict[str, Any] = {"model": model, "description": description}
    if headers:
        answer["headers"] = headers
    return {code: answer}


NOT_LISTED_HEADER = "X-Artifacts-Not-Listed"
ARTIFACTS_LISTED = (
    f"The job's artifacts by name: the first {MAX_ARTIFACTS_LISTED}; the header "
    f"{NOT_LISTED_HEADER} counts the files not listed (a build may leave any number), each of "
    "which can still be downloaded by its name")


def sse_components() -> dict[str, Any]:
    """The SSE events' data schemas, for components/schemas (by the model's name)."""
    return {model.__name__: model.model_json_schema(ref_template="#/components/schemas/{model}")
            for model in SSE_EVENTS.values()}


SSE_DESCRIPTION = (
    "Server-Sent Events. Events: "
    + "; ".join(f"`{name}` (data: {model.__name__})" for name, model in SSE_EVENTS.items())
    + ". `log` events carry `id` = the byte offset after them: reconnect with Last-Event-ID "
    "to resume exactly. A comment is sent as keep-alive.")


# --- comparison of two builds (GET /api/jobs/compare) ------------------------------------------

class Change(_Shape):
    """`name` was `before` in build a and is `after` in build b (null: not there)."""

    name: str
    before: str | None
    after: str | None


class SizeChange(_Shape):
    name: str
    before: int | None = Field(description="Bytes in build a, null when it has none")
    after: int | None = Field(description="Bytes in build b, null when it has none")
    delta: int | None


class ImageSizeChange(_Shape):
    """buildhistory's IMAGESIZE (KiB of the root filesystem)."""

    before: int | None
    after: int | None
    delta: int | None


class PackageChange(_Shape):
    name: str
    before: str | None = Field(description="Version in build a (null: not installed, or unknown)")
    after: str | None = Field(description="Version in build b (null: not installed, or unknown)")
    before_kib: int | None = Field(description="Installed size (buildhistory), KiB")
    after_kib: int | None
    kib_delta: int | None


class PackageChanges(_Shape):
    compared: bool = Field(description="Both builds listed their packages (manifest or "
                                       "buildhistory)")
    sizes_compared: bool = Field(description="Both builds had buildhistory's package sizes")
    added: list[PackageChange] = Field(description="The first 500 (added_total says all)")
    removed: list[PackageChange] = Field(description="The first 500 (removed_total says all)")
    changed: list[PackageChange] = Field(description="The first 500 (changed_total says all)")
    added_total: int
    removed_total: int
    changed_total: int


class ElapsedChange(_Shape):
    """A build's elapsed time by its buildstats, in seconds."""

    before: float
    after: float
    delta: float


class TaskTimingChange(_Shape):
    recipe: str
    task: str
    before: float | None = Field(description="Seconds in build a (null: it did not run there)")
    after: float | None = Field(description="Seconds in build b (null: it did not run there)")
    delta: float


class Unlisted(_Shape):
    before: int = Field(description="Build a's files not listed")
    after: int = Field(description="Build b's files not listed")


class Comparison(_Shape):
    """What changed from build a to build b."""

    a: Job
    b: Job
    identical: bool = Field(description="Nothing differs that the builds recorded")
    different: list[Change] = Field(description="Repository, MACHINE or target, when they differ")
    commit: Change | None
    variables: list[Change] = Field(description="Build Configuration variables that differ")
    layers: list[Change] = Field(description="Layers whose branch:revision differ")
    artifacts: list[SizeChange] = Field(description="Artifacts (by name without date stamp) "
                                                    "whose size differs or that only one has: "
                                                    "the first 500 (artifacts_total says all)")
    artifacts_total: int = Field(description="How many artifacts differ in all, listed or not "
                                             "(`artifacts` lists the first 500)")
    artifacts_unlisted: Unlisted = Field(
        description=f"Files each build left beyond the first {MAX_ARTIFACTS_LISTED} by name: "
                    "not compared")
    image_size_kib: ImageSizeChange | None = Field(
        description="buildhistory's IMAGESIZE (KiB of the root filesystem) when it differs")
    packages: PackageChanges
    timing: list[TaskTimingChange] | None = Field(
        description="Task elapsed times that differ, largest change first (buildstats); null "
                    "when either build left none")
    timing_elapsed: ElapsedChange | None = Field(
        description="Each build's elapsed time by its buildstats; null when either left none")


# --- timing (GET /api/jobs/{id}/timing) ----------------------------------------------------

class TimedTask(_Shape):
    """One task from buildstats: start/end in seconds since the epoch, elapsed and CPU in s."""

    recipe: str
    task: str
    version: str
    start: float
    end: float
    elapsed: float
    cpu: float
    failed: bool


class RecipeTiming(_Shape):
    recipe: str
    elapsed: float = Field(description="Its tasks' elapsed times added up (s)")
    cpu: float
    tasks: int


class Timing(_Shape):
    """Where a build's time went, from BitBake's buildstats (rendering.timing_json).
    `available` false: the build left none (`problem` null) or they are unreadable."""

    available: bool
    problem: str | None
    wall_seconds: float | None
    cpu_seconds: float | None
    task_count: int
    failed_tasks: int
    slowest_recipes: list[RecipeTiming]
    slowest_tasks: list[TimedTask]
    critical_path: list[TimedTask] = Field(
        description="Derived from timing (buildstats record no dependencies): back from the "
                    "task that ended last, each the task that ended last before it started; "
                    "at most its 200 longest steps, in order")
    critical_path_seconds: float | None = Field(description="All of its steps")
    critical_path_steps: int = Field(description="How many steps it has (some may not be "
                                                 "listed)")


# --- every engineer's API tokens, for administrators (/api/admin/tokens) --------------------

class AdminToken(_Shape):
    """A personal API token as an administrator sees it (admin_tokens.token_json): never the
    token nor its hash."""

    id: str = Field(description="The 8 characters after abt_ (not secret)")
    owner: str
    name: str
    created_at: Timestamp
    last_used_at: Timestamp | None
    expires_at: Timestamp | None = Field(description="Null: until revoked")
    revoked_at: Timestamp | None
    state: Literal["live", "expired", "revoked"]


class AdminTokenList(_Shape):
    items: list[AdminToken]


class RevokedTokens(_Shape):
    owner: str
    revoked: list[AdminToken]
