"""The build log: chunked JSON by byte offset, and a live Server-Sent Events stream.

SSE events: ``status`` (first, then on every change), ``log`` (``{"text"}``, id = the byte
offset after it, so ``Last-Event-ID`` resumes exactly), ``progress`` (the build's progress from its
whole log, see rendering.progress_json: the runner's digest when the stream opens, then what the
job's tailer reads; sent with the log whenever it differs from what was last sent, never for a
build that has not got anywhere), ``end`` (the job is over and the whole log was sent). A stream whose session ends (sign-out, expiry,
leaving the users group) is closed within SESSION_RECHECK_SECONDS. FastAPI adds a keep-alive comment when nothing
was sent for 15 s.

Viewers do not poll: each job being watched has one tailer (adapters/log_tailer.py) that reads
new bytes and the job's status once and pushes them to every open stream of that job. A stream
reads by itself only from its own offset: to catch up when it opens, and when it fell behind
(RESYNC) — so ids stay exact byte offsets however updates are queued or dropped.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent

from ...adapters.log_tailer import RESYNC, LogTailers, Update
from ...domain.jobs import Job
from ...domain.limits import StreamSlots
from ...domain.logs import LogChunk
from ...domain.progress import Progress
from ...domain.queries import DEFAULT_LOG_CHUNK, JobQueries
from ..containers import Container
from ..rendering import progress_json, status_json
from ..security import User, require_user, still_signed_in

router = APIRouter(prefix="/api")

Queries = Annotated[JobQueries, Depends(Provide[Container.queries])]
Tailers = Annotated[LogTailers, Depends(Provide[Container.log_tailers])]

MAX_LOG_LIMIT = 1024 * 1024
# How often a job's one tailer looks for new log bytes or a status change when nothing woke it
# (whatever the number of viewers: they are pushed what it reads).
POLL_SECONDS = 0.25  # without inotify (a network filesystem): what a look costs, 4 times a second
# A quiet viewer costs nothing until then (a closed connection cancels it at once anyway).
IDLE_CHECK_SECONDS = 15.0  # how often a quiet viewer checks that its client is still there
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


@dataclass
class _Sent:
    """What one stream has sent so far, and the build's latest progress it knows of."""

    position: int
    latest: Progress
    status: dict[str, Any] | None = None
    progress: Progress = field(default_factory=Progress)  # nothing until the build got somewhere
    ended: bool = False


def _events(chunk: LogChunk, job: Job, state: _Sent,
            text_json: str | None = None) -> Iterator[ServerSentEvent]:
    """The events one read of the log (``chunk``, then ``job`` read after it) gives a viewer
    at ``state.position``; updates ``state``. ``text_json``: the log event's data, when it was
    encoded already (once for every viewer of the job)."""
    status = status_json(job)
    if state.status is None:
        yield ServerSentEvent(event="status", data=status)
        state.status = status
    if chunk.next_offset > chunk.offset:
        yield ServerSentEvent(event="log", id=str(chunk.next_offset),
                              raw_data=text_json or json.dumps({"text": chunk.text}))
    state.position = chunk.next_offset
    if state.latest != state.progress:
        yield ServerSentEvent(event="progress", data=progress_json(state.latest))
        state.progress = state.latest
    if status != state.status:
        yield ServerSentEvent(event="status", data=status)
        state.status = status
    if chunk.complete:
        state.ended = True
        yield ServerSentEvent(event="end", data={"status": status["status"],
                                                 "offset": state.position})


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
    tailers: Tailers,
    offset: Annotated[int, Query(ge=0)] = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> AsyncIterator[ServerSentEvent]:
    position = resume_offset(last_event_id, offset)
    # At once, so the browser and any proxy see the stream is open.
    yield ServerSentEvent(comment=f"log of build #{job_id}", retry=RETRY_MS)
    # The build's progress from its whole log (the runner's digest); then the tailer's.
    state = _Sent(position=position, latest=await run_in_threadpool(service.progress, job_id))
    # Subscribed before the first read, so nothing the tailer sees after it is missed.
    subscription = tailers.subscribe(job_id, POLL_SECONDS)
    try:
        checked_at = time.monotonic()
        read_myself = True  # catching up (or resyncing) from our own offset, through the port
        while not await request.is_disconnected():
            if time.monotonic() - checked_at >= SESSION_RECHECK_SECONDS:
                if not await run_in_threadpool(still_signed_in, request):
                    return  # signed out, expired or no longer a member: the stream ends
                checked_at = time.monotonic()
            if read_myself:
                chunk = await run_in_threadpool(service.read_log, job_id, state.position,
                                                DEFAULT_LOG_CHUNK)
                job = await run_in_threadpool(service.get, job_id)  # after the log
                for event in _events(chunk, job, state):
                    yield event
                if state.ended:
                    return
                read_myself = chunk.next_offset > chunk.offset  # more may be there already
                continue
            wait = max(0.0, min(IDLE_CHECK_SECONDS,
                                SESSION_RECHECK_SECONDS - (time.monotonic() - checked_at)))
            try:
                item = await asyncio.wait_for(subscription.queue.get(), wait)
            except TimeoutError:
                if subscription.orphaned():  # the tailer stopped: start another, read again
                    tailers.unsubscribe(job_id, subscription)
                    subscription = tailers.subscribe(job_id, POLL_SECONDS)
                    read_myself = True
                continue
            if item is RESYNC:
                read_myself = True  # we fell behind: what we missed is read from our offset
                continue
            update: Update = item
            chunk = update.chunk
            if update.progress is not None:
                state.latest = update.progress
            if chunk.offset == state.position or (
                    chunk.next_offset == state.position and chunk.complete):
                for event in _events(chunk, update.job, state, update.text_json):
                    yield event
                if state.ended:
                    return
            elif chunk.next_offset < state.position:
                continue  # bytes we have sent already (read while catching up)
            else:
                read_myself = True  # a gap or an overlap: read from our own offset
    finally:
        tailers.unsubscribe(job_id, subscription)
