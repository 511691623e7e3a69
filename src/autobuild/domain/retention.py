"""Retention: the logs and artifacts of ended jobs are kept for a number of days, then removed.

Business rules:
- only ended jobs (SUCCESS, FAILED, CANCELLED) expire, ``days`` days after they finished;
- a job is purged once: the runner deletes, as the owner, everything the build left (and the
  service's own record of its launch); then the job records ``purged_at``;
- the job itself (its parameters, status and times) stays in the list for good;
- a job that cannot be purged (sudo refused, a file stays) is reported and left as it is, and
  the others are still purged.
"""

from __future__ import annotations

from dataclasses import dataclass

from .jobs import TERMINAL_STATUSES, Job
from .ports import BuildRunner, Clock, JobFiles, JobRepository


@dataclass(frozen=True)
class PurgeResult:
    """What happened to one expired job: ``error`` is None when it was purged."""

    job: Job
    bytes_used: int  # what its directory took before (what was freed, when purged)
    error: str | None = None

    @property
    def purged(self) -> bool:
        return self.error is None


class Retention:
    def __init__(self, jobs: JobRepository, files: JobFiles, runner: BuildRunner, clock: Clock,
                 days: int) -> None:
        if days < 1:
            raise ValueError("retention must be at least one day")
        self._jobs = jobs
        self._files = files
        self._runner = runner
        self._clock = clock
        self.days = days

    def expired(self) -> list[Job]:
        """Ended jobs whose logs and artifacts are older than the retention, oldest first."""
        now = self._clock.now()
        return [job for job in self._jobs.with_status(*TERMINAL_STATUSES)
                if job.is_expired(now, self.days)]

    def usage(self, job: Job) -> int:
        """Bytes the job's files take; 0 when they cannot be measured (whatever a build left,
        one job never stops the purge of the others)."""
        try:
            return self._files.usage(job)
        except Exception:
            return 0

    def purge(self, job: Job) -> PurgeResult:
        """Remove what ``job`` left and record it; never raises for a job that cannot be."""
        used = self.usage(job)
        try:
            self._runner.purge(job)
        except Exception as exc:  # RunnerError, or anything else: reported, the rest go on
            return PurgeResult(job, used, str(exc) or type(exc).__name__)
        job.mark_purged(self._clock.now())
        self._jobs.save(job)
        return PurgeResult(job, used)

    def run(self, dry_run: bool = False) -> list[PurgeResult]:
        """Purge every expired job (or, with ``dry_run``, only say what would go)."""
        if dry_run:
            return [PurgeResult(job, self.usage(job)) for job in self.expired()]
        return [self.purge(job) for job in self.expired()]
