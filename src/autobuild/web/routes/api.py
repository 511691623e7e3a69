"""The JSON API: jobs (list, submit), artifacts (list and download), the raw log, cancel and
rebuild."""

from typing import Annotated, Any

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Body, Depends, Header, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ...domain import layout
from ...domain.jobs import JobStatus
from ...domain.ports import Clock
from ...domain.commands import JobCommands
from ...domain.permissions import Permissions
from ...domain.queries import JobQueries
from ...scheduler import Scheduler
from ..containers import Container
from ..downloads import ACCEL_HEADER, Download, attachment, inline, respond
from ..insights_render import cache_json
from ..job_list_params import ListParams
from ..rendering import (
    artifact_json, failure_json, job_json, packages_json, progress_json, provenance_json,
    timing_json,
)
from ..schemas import (
    ARTIFACTS_LISTED, NOT_LISTED_HEADER, Artifact, Job, JobDetail, JobPage, Timing, errors, ok,
)
from ..security import HeaderCsrf, User, require_user

router = APIRouter(prefix="/api", tags=["api"])

Queries = Annotated[JobQueries, Depends(Provide[Container.queries])]
Commands = Annotated[JobCommands, Depends(Provide[Container.commands])]
Perms = Annotated[Permissions, Depends(Provide[Container.permissions])]
Sched = Annotated[Scheduler, Depends(Provide[Container.scheduler])]
Now = Annotated[Clock, Depends(Provide[Container.clock])]


def _file(media_type: str) -> dict[int | str, dict[str, Any]]:
    """A download's answers: the whole file, or the one byte range asked for."""
    body = {media_type: {"schema": {"type": "string", "format": "binary"}}}
    return {200: {"description": "The whole file", "content": body},
            206: {"description": "The byte range asked for (Range)", "content": body}}

@router.get("/jobs", response_model=None,
            responses={**ok(JobPage, "A page of jobs"), **errors(400, 401)})
@inject
def list_jobs(
    user: User,
    service: Queries,
    perms: Perms,
    clock: Now,
    params: ListParams,
    per_page: Annotated[int, Query(ge=1, le=200)] = 25,
) -> dict[str, Any]:
    """Newest first; `newer`/`older` are the cursors of the neighbouring pages
    (`?after=<newer>`, `?before=<older>`, with the same filters), null at either end."""
    result = service.list_page(params.where, per_page, params.before, params.after, params.page)
    now = clock.now()
    return {
        "items": [job_json(job, now, user, perms.may_cancel(job, user))
                  for job in result.items],
        "per_page": result.per_page,
        "newer": result.newer,
        "older": result.older,
    }


class NewJob(BaseModel):
    """A build request as JSON: the New build form's fields (validated by the same rules)."""

    model_config = ConfigDict(extra="forbid")

    repo_url: str = Field(max_length=4096)
    ref: str = Field(default="main", max_length=1024)
    machine: str = Field(max_length=1024)
    target: str = Field(max_length=1024)
    kas_file: str | None = Field(default=None, max_length=4096)


@router.post("/jobs", dependencies=[Depends(require_user), HeaderCsrf], status_code=201,
             response_model=None,
             responses={**ok(Job, "The queued job (Location: its URL)", 201),
                        **errors(400, 401, 403, 413, 422, 429)})
@inject
def submit_job(
    body: NewJob, user: User, commands: Commands, scheduler: Sched, clock: Now
) -> JSONResponse:
    """Queue a build, as the New build form does: 201 with the job and its Location; 422 with
    `errors` (field -> message) when a field is not acceptable, 429 when the queue is full."""
    job = commands.submit(user, body.repo_url, body.ref, body.machine, body.target,
                          kas_file=body.kas_file or "")
    scheduler.wake()
    return JSONResponse(job_json(job, clock.now(), user), status_code=201,
                        headers={"Location": f"/api/jobs/{job.id}"})


@router.get("/jobs/{job_id:jobid}", response_model=None,
            responses={**ok(JobDetail, "The job"), **errors(401, 404)})
@inject
def get_job(job_id: int, user: User, service: Queries, perms: Perms, clock: Now) -> dict[str, Any]:
    """The job with what the job page shows of it: progress, why it failed (`failure`, only
    when FAILED), the image's package count, what it really built (`provenance`) and what the
    sstate cache saved it (`cache`)."""
    found = service.get(job_id)
    data = job_json(found, clock.now(), user, perms.may_cancel(found, user))
    data["progress"] = progress_json(service.progress(job_id))
    # The same "Why it failed" as the job page (disk full, git problem, failed tasks).
    data["failure"] = (failure_json(service.failure_summary(job_id))
                       if found.status is JobStatus.FAILED else None)
    data["packages"] = packages_json(service.packages(job_id))  # from the image manifest
    data["provenance"] = provenance_json(service.provenance(job_id))  # what it really built
    data["cache"] = cache_json(service.cache_reuse(job_id))  # what sstate saved it
    return data


@router.get("/jobs/{job_id:jobid}/timing", response_model=None,
            responses={**ok(Timing, "Where the build's time went"), **errors(400, 401, 404)})
@inject
def get_timing(
    job_id: int, user: User, service: Queries,
    top: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """From BitBake's buildstats, which the runner keeps condensed: totals, the `top`
    slowest recipes and tasks, and the critical path derived from timing."""
    return timing_json(service.timing(job_id, top))


@router.get("/jobs/{job_id:jobid}/artifacts", response_model=None,
            summary="List a build's artifacts",
            responses={**ok(list[Artifact], ARTIFACTS_LISTED, headers={NOT_LISTED_HEADER: {
                "description": "How many more files the build left that are not listed (0: "
                               "all are)", "schema": {"type": "integer", "minimum": 0}}}),
                       **errors(401, 404)})
@inject
def list_artifacts(job_id: int, user: User, service: Queries) -> JSONResponse:
    """The files the build left for download (images, manifests, SBOMs, ...), by name, up to
    a limit; the `X-Artifacts-Not-Listed` header counts the others. Download one from
    `/api/jobs/{job_id}/artifacts/{name}`."""
    listed = service.artifacts(job_id)
    return JSONResponse([artifact_json(info) for info in listed],
                        headers={NOT_LISTED_HEADER: str(listed.more)})


@router.get("/jobs/{job_id:jobid}/artifacts/{name:path}", response_class=Response,
            responses={**_file("application/octet-stream"), **errors(400, 401, 404, 416)})
@inject
def download_artifact(
    job_id: int,
    name: str,
    user: User,
    service: Queries,
    range_: Annotated[str | None, Header(alias="range")] = None,
    accel: Annotated[str | None, Header(alias=ACCEL_HEADER)] = None,
) -> Response:
    """One artifact by its name (as the list gives it), whole or the one byte `Range`
    asked for."""
    job = service.get(job_id)
    # The service opens the file once (no links, the owner's regular file); we serve that
    # descriptor, or hand nginx the same name once it has passed.
    fileobj, info = service.open_artifact(job_id, name)
    return respond(Download(fileobj, info.size, attachment(info.name), "application/octet-stream",
                            layout.artifact_path(job.owner, job.id, info.name)), range_, accel)


@router.get("/jobs/{job_id:jobid}/log/raw", response_class=Response,
            responses={**_file("text/plain"), **errors(400, 401, 404, 416)})
@inject
def download_log(
    job_id: int,
    user: User,
    service: Queries,
    range_: Annotated[str | None, Header(alias="range")] = None,
    accel: Annotated[str | None, Header(alias=ACCEL_HEADER)] = None,
) -> Response:
    """The whole build log as it is on disk (so far, for a running build)."""
    job = service.get(job_id)
    fileobj, size = service.open_log(job_id)
    return respond(Download(fileobj, size, inline(f"build-{job.id}.log"),
                            "text/plain; charset=utf-8", layout.log_path(job.owner, job.id)),
                   range_, accel)


@router.post("/jobs/{job_id:jobid}/cancel", dependencies=[HeaderCsrf], response_model=None,
             responses={**ok(Job, "The job, cancelled or asked to stop"),
                        **errors(401, 403, 404, 409, 503)})
@inject
def cancel_job(
    job_id: int, user: User, commands: Commands, perms: Perms, scheduler: Sched, clock: Now
) -> dict[str, Any]:
    """Cancel a job (as the permissions allow: its owner): a pending one at once, a running
    one is asked to stop; an ended one comes back as it is."""
    job = commands.cancel(job_id, user)
    scheduler.wake()
    return job_json(job, clock.now(), user, perms.may_cancel(job, user))


class Rebuild(BaseModel):
    """How to rebuild (the body is optional: without it, as `{"exact": false}`)."""

    model_config = ConfigDict(extra="forbid")

    exact: bool = Field(default=False, description=(
        "Build the exact commit the job built (its `commit`) instead of its ref, which may "
        "have moved on since; 422 when the job recorded no commit"))


@router.post("/jobs/{job_id:jobid}/rebuild", dependencies=[HeaderCsrf], status_code=201,
             response_model=None,
             responses={**ok(Job, "The new job (Location: its URL)", 201),
                        **errors(400, 401, 403, 404, 409, 422, 429)})
@inject
def rebuild_job(
    job_id: int, user: User, commands: Commands, scheduler: Sched, clock: Now,
    body: Annotated[Rebuild | None, Body()] = None,
) -> JSONResponse:
    """Queue the same build again as the caller's: with the same ref, or (`exact`) with the
    commit the job built."""
    job = commands.rebuild(job_id, user, exact=body is not None and body.exact)
    scheduler.wake()
    return JSONResponse(job_json(job, clock.now(), user), status_code=201,
                        headers={"Location": f"/api/jobs/{job.id}"})
