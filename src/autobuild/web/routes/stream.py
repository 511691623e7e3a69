"""The build log: chunked JSON by byte offset, and a live Server-Sent Events stream.

SSE events: ``status`` (first, then on every change), ``log`` (``{"text"}``, id = the byte
offset after it, so ``Last-Event-ID`` resumes exactly), ``progress`` (the build's progress from
its whole log, see rendering.progress_json: the runner's digest when the stream opens, then what
the job's tailer reads; sent with the log whenever it differs from what was last sent, never for
a build that has not got anywhere), ``end`` (the job is over and the whole log was sent). A
stream whose session ends (sign-out, expiry, leaving the users group) is closed within
SESSION_RECHECK_SECONDS. A keep-alive comment goes out when nothing was sent for
IDLE_CHECK_SECONDS (it also finds clients that left).

Viewers do not poll: each job being watched has one tailer (adapters/log_tailer.py) that reads
new bytes and the job's status once and pushes them to every open stream of that job. A stream
reads by itself only from its own offset: to catch up when it opens, and when it fell behind
(RESYNC) — so ids stay exact byte offsets however updates are queued or dropped.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from fastapi.sse import KEEPALIVE_COMMENT, format_sse_event

from ...adapters.log_tailer import RESYNC, LogTailers, Update
from ...domain.jobs import Job
from ...domain.limits import StreamSlots
from ...domain.logs import LogChunk
from ...domain.progress import Progress
from ...domain.queries import DEFAULT_LOG_CHUNK, JobQueries
from ..containers import Container
from ..rendering import progress_json, status_json
from ..schemas import SSE_DESCRIPTION, LogChunk as LogChunkOut, errors, ok
from ..security import User, require_user, still_signed_in

router = APIRouter(prefix="/api", tags=["api"])

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


@router.get("/jobs/{job_id:jobid}/log", response_model=None,
            responses={**ok(LogChunkOut, "A piece of the log"), **errors(400, 401, 404)})
@inject
def log_chunk(
    job_id: int,
    user: User,
    service: Queries,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_LIMIT)] = DEFAULT_LOG_CHUNK,
) -> dict[str, Any]:
    """Up to `limit` bytes of the build log from byte `offset`; read on from `next_offset`
    until `complete` (the job is over and all of the log was read)."""
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


def _event(event: str, data: Any = None, *, raw: str | None = None,
           id: str | None = None) -> bytes:
    """One SSE event on the wire (fastapi.sse's encoding); ``raw``: data already JSON."""
    return format_sse_event(event=event, id=id,
                            data_str=raw if raw is not None else json.dumps(data))


def _frames(chunk: LogChunk, job: Job, state: _Sent, update: Update | None = None) -> bytes:
    """The events one read of the log (``chunk``, then ``job`` read after it) gives a viewer
    at ``state.position``, as one piece to send; updates ``state``. For a tailer's ``update``
    the log and progress events are encoded once for all the job's viewers (its memo)."""
    memo: dict[str, bytes] = update.memo if update is not None else {}
    frames: list[bytes] = []
    status = status_json(job)
    if state.status is None:
        frames.append(_event("status", status))
        state.status = status
    if chunk.next_offset > chunk.offset:
        if "log" not in memo:
            memo["log"] = _event("log", {"text": chunk.text}, id=str(chunk.next_offset))
        frames.append(memo["log"])
    state.position = chunk.next_offset
    if state.latest != state.progress:
        shared = update is not None and state.latest is update.progress
        if not shared or "progress" not in memo:
            encoded = _event("progress", progress_json(state.latest))
            if shared:
                memo["progress"] = encoded
        frames.append(memo["progress"] if shared else encoded)
        state.progress = state.latest
    if status != state.status:
        frames.append(_event("status", status))
        state.status = status
    if chunk.complete:
        state.ended = True
        frames.append(_event("end", {"status": status["status"], "offset": state.position}))
    return b"".join(frames)


@router.get(
    "/jobs/{job_id:jobid}/log/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                     "description": SSE_DESCRIPTION},
               **errors(400, 401, 404, 429)},
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
) -> StreamingResponse:
    """Encoded here, once per update for all the job's viewers, and sent as bytes: fastapi's
    EventSourceResponse would encode every event for every viewer and pass it through two
    more tasks (measured: the cost that grew with the number of viewers, bench/b1_latency)."""
    return StreamingResponse(
        _stream(request, job_id, resume_offset(last_event_id, offset), service, tailers),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _read(service: JobQueries, job_id: int, position: int) -> tuple[LogChunk, Job]:
    """The log from ``position``, then the job (read after it: a complete chunk always comes
    with a final status)."""
    chunk = service.read_log(job_id, position, DEFAULT_LOG_CHUNK)
    return chunk, service.get(job_id)


async def _stream(request: Request, job_id: int, position: int, service: JobQueries,
                  tailers: LogTailers) -> AsyncIterator[bytes]:
    # At once, so the browser and any proxy see the stream is open.
    yield format_sse_event(comment=f"log of build #{job_id}", retry=RETRY_MS)
    # Subscribed before the first read, so nothing the tailer sees after it is missed.
    subscription = tailers.subscribe(job_id, POLL_SECONDS)
    try:
        # The build's progress from its whole log: the job's tailer knows it (the runner's
        # digest and what it read since), unless it has only just started.
        known = subscription.tailer.progress if subscription.tailer is not None else None
        state = _Sent(position=position,
                      latest=known or await run_in_threadpool(service.progress, job_id))
        checked_at = time.monotonic()
        read_myself = True  # catching up (or resyncing) from our own offset, through the port
        while True:
            if time.monotonic() - checked_at >= SESSION_RECHECK_SECONDS:
                if not await run_in_threadpool(still_signed_in, request):
                    return  # signed out, expired or no longer a member: the stream ends
                checked_at = time.monotonic()
            if read_myself:
                chunk, job = await run_in_threadpool(_read, service, job_id, state.position)
                if chunk.complete:  # the end, read by ourselves: the progress of it all
                    state.latest = await run_in_threadpool(service.progress, job_id)
                frames = _frames(chunk, job, state)
                if frames:
                    yield frames
                if state.ended:
                    return
                read_myself = chunk.next_offset > chunk.offset  # more may be there already
                continue
            try:
                item = subscription.queue.get_nowait()
            except asyncio.QueueEmpty:
                wait = max(0.0, min(IDLE_CHECK_SECONDS,
                                    SESSION_RECHECK_SECONDS - (time.monotonic() - checked_at)))
                try:
                    async with asyncio.timeout(wait):
                        item = await subscription.queue.get()
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield KEEPALIVE_COMMENT  # also finds a client that left without a word
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
                frames = _frames(chunk, update.job, state, update)
                if frames:
                    yield frames
                if state.ended:
                    return
            elif chunk.next_offset <= state.position:  # bytes we sent already (caught up)
                if state.latest != state.progress:  # but what they did to the progress is new
                    yield _frames(LogChunk(state.position, state.position, "", False),
                                  update.job, state, update)
            else:
                read_myself = True  # a gap or an overlap: read from our own offset
    finally:
        tailers.unsubscribe(job_id, subscription)
