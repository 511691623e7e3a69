"""JobEvents that also push every status change to the job's live-log viewers at once."""

from __future__ import annotations

from typing import Protocol

from autobuild.domain.jobs import Job, JobStatus
from autobuild.domain.ports import JobEvents


class Notified(Protocol):
    def notify(self, job_id: int) -> None:
        """The job changed (called from any thread, after the change was stored)."""
        ...


class PushingJobEvents:
    """Implements JobEvents: the plugins' hooks, then a wake-up for the job's tailers (so a
    viewer sees RUNNING, SUCCESS... without anyone polling the database for it)."""

    def __init__(self, hooks: JobEvents, tailers: Notified) -> None:
        self._hooks = hooks
        self._tailers = tailers

    def artifact_patterns(self, job: Job) -> list[str]:
        return self._hooks.artifact_patterns(job)

    def job_status_changed(self, job: Job, old: JobStatus, new: JobStatus) -> None:
        try:
            self._hooks.job_status_changed(job, old, new)
        finally:
            self._tailers.notify(job.id)
