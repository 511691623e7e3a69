"""One reader per watched job: a shared tailer fans the log's new bytes and the job's status
out to every viewer through bounded per-viewer queues.

Whatever the number of viewers, a job's log and row are read by one task, through JobQueries
(so through the JobFiles port and its owner-checked, O_NOFOLLOW reads: no path is opened here).
Each update carries the byte range it covers; a viewer whose own offset does not match (it
joined behind, or it fell behind and was told to resync) reads its gap itself, from its own
offset, through the same port, so ids stay exact byte offsets whatever happens to the queue.
A viewer too slow to take its updates gets one RESYNC marker instead of a growing queue. The
tailer stops when its last viewer leaves or when the job is over and its whole log was read.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from autobuild.domain.jobs import Job
from autobuild.domain.logs import LogChunk
from autobuild.domain.progress import Progress, ProgressTracker

QUEUE_UPDATES = 16  # per viewer; a viewer this far behind resyncs from its own offset
# With a watch that tells of every write, a look now and then still catches what it missed.
WATCHED_POLL_SECONDS = 1.0


class Watch(Protocol):
    alive: bool

    def close(self) -> None: ...


class LogWatches(Protocol):
    """Tells a tailer as soon as its job's log is written (inotify); None where it cannot."""

    def open(self, job: Job, on_change: Callable[[], None]) -> Watch | None:
        """Called in the event loop; ``on_change`` is called there on each write."""
        ...


@dataclass(frozen=True)
class Update:
    """The log from ``chunk.offset`` to ``chunk.next_offset``, the job read just after it, and
    the build's progress up to ``chunk.next_offset`` (None when the tailer keeps none)."""

    chunk: LogChunk
    job: Job
    progress: Progress | None = None
    # What the viewers derive from this update (an encoded event...), made by the first
    # viewer that needs it, for all of them.
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


RESYNC = object()  # "you fell behind: continue from your own offset"


class Subscription:
    """One viewer's bounded queue of Update (or RESYNC)."""

    def __init__(self, size: int | None = None) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=size or QUEUE_UPDATES)
        self.tailer: JobTailer | None = None

    def orphaned(self) -> bool:
        """Its tailer has stopped (the job ended, or a read failed): subscribe again."""
        return self.tailer is None or self.tailer.done()

    def offer(self, item: Any) -> None:
        """Queue ``item``; when the viewer is this far behind, replace its backlog by RESYNC."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)


ReadLog = Callable[[int, int, int], LogChunk]
GetJob = Callable[[int], Job]
TrackProgress = Callable[[int, int], ProgressTracker]  # (job id, up to byte) -> tracker
LOG_END = 2**62  # read_log clamps an offset past the end to the end: where a tailer starts


class JobTailer:
    """Reads one job's log from its end as it grows; started by the first viewer."""

    def __init__(self, job_id: int, read_log: ReadLog, get_job: GetJob,
                 watches: LogWatches | None, chunk: int, poll_seconds: float,
                 on_stop: Callable[[JobTailer], None],
                 track: TrackProgress | None = None) -> None:
        self.job_id = job_id
        self._read_log, self._get_job, self._watches = read_log, get_job, watches
        self._track = track
        self._tracker: ProgressTracker | None = None
        self._watch: Watch | None = None
        self._chunk = chunk
        self.poll_seconds = poll_seconds
        self._on_stop = on_stop
        self.subscribers: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def done(self) -> bool:
        return self._task is None or self._task.done()

    @property
    def progress(self) -> Progress | None:
        """The build's progress as far as this tailer has read (None before it knows)."""
        return self._tracker.progress if self._tracker is not None else None

    def wake(self) -> None:
        """Look now (the log grew or the job changed) instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        try:
            # From the end: what is there already each viewer reads from its own offset.
            position = (await asyncio.to_thread(self._read_log, self.job_id, LOG_END, 1)).offset
            if self._track is not None:  # the progress so far (the runner's digest of the log)
                self._tracker = await asyncio.to_thread(self._track, self.job_id, position)
            last_job: Job | None = None
            while self.subscribers:
                chunk = await asyncio.to_thread(self._read, position)
                job = await asyncio.to_thread(self._get_job, self.job_id)  # after the log
                progressed = chunk.next_offset > chunk.offset
                if progressed or job != last_job or chunk.complete:
                    progress = self._tracker.progress if self._tracker is not None else None
                    for subscriber in list(self.subscribers):
                        subscriber.offer(Update(chunk, job, progress))
                    last_job = copy.copy(job)  # a repository may hand out the same object
                position = chunk.next_offset
                if chunk.complete:
                    return  # the job is over and its whole log was read
                if not progressed:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self._quiet_wait(job))
                    except TimeoutError:
                        pass
                    self._wake.clear()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A failed read: every viewer reads on by itself (and meets the error there).
            for subscriber in list(self.subscribers):
                subscriber.offer(RESYNC)
        finally:
            if self._watch is not None:
                self._watch.close()
            self._on_stop(self)

    def _read(self, position: int) -> LogChunk:
        """The next chunk of the log, fed to the job's progress tracker (in a worker thread)."""
        chunk = self._read_log(self.job_id, position, self._chunk)
        if self._tracker is not None:
            self._tracker.feed(chunk.text)
        return chunk

    def _quiet_wait(self, job: Job) -> float:
        """How long to wait for a wake-up before looking anyway: long with a live watch,
        POLL otherwise (no inotify, a network filesystem, or no log directory yet)."""
        if self._watch is not None and not self._watch.alive:
            self._watch.close()
            self._watch = None
        if self._watch is None and self._watches is not None:
            self._watch = self._watches.open(job, self.wake)
        return self.poll_seconds if self._watch is None else WATCHED_POLL_SECONDS


class LogTailers:
    """The tailers of the jobs being watched in this process, one per job and event loop."""

    def __init__(self, read_log: ReadLog, get_job: GetJob, chunk: int,
                 watches: LogWatches | None = None, track: TrackProgress | None = None) -> None:
        """``read_log``/``get_job``/``track``: JobQueries.read_log, .get and .track_progress
        (the owner-checked reads); without ``track`` updates carry no progress."""
        self._read_log, self._get_job, self._watches = read_log, get_job, watches
        self._track = track
        self._chunk = chunk
        self._tailers: dict[tuple[int, int], JobTailer] = {}

    def subscribe(self, job_id: int, poll_seconds: float) -> Subscription:
        """A new viewer of ``job_id``; starts the job's tailer if it has none running."""
        key = (id(asyncio.get_running_loop()), job_id)
        subscription = Subscription()
        tailer = self._tailers.get(key)
        if tailer is None:
            tailer = JobTailer(job_id, self._read_log, self._get_job, self._watches, self._chunk,
                               poll_seconds,
                               lambda done: self._forget(key, done), self._track)
            self._tailers[key] = tailer
            tailer.subscribers.add(subscription)
            tailer.start()
        else:
            tailer.subscribers.add(subscription)
        subscription.tailer = tailer
        return subscription

    def unsubscribe(self, job_id: int, subscription: Subscription) -> None:
        """The viewer left; the last one to leave stops the tailer."""
        key = (id(asyncio.get_running_loop()), job_id)
        tailer = subscription.tailer
        if tailer is None:
            return
        tailer.subscribers.discard(subscription)
        subscription.tailer = None
        if not tailer.subscribers:
            if self._tailers.get(key) is tailer:
                del self._tailers[key]
            tailer.stop()

    def notify(self, job_id: int) -> None:
        """The job changed or its log grew: its tailers look now (any thread)."""
        for (_, watched), tailer in list(self._tailers.items()):
            if watched == job_id:
                loop = tailer._task.get_loop() if tailer._task is not None else None
                if loop is not None and not loop.is_closed():
                    loop.call_soon_threadsafe(tailer.wake)

    def running(self) -> int:
        """How many tailers are running (for tests and the benchmarks)."""
        return len(self._tailers)

    def _forget(self, key: tuple[int, int], tailer: JobTailer) -> None:
        if self._tailers.get(key) is tailer:
            del self._tailers[key]
