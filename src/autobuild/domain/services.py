"""Use cases: everything the web layer and the scheduler ask of the core.

Business rules:
- a request is validated in full before anything is stored; a bad one stores nothing;
- jobs start oldest first, and never more than ``max_running`` run at once;
- no job starts while the disk guard reports a shortage: queued jobs wait with the reason;
- the runner's own ``status.json`` decides how a build ended; the process exit code is the
  fallback, and a runner that vanished without a status makes the job FAILED with a reason;
- only the owner (or an administrator) may cancel a job; anyone signed in may rebuild it
  as their own;
- plugins are told every status change, after it is stored.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from .artifacts import ArtifactInfo, merge_patterns
from .disk import DiskGuard
from .failures import FailureSummary, summarize
from .jobs import Job, JobStatus
from .logs import LogChunk, decode_chunk
from .ports import (
    Administrators,
    BuildProcess,
    BuildRunner,
    Clock,
    JobEvents,
    JobFiles,
    JobRepository,
    RunnerError,
    RunnerStatus,
)
from .progress import Progress, ProgressTracker
from .requests import BuildRequest


class JobNotFound(Exception):
    """No job with that id."""


class NotAllowed(Exception):
    """The user may not do this to this job; the message is fit to show."""


DEFAULT_LOG_CHUNK = 64 * 1024
# How much of the end of a log progress and failure summaries read: bitbake logs reach
# hundreds of MB, and what they need is near the end.
PROGRESS_SCAN_BYTES = 4 * 1024 * 1024
FAILURE_SCAN_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Page:
    items: list[Job]
    number: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


class JobService:
    def __init__(
        self,
        jobs: JobRepository,
        files: JobFiles,
        runner: BuildRunner,
        events: JobEvents,
        clock: Clock,
        max_running: int = 1,
        allowed_hosts: frozenset[str] = frozenset(),
        admins: Administrators | None = None,
        build_settings: Mapping[str, str] | None = None,
        disk_guard: DiskGuard | None = None,
    ) -> None:
        self._jobs = jobs
        self._files = files
        self._runner = runner
        self._events = events
        self._clock = clock
        self._max_running = max(1, max_running)
        self._allowed_hosts = allowed_hosts
        self._admins = admins
        # Written into every job's build-settings for the runner (caches, threads, kas...).
        self._build_settings = dict(build_settings or {})
        self._disk_guard = disk_guard
        self._processes: dict[int, BuildProcess] = {}
        # Request threads and the scheduler both change jobs; one lock keeps each change whole.
        self._lock = threading.RLock()

    # --- queries -------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list_page(self, number: int = 1, per_page: int = 25) -> Page:
        per_page = min(max(1, per_page), 200)
        total = self._jobs.count()
        last = max(1, -(-total // per_page))
        number = min(max(1, number), last)
        items = self._jobs.list_page(limit=per_page, offset=(number - 1) * per_page)
        return Page(items=items, number=number, per_page=per_page, total=total)

    def read_log(self, job_id: int, offset: int = 0, limit: int = DEFAULT_LOG_CHUNK) -> LogChunk:
        """Log text from byte ``offset``; ``complete`` once the job is over and all is read."""
        job = self.get(job_id)  # read the status first: a terminal job's log no longer grows
        offset = max(0, offset)
        size = self._files.log_size(job_id)
        offset = min(offset, size)
        data = self._files.read_log(job_id, offset, max(1, limit))
        at_end = job.is_terminal and offset + len(data) >= size
        text, next_offset = decode_chunk(data, offset, at_end)
        return LogChunk(offset=offset, next_offset=next_offset, text=text,
                        complete=job.is_terminal and next_offset >= size)

    def progress(self, job_id: int) -> Progress:
        """How far the build has come, from (the last few MB of) its log."""
        self.get(job_id)
        return self.track_progress(job_id, self._files.log_size(job_id)).progress

    def track_progress(self, job_id: int, upto: int) -> ProgressTracker:
        """A tracker fed with the log up to byte ``upto``, to be fed the rest as it comes."""
        tracker = ProgressTracker()
        tracker.feed(self._log_tail(job_id, upto, PROGRESS_SCAN_BYTES))
        return tracker

    def failure_summary(self, job_id: int) -> FailureSummary:
        """Failed tasks (with the end of each one's saved log) and git problems in the log."""
        self.get(job_id)
        text = self._log_tail(job_id, self._files.log_size(job_id), FAILURE_SCAN_BYTES)
        return summarize(text, self._files.read_task_logs(job_id))

    def _log_tail(self, job_id: int, upto: int, limit: int) -> str:
        """The log text before byte ``upto``, at most ``limit`` bytes, from a line start."""
        upto = max(0, upto)
        start = max(0, upto - limit)
        data = self._files.read_log(job_id, start, upto - start)
        if start > 0:
            data = data[data.find(b"\n") + 1:]  # drop the line cut in the middle
        return data.decode("utf-8", errors="replace")

    def artifacts(self, job_id: int) -> list[ArtifactInfo]:
        self.get(job_id)
        return self._files.list_artifacts(job_id)

    def open_artifact(self, job_id: int, name: str):
        """(binary file, ArtifactInfo); raises JobNotFound or ArtifactNotFound."""
        self.get(job_id)
        return self._files.open_artifact(job_id, name)

    # --- commands ------------------------------------------------------------------------

    def submit(self, owner: str, repo_url: str, ref: str, machine: str, target: str,
               kas_file: str | None = None) -> Job:
        """Validate and queue a build; raises InvalidRequest with a message per bad field."""
        request = BuildRequest.parse(repo_url, ref, machine, target, self._allowed_hosts,
                                     kas_file=kas_file)
        return self._queue(owner, request)

    def rebuild(self, job_id: int, user: str) -> Job:
        """A new PENDING job with the same parameters, owned by ``user``."""
        old = self.get(job_id)
        request = BuildRequest.parse(old.repo_url, old.ref, old.machine, old.target,
                                     kas_file=old.kas_file)
        return self._queue(user, request)

    def _queue(self, owner: str, request: BuildRequest) -> Job:
        job = Job(
            owner=owner,
            repo_url=str(request.repo_url),
            ref=str(request.ref),
            machine=str(request.machine),
            target=str(request.target),
            created_at=self._clock.now(),
            kas_file=str(request.kas_file) if request.kas_file else None,
        )
        with self._lock:
            job = self._jobs.add(job)
            patterns = merge_patterns([self._events.artifact_patterns(job)])
            self._files.create(job, patterns, self._build_settings)
        return job

    def may_cancel(self, job: Job, user: str | None) -> bool:
        """Whether ``user`` may cancel ``job`` now: it has not ended, and ``user`` owns it or
        is an administrator."""
        return not job.is_terminal and self._may_stop(job, user)

    def _may_stop(self, job: Job, user: str | None) -> bool:
        if not user:
            return False
        return job.owner == user or (self._admins is not None and self._admins.is_admin(user))

    def cancel(self, job_id: int, user: str) -> Job:
        """PENDING jobs leave the queue at once; RUNNING ones are asked to stop. Only the owner
        or an administrator may; it needs nothing but the job's id and owner (no process
        handle), so it works as well for a build started before a service restart."""
        with self._lock:
            job = self.get(job_id)
            if not self._may_stop(job, user):
                raise NotAllowed("only the owner of a build can cancel it")
            if job.status is JobStatus.PENDING:
                old = job.cancel(self._clock.now(), f"cancelled by {user} before it started")
                self._store(job, old)
            elif job.status is JobStatus.RUNNING:
                job.cancel_requested_by = user
                self._jobs.save(job)
                self._runner.cancel(job)
            return job

    def tick(self) -> None:
        """One scheduler step: record finished builds, then start queued ones."""
        self.watch()
        self.start_next()

    def start_next(self) -> list[Job]:
        started: list[Job] = []
        with self._lock:
            running = len(self._jobs.with_status(JobStatus.RUNNING))
            shortage: str | None = None
            for job in self._jobs.with_status(JobStatus.PENDING):
                if running >= self._max_running:
                    self._set_waiting(job, shortage)  # waits for a slot: no stale disk reason
                    continue
                if shortage is None and self._disk_guard is not None:
                    shortage = self._disk_guard.shortage()
                if shortage is not None:
                    self._set_waiting(job, shortage)  # stays queued until there is room
                    continue
                old = job.start(self._clock.now())
                self._store(job, old)
                running += 1
                try:
                    process = self._runner.launch(job)
                except RunnerError as exc:
                    old = job.fail(f"the build could not be started: {exc}", self._clock.now())
                    self._store(job, old)
                    continue
                job.attach_process(process.pid, process.start_time)
                self._jobs.save(job)
                self._processes[job.id] = process  # type: ignore[index]
                started.append(job)
        return started

    def _set_waiting(self, job: Job, reason: str | None) -> None:
        """Store why a queued job waits (shown on its page), only when that changed."""
        if job.waiting_reason != reason:
            job.waiting_reason = reason
            self._jobs.save(job)

    def watch(self) -> list[Job]:
        """Record every build that has ended; returns the jobs that became terminal."""
        ended: list[Job] = []
        with self._lock:
            for job in self._jobs.with_status(JobStatus.RUNNING):
                process = self._processes.get(job.id)  # type: ignore[arg-type]
                if process is not None:
                    exit_code = process.poll()
                    if exit_code is None:
                        continue
                    del self._processes[job.id]  # type: ignore[arg-type]
                    self._record_end(job, self._files.read_status(job.id), exit_code,  # type: ignore[arg-type]
                                     process.error_output())
                    ended.append(job)
                    continue
                # Not started by this process (the service restarted): status.json, then liveness.
                status = self._files.read_status(job.id)  # type: ignore[arg-type]
                if status is None and job.pid is None:
                    # The service stopped between marking it RUNNING and recording the pid:
                    # the runner, if it started, says who it is in runner.pid.
                    runner_pid = self._files.read_runner_pid(job.id)  # type: ignore[arg-type]
                    if runner_pid is not None:
                        job.attach_process(runner_pid)
                        self._jobs.save(job)
                if status is None and self._runner.probe(job):
                    continue
                if status is None:
                    status = self._files.read_status(job.id)  # it may have written it just now
                self._record_end(job, status, None, "")
                ended.append(job)
        return ended

    def _record_end(self, job: Job, status: RunnerStatus | None, exit_code: int | None,
                    error_output: str) -> None:
        now = self._clock.now()
        if status is not None and status.status == JobStatus.CANCELLED or (
            job.cancel_requested_by and (status is None or status.exit_code != 0)
        ):
            old = job.cancel(now, f"cancelled by {job.cancel_requested_by or 'the runner'}")
            job.exit_code = status.exit_code if status else exit_code
        elif status is not None and status.exit_code is not None:
            old = job.finish(status.exit_code, now, _failure_reason(status.exit_code))
        elif exit_code is not None:
            detail = f": {error_output.strip()}" if error_output.strip() else ""
            old = job.fail(f"the runner ended with exit code {exit_code} without writing "
                           f"its status{detail}", now, exit_code)
        else:
            old = job.fail("the runner process is gone and left no status: it was killed, or "
                           "the machine restarted, while the service was not watching", now)
        self._store(job, old)

    def _store(self, job: Job, old: JobStatus) -> None:
        self._jobs.save(job)
        if old is not job.status:
            self._events.job_status_changed(job, old, job.status)


def _failure_reason(exit_code: int) -> str | None:
    return None if exit_code == 0 else f"the build ended with exit code {exit_code}"
