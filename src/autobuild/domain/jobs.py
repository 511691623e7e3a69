"""A build job and the rules of its lifecycle."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from .orders import BuildSettings
from .requests import BuildRequest


class JobStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.CANCELLED})

# The whole lifecycle: anything not listed here is illegal; terminal states have no way out.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.SUCCESS: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


class InvalidTransition(Exception):
    """A status change the lifecycle does not allow (e.g. SUCCESS -> RUNNING)."""

    def __init__(self, job_id: int, old: JobStatus, new: JobStatus) -> None:
        super().__init__(f"job {job_id}: cannot go from {old} to {new}")
        self.job_id = job_id
        self.old = old
        self.new = new


@dataclass(frozen=True)
class Submission:
    """A validated build request of ``owner``, not yet stored. Stored in one step
    (``JobRepository.add``): a job exists with all its parameters or not at all."""

    owner: str
    request: BuildRequest
    created_at: datetime


@dataclass
class Job:
    """One build request and what became of it.

    Timestamps are timezone-aware UTC and never move backwards: a clock that steps back
    is clamped to the previous timestamp of the same job.
    """

    id: int
    owner: str
    repo_url: str
    ref: str
    machine: str
    target: str
    created_at: datetime
    status: JobStatus = JobStatus.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = None
    # What the runner adapter needs to find the build again (opaque to the core).
    runner_ref: str | None = None
    cancel_requested_by: str | None = None
    kas_file: str | None = None  # None: the runner looks for kas.yml itself
    waiting_reason: str | None = None  # why a PENDING job has not started yet
    node: str | None = None  # the host the build runs (ran) on, when not the service's own
    commit: str | None = None  # the full commit id its ref resolved to (provenance), once ended
    purged_at: datetime | None = None  # when retention removed its logs and artifacts
    # Decided once, just before the first launch, and stored before it: the runner gets
    # exactly these (None until then).
    artifact_patterns: tuple[str, ...] | None = None
    settings: BuildSettings | None = None

    @classmethod
    def from_submission(cls, job_id: int, submission: Submission) -> Job:
        request = submission.request
        return cls(id=job_id, owner=submission.owner, repo_url=str(request.repo_url),
                   ref=str(request.ref), machine=str(request.machine),
                   target=str(request.target), created_at=submission.created_at,
                   kas_file=str(request.kas_file) if request.kas_file else None)

    def request(self) -> BuildRequest:
        """The build parameters as a request (re-validated: they were valid when stored)."""
        return BuildRequest.parse(self.repo_url, self.ref, self.machine, self.target,
                                  kas_file=self.kas_file)

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def _move(self, new: JobStatus) -> JobStatus:
        old = self.status
        if new not in TRANSITIONS[old]:
            raise InvalidTransition(self.id, old, new)
        self.status = new
        return old

    def _not_before(self, now: datetime) -> datetime:
        latest = self.started_at or self.created_at
        return max(now, latest)

    def start(self, now: datetime, runner_ref: str | None = None,
              node: str | None = None) -> JobStatus:
        """PENDING -> RUNNING, with the runner's reference for it (and the host it runs on,
        when it is not this one). Returns the old status."""
        old = self._move(JobStatus.RUNNING)
        self.started_at = max(now, self.created_at)
        self.waiting_reason = None
        self.runner_ref = runner_ref or self.runner_ref
        self.node = node
        return old

    def hand_over(self, runner_ref: str | None, reason: str) -> bool:
        """A PENDING job was handed to a batch scheduler (a cluster), which queues it for
        ``reason``; it stays PENDING until the scheduler starts it. True if that changed."""
        if self.status is not JobStatus.PENDING:
            raise InvalidTransition(self.id, self.status, JobStatus.PENDING)
        runner_ref = runner_ref or self.runner_ref
        if (self.runner_ref, self.waiting_reason) == (runner_ref, reason):
            return False
        self.runner_ref, self.waiting_reason = runner_ref, reason
        return True

    @property
    def handed_over(self) -> bool:
        """PENDING in a batch scheduler's queue (launched, not started yet)."""
        return self.status is JobStatus.PENDING and self.runner_ref is not None

    def decide(self, artifact_patterns: tuple[str, ...], settings: BuildSettings) -> bool:
        """Fix what the runner will be given, once; True if this decided it now."""
        if self.artifact_patterns is not None and self.settings is not None:
            return False
        self.artifact_patterns = tuple(artifact_patterns)
        self.settings = settings
        return True

    def wait(self, reason: str | None) -> bool:
        """Record why a PENDING job waits (None: it does not); True if that changed."""
        if self.status is not JobStatus.PENDING or self.waiting_reason == reason:
            return False
        self.waiting_reason = reason
        return True

    def request_cancel(self, user: str) -> None:
        """Remember who asked a RUNNING build (or one queued in a cluster) to stop (it ends
        CANCELLED only if it stopped)."""
        if self.status is not JobStatus.RUNNING and not self.handed_over:
            raise InvalidTransition(self.id, self.status, JobStatus.CANCELLED)
        self.cancel_requested_by = user

    def finish(self, exit_code: int, now: datetime, reason: str | None = None) -> JobStatus:
        """RUNNING -> SUCCESS (exit code 0) or FAILED (anything else). Returns the old status."""
        new = JobStatus.SUCCESS if exit_code == 0 else JobStatus.FAILED
        old = self._move(new)
        self.exit_code = exit_code
        self.finished_at = self._not_before(now)
        self.reason = reason if new is JobStatus.FAILED else None
        return old

    def fail(self, reason: str, now: datetime, exit_code: int | None = None) -> JobStatus:
        """RUNNING -> FAILED for a reason the build itself did not report (lost runner...)."""
        old = self._move(JobStatus.FAILED)
        self.exit_code = exit_code
        self.finished_at = self._not_before(now)
        self.reason = reason
        return old

    def cancel(self, now: datetime, reason: str = "cancelled") -> JobStatus:
        """PENDING or RUNNING -> CANCELLED. Returns the old status."""
        old = self._move(JobStatus.CANCELLED)
        self.finished_at = self._not_before(now)
        self.reason = reason
        return old

    def is_expired(self, now: datetime, retention_days: int) -> bool:
        """True when the job ended more than ``retention_days`` days before ``now`` and its
        logs and artifacts are still there (only ended jobs ever expire)."""
        return (self.is_terminal and self.purged_at is None and self.finished_at is not None
                and self.finished_at < now - timedelta(days=retention_days))

    def mark_purged(self, now: datetime) -> None:
        """Record that its logs and artifacts are gone; only an ended job can be purged."""
        if not self.is_terminal:
            raise ValueError(f"job {self.id} is {self.status}: only ended jobs are purged")
        self.purged_at = max(now, self.finished_at or now)

    def duration_seconds(self, now: datetime) -> float | None:
        """Seconds spent running so far (or in all, once finished); None before it starts."""
        if self.started_at is None:
            return None
        end = self.finished_at or now
        return max(0.0, (end - self.started_at).total_seconds())
