"""Supervision: starting queued builds and recording how running ones end.

Business rules:
- jobs start oldest first, and never more than ``max_running`` run at once; with a runner
  that queues (a cluster) every job is handed over as it comes and the cluster decides when
  it runs: the job stays PENDING, with the cluster's reason, until it starts there;
- no job starts while the disk guard reports a shortage: queued jobs wait with the reason;
- what the runner gets (artifact patterns, build settings) is decided and stored before the
  first launch, and never changes after;
- a job is marked RUNNING once its runner was launched; a service stopped in between finds
  that runner again (or its end) on start instead of launching a second one;
- the runner says how a build ended; a build whose runner vanished without saying is FAILED
  with the reason, and one whose runner never began says so;
- an ended build is stored with the commit its ref resolved to (its provenance), so lists
  filter by it and plugins are told it; a log that says none (or cannot be read) leaves none;
- plugins are told every status change, after it is stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .artifacts import merge_patterns
from .disk import DiskGuard
from .jobs import Job, JobStatus
from .orders import BuildSettings
from .provenance import Provenance
from .ports import (
    BuildRunner,
    Checkpoints,
    Clock,
    Ended,
    JobEvents,
    JobRepository,
    Lost,
    NoCheckpoints,
    Running,
    RunnerError,
    RunnerState,
    Waiting,
)

log = logging.getLogger(__name__)

# Named steps, for Checkpoints.
START_DECIDED = "start.decided"
START_LAUNCHED = "start.launched"
START_RECORDED = "start.recorded"
HANDED_OVER = "handed to the cluster, waiting for it to start the build"


class Supervisor:
    def __init__(self, jobs: JobRepository, runner: BuildRunner, events: JobEvents,
                 clock: Clock, lock: threading.RLock, max_running: int = 1,
                 build_settings: BuildSettings | None = None,
                 disk_guard: DiskGuard | None = None,
                 checkpoints: Checkpoints | None = None,
                 provenance: Callable[[int], Provenance] | None = None) -> None:
        self._jobs = jobs
        self._runner = runner
        self._events = events
        self._clock = clock
        self._lock = lock
        self._max_running = max(1, max_running)
        self._build_settings = build_settings or BuildSettings()
        self._disk_guard = disk_guard
        self._checkpoints = checkpoints or NoCheckpoints()
        self._provenance = provenance  # JobQueries.provenance: what a job's log says it built

    def reconcile(self) -> None:
        """On start: adopt the runners a stopped service launched but did not record, record
        the builds that ended while nobody watched, then the usual tick."""
        with self._lock:
            for job in self._jobs.with_status(JobStatus.PENDING):
                if job.artifact_patterns is None or job.handed_over:
                    continue  # never got as far as a launch; or watched as queued
                state = self._runner.state(job)
                if isinstance(state, Lost) and not state.started:
                    continue  # never ran: it starts in turn
                if isinstance(state, Waiting):  # in the cluster's queue: found again
                    self._hand_over(job, state.runner_ref, state.reason)
                    continue
                self._record_start(job, state.runner_ref if isinstance(state, Running) else None,
                                   state.where if isinstance(state, Running) else None)
                if not isinstance(state, Running):
                    self._record_end(job, state)
        self.tick()

    def tick(self) -> None:
        """One step: record finished builds, then start queued ones."""
        self.watch()
        self.start_next()

    def watch(self) -> list[Job]:
        """Record every build that has ended (and, in a cluster, every queued one that
        started, and why the others still wait); returns the jobs that became terminal."""
        ended: list[Job] = []
        with self._lock:
            queued = [job for job in self._jobs.with_status(JobStatus.PENDING)
                      if job.handed_over]
            for job in [*queued, *self._jobs.with_status(JobStatus.RUNNING)]:
                try:
                    if self._follow(job, self._runner.state(job)):
                        ended.append(job)
                except Exception:  # one job's trouble must not stop recording the others'
                    log.exception("job %s: could not record how it ended", job.id)
        return ended

    def _follow(self, job: Job, state: RunnerState) -> bool:
        """Record what ``state`` says of a running or queued ``job``; True if it ended."""
        if isinstance(state, Waiting):
            if job.status is JobStatus.PENDING:
                self._hand_over(job, state.runner_ref, state.reason)
            return False
        if isinstance(state, Running):
            if job.status is JobStatus.PENDING:
                self._record_start(job, state.runner_ref, state.where)
            elif state.where is not None and state.where != job.node:
                job.node = state.where
                self._jobs.save(job)
            return False
        if job.status is JobStatus.PENDING:  # ended in the cluster's queue, never started
            if isinstance(state, Ended) and state.status is JobStatus.CANCELLED:
                who = job.cancel_requested_by or "the cluster"
                old = job.cancel(self._clock.now(), f"cancelled by {who} before it started")
                job.exit_code = state.exit_code
                self._store(job, old)
                return True
            self._record_start(job, None)
        self._record_end(job, state)
        return True

    def start_next(self) -> list[Job]:
        started: list[Job] = []
        with self._lock:
            running = len(self._jobs.with_status(JobStatus.RUNNING))
            queues = self._runner.queues  # a cluster: how many run at once is its business
            shortage: str | None = None
            for job in self._jobs.with_status(JobStatus.PENDING):
                if job.handed_over:
                    continue  # in the cluster's queue already
                if running >= self._max_running and not queues:
                    self._wait(job, None)  # waits for a slot: no stale disk reason
                    continue
                if shortage is None and self._disk_guard is not None:
                    shortage = self._disk_guard.shortage()
                if shortage is not None:
                    self._wait(job, shortage)  # stays queued until there is room
                    continue
                if self._start(job):  # a launch that failed takes no slot
                    running += 1
                    started.append(job)
        return started

    def _start(self, job: Job) -> bool:
        """Decide, launch, record; False when the runner could not start it (then FAILED)."""
        if job.decide(tuple(merge_patterns([self._events.artifact_patterns(job)])),
                      self._build_settings):
            self._jobs.save(job)
        self._checkpoints.reached(START_DECIDED)
        try:
            runner_ref = self._runner.launch(job)
        except RunnerError as exc:
            self._record_start(job, None)
            old = job.fail(f"the build could not be started: {exc}", self._clock.now())
            self._store(job, old)
            return False
        self._checkpoints.reached(START_LAUNCHED)
        if self._runner.queues:
            self._hand_over(job, runner_ref, HANDED_OVER)
        else:
            self._record_start(job, runner_ref)
        self._checkpoints.reached(START_RECORDED)
        return True

    def _record_start(self, job: Job, runner_ref: str | None, node: str | None = None) -> None:
        old = job.start(self._clock.now(), runner_ref, node)
        self._store(job, old)

    def _hand_over(self, job: Job, runner_ref: str | None, reason: str) -> None:
        if job.hand_over(runner_ref, reason):
            self._jobs.save(job)

    def _wait(self, job: Job, reason: str | None) -> None:
        if job.wait(reason):
            self._jobs.save(job)

    def _record_end(self, job: Job, state: RunnerState) -> None:
        now = self._clock.now()
        if isinstance(state, Ended) and state.status is JobStatus.CANCELLED:
            who = job.cancel_requested_by or "a signal to the runner"
            old = job.cancel(now, f"cancelled by {who}")
            job.exit_code = state.exit_code
        elif isinstance(state, Ended) and state.status is JobStatus.FAILED and state.exit_code == 0:
            old = job.fail("the runner reported a failure with exit code 0", now, 0)
        elif isinstance(state, Ended):
            reason = None if state.exit_code == 0 else \
                f"the build ended with exit code {state.exit_code}"
            old = job.finish(state.exit_code, now, reason)
        elif isinstance(state, Lost) and state.started:
            old = job.fail(state.reason, now)
        elif isinstance(state, Lost):
            old = job.fail(f"the build never started: {state.reason}", now)
        else:
            raise ValueError(f"job {job.id} is still running")
        job.commit = self._built_commit(job)
        self._store(job, old)

    def _built_commit(self, job: Job) -> str | None:
        if self._provenance is None:
            return job.commit
        try:
            return self._provenance(job.id).commit
        except Exception:  # what a build wrote is no reason not to record its end
            log.exception("job %s: could not read what it built", job.id)
            return job.commit

    def _store(self, job: Job, old: JobStatus) -> None:
        self._jobs.save(job)
        if old is not job.status:
            self._events.job_status_changed(job, old, job.status)
