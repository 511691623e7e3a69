"""The build log: chunked JSON by byte offset, and a live Server-Sent Events stream.

SSE events: ``status`` (first, then on every change), ``log`` (``{"text"}``, id = the byte
offset after it, so ``Last-Event-ID`` resumes exactly), ``progress`` (the build's progress, see
rendering.progress_json, whenever it differs from what was last sent, or from a build that has
not started for a new stream), ``end``
(the job is over and the whole log was sent). A stream whose session ends (sign-out, expiry,
leaving the users group) is closed within SESSION_RECHECK_SECONDS. FastAPI adds a keep-alive comment when nothing
was sent for 15 s.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent

from ...domain.jobs import Job
from ...domain.limits import StreamSlots
from ...domain.progress import Progress
from ...domain.queries import DEFAULT_LOG_CHUNK, JobQueries
from ..containers import Container
from ..rendering import progress_json, status_json
from ..security import User, require_user, still_signed_in

router = APIRouter(prefix="/api")

Queries = Annotated[JobQueries, Depends(Provide[Container.queries])]

MAX_LOG_LIMIT = 1024 * 1024
POLL_SECONDS = 0.5  # how often a quiet stream looks for new log bytes or a status change
RETRY_MS = 2000
SESSION_RECHECK_SECONDS = 30.0  # an open stream ends this soon after its session does


@router.get("/jobs/{job_id:jobid}/log")
@inject
def log_chunk(
    job_id: int,
    user: User,
    service: Queries,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_LIMIT)] = DEFAULT_LOG_CHUNK,
) -> dict[str, Any]:
    chunk = service.read_log(job_id, offset, limit)
    job = service.get(job_id)  # read after the log: a complete chunk always shows a final status
    return {
        "offset": chunk.offset,
        "next_offset": chunk.next_offset,
        "text": chunk.text,
        "complete": chunk.complete,
        "status": str(job.status),
    }


@inject
def existing_job(job_id: int, service: Queries) -> Job:
    """Dependency: the job, or JobNotFound (404) before any event is sent."""
    return service.get(job_id)


@inject
async def stream_slot(
    user: User, slots: Annotated[StreamSlots, Depends(Provide[Container.stream_slots])]
) -> AsyncIterator[None]:
    """Dependency: one of the user's live-log slots for as long as the stream is open
    (LimitReached, 429, when they hold them all); given back once the response ends."""
    slots.acquire(user)
    try:
        yield
    finally:
        slots.release(user)


def resume_offset(last_event_id: str | None, offset: int) -> int:
    """Where a (re)connecting client continues: its Last-Event-ID, else ``?offset=``."""
    text = (last_event_id or "").strip()
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return offset


@router.get(
    "/jobs/{job_id:jobid}/log/stream",
    response_class=EventSourceResponse,
    # Sign-in first, then 404, then the per-user cap (held until the stream ends).
    dependencies=[Depends(require_user), Depends(existing_job),
                  Depends(stream_slot, scope="request")],
)
@inject
async def log_stream(
    request: Request,
    job_id: int,
    user: User,
    service: Queries,
    offset: Annotated[int, Query(ge=0)] = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> AsyncIterator[ServerSentEvent]:
    position = resume_offset(last_event_id, offset)
    # At once, so the browser and any proxy see the stream is open.
    yield ServerSentEvent(comment=f"log of build #{job_id}", retry=RETRY_MS)
    sent_status: dict[str, Any] | None = None
    # Fed with exactly the text this stream sends; a resumed stream starts from the log so far.
    tracker = await run_in_threadpool(service.track_progress, job_id, position)
    sent_progress = Progress()  # nothing to send until the build has got somewhere
    checked_at = time.monotonic()
    while not await request.is_disconnected():
        if time.monotonic() - checked_at >= SESSION_RECHECK_SECONDS:
            if not await run_in_threadpool(still_signed_in, request):
                return  # signed out, expired or no longer a member: the stream ends
            checked_at = time.monotonic()
        chunk = await run_in_threadpool(service.read_log, job_id, position, DEFAULT_LOG_CHUNK)
        job = await run_in_threadpool(service.get, job_id)  # after the log: see log_chunk
        status = status_json(job)
        if sent_status is None:
            yield ServerSentEvent(event="status", data=status)
            sent_status = status
        progressed = chunk.next_offset > chunk.offset
        if progressed:
            yield ServerSentEvent(event="log", data={"text": chunk.text}, id=str(chunk.next_offset))
        position = chunk.next_offset
        tracker.feed(chunk.text)
        if tracker.progress != sent_progress:
            yield ServerSentEvent(event="progress", data=progress_json(tracker.progress))
            sent_progress = tracker.progress
        if status != sent_status:
            yield ServerSentEvent(event="status", data=status)
            sent_status = status
        if chunk.complete:
            yield ServerSentEvent(event="end", data={"status": status["status"],
                                                     "offset": position})
            return
        if not progressed:
            await asyncio.sleep(POLL_SECONDS)
