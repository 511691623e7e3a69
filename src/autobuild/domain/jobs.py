"""A build job and the rules of its lifecycle."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


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

    def __init__(self, job_id: int | None, old: JobStatus, new: JobStatus) -> None:
        super().__init__(f"job {job_id}: cannot go from {old} to {new}")
        self.job_id = job_id
        self.old = old
        self.new = new


@dataclass
class Job:
    """One build request and what became of it.

    Timestamps are timezone-aware UTC and never move backwards: a clock that steps back
    is clamped to the previous timestamp of the same job.
    """

    owner: str
    repo_url: str
    ref: str
    machine: str
    target: str
    created_at: datetime
    id: int | None = None
    status: JobStatus = JobStatus.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = None
    pid: int | None = None
    pid_start_time: int | None = None  # the process's start time (clock ticks since boot)
    cancel_requested_by: str | None = None
    kas_file: str | None = None  # None: the runner looks for kas.yml itself
    waiting_reason: str | None = None  # why a PENDING job has not started yet
    purged_at: datetime | None = None  # when retention removed its logs and artifacts

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

    def start(self, now: datetime) -> JobStatus:
        """PENDING -> RUNNING. Returns the old status."""
        old = self._move(JobStatus.RUNNING)
        self.started_at = max(now, self.created_at)
        self.waiting_reason = None
        return old

    def attach_process(self, pid: int, start_time: int | None = None) -> None:
        """Remember which process runs this job: pid and start time identify it after a restart."""
        self.pid = pid
        self.pid_start_time = start_time

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
