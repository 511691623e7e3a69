"""The JSON API: jobs, artifacts (list and download), cancel and rebuild."""

import re
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ...domain.jobs import JobStatus
from ...domain.ports import Clock
from ...domain.commands import JobCommands
from ...domain.permissions import Permissions
from ...domain.queries import JobQueries
from ...scheduler import Scheduler
from ..containers import Container
from ..job_list_params import ListParams
from ..rendering import artifact_json, failure_json, job_json, progress_json
from ..security import HeaderCsrf, User

router = APIRouter(prefix="/api")

Queries = Annotated[JobQueries, Depends(Provide[Container.queries])]
Commands = Annotated[JobCommands, Depends(Provide[Container.commands])]
Perms = Annotated[Permissions, Depends(Provide[Container.permissions])]
Sched = Annotated[Scheduler, Depends(Provide[Container.scheduler])]
Now = Annotated[Clock, Depends(Provide[Container.clock])]

DOWNLOAD_CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@router.get("/jobs")
@inject
def list_jobs(
    user: User,
    service: Queries,
    perms: Perms,
    clock: Now,
    params: ListParams,
    per_page: Annotated[int, Query(ge=1, le=200)] = 25,
) -> dict[str, Any]:
    """Newest first; ``newer``/``older`` are the cursors of the neighbouring pages
    (``?after=<newer>``, ``?before=<older>``, with the same filters), null at either end."""
    result = service.list_page(params.where, per_page, params.before, params.after, params.page)
    now = clock.now()
    return {
        "items": [job_json(job, now, user, perms.may_cancel(job, user))
                  for job in result.items],
        "per_page": result.per_page,
        "newer": result.newer,
        "older": result.older,
    }


@router.get("/jobs/{job_id:jobid}")
@inject
def get_job(job_id: int, user: User, service: Queries, perms: Perms, clock: Now) -> dict[str, Any]:
    found = service.get(job_id)
    data = job_json(found, clock.now(), user, perms.may_cancel(found, user))
    data["progress"] = progress_json(service.progress(job_id))
    # The same "Why it failed" as the job page (disk full, git problem, failed tasks).
    data["failure"] = (failure_json(service.failure_summary(job_id))
                       if found.status is JobStatus.FAILED else None)
    return data


@router.get("/jobs/{job_id:jobid}/artifacts")
@inject
def list_artifacts(job_id: int, user: User, service: Queries) -> list[dict[str, Any]]:
    return [artifact_json(info) for info in service.artifacts(job_id)]


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact name in RFC 5987 form."""
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\' else "_" for ch in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range asked for as (first, last), None for the whole file.

    Raises ValueError when the range lies outside the file (answered 416). Malformed or
    multi-part ranges are ignored, as RFC 9110 allows, and the whole file is sent.
    """
    match = _RANGE.match((header or "").strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first_text, last_text = match.groups()
    if first_text == "":
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise ValueError("empty range")
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or last < first:
        raise ValueError("range outside the file")
    return first, last


def _read(fileobj: BinaryIO, first: int, length: int) -> Iterator[bytes]:
    try:
        if first:
            fileobj.seek(first)
        left = length
        while left > 0:
            data = fileobj.read(min(DOWNLOAD_CHUNK, left))
            if not data:
                break
            left -= len(data)
            yield data
    finally:
        fileobj.close()


@router.get("/jobs/{job_id:jobid}/artifacts/{name:path}")
@inject
def download_artifact(
    job_id: int,
    name: str,
    user: User,
    service: Queries,
    range_: Annotated[str | None, Header(alias="range")] = None,
) -> Response:
    # The service opens the file once (no symlinks, regular files only); we serve that descriptor.
    fileobj, info = service.open_artifact(job_id, name)
    headers = {
        "Content-Disposition": content_disposition(info.name),
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
    }
    try:
        span = parse_range(range_, info.size)
    except ValueError:
        fileobj.close()
        headers["Content-Range"] = f"bytes */{info.size}"
        return Response(status_code=416, headers=headers)
    first, last = span if span else (0, info.size - 1)
    length = max(0, last - first + 1)
    headers["Content-Length"] = str(length)
    if span:
        headers["Content-Range"] = f"bytes {first}-{last}/{info.size}"
    return StreamingResponse(
        _read(fileobj, first, length),
        status_code=206 if span else 200,
        headers=headers,
        media_type="application/octet-stream",
    )


@router.post("/jobs/{job_id:jobid}/cancel", dependencies=[HeaderCsrf])
@inject
def cancel_job(
    job_id: int, user: User, commands: Commands, perms: Perms, scheduler: Sched, clock: Now
) -> dict[str, Any]:
    job = commands.cancel(job_id, user)
    scheduler.wake()
    return job_json(job, clock.now(), user, perms.may_cancel(job, user))


@router.post("/jobs/{job_id:jobid}/rebuild", dependencies=[HeaderCsrf])
@inject
def rebuild_job(
    job_id: int, user: User, commands: Commands, scheduler: Sched, clock: Now
) -> JSONResponse:
    job = commands.rebuild(job_id, user)
    scheduler.wake()
    return JSONResponse(job_json(job, clock.now(), user), status_code=201,
                        headers={"Location": f"/api/jobs/{job.id}"})
