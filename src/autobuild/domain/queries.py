"""Queries: what people read about jobs (lists, logs, progress, failures, artifacts).

Nothing here changes a job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from .artifacts import ArtifactInfo
from .failures import FailureSummary, summarize
from .jobs import Job
from .logs import LogChunk, decode_chunk
from .ports import JobFiles, JobRepository
from .progress import Progress, ProgressTracker

DEFAULT_LOG_CHUNK = 64 * 1024
# How much of the end of a log progress and failure summaries read: bitbake logs reach
# hundreds of MB, and what they need is near the end.
PROGRESS_SCAN_BYTES = 4 * 1024 * 1024
FAILURE_SCAN_BYTES = 8 * 1024 * 1024


class JobNotFound(Exception):
    """No job with that id."""


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


class JobQueries:
    def __init__(self, jobs: JobRepository, files: JobFiles) -> None:
        self._jobs = jobs
        self._files = files

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
        size = self._files.log_size(job)
        offset = min(offset, size)
        data = self._files.read_log(job, offset, max(1, limit))
        at_end = job.is_terminal and offset + len(data) >= size
        text, next_offset = decode_chunk(data, offset, at_end)
        return LogChunk(offset=offset, next_offset=next_offset, text=text,
                        complete=job.is_terminal and next_offset >= size)

    def progress(self, job_id: int) -> Progress:
        """How far the build has come, from (the last few MB of) its log."""
        job = self.get(job_id)
        return self.track_progress(job_id, self._files.log_size(job)).progress

    def track_progress(self, job_id: int, upto: int) -> ProgressTracker:
        """A tracker fed with the log up to byte ``upto``, to be fed the rest as it comes."""
        tracker = ProgressTracker()
        tracker.feed(self._log_tail(self.get(job_id), upto, PROGRESS_SCAN_BYTES))
        return tracker

    def failure_summary(self, job_id: int) -> FailureSummary:
        """Failed tasks (with the end of each one's saved log) and git problems in the log."""
        job = self.get(job_id)
        text = self._log_tail(job, self._files.log_size(job), FAILURE_SCAN_BYTES)
        return summarize(text, self._files.read_task_logs(job))

    def _log_tail(self, job: Job, upto: int, limit: int) -> str:
        """The log text before byte ``upto``, at most ``limit`` bytes, from a line start."""
        upto = max(0, upto)
        start = max(0, upto - limit)
        data = self._files.read_log(job, start, upto - start)
        if start > 0:
            data = data[data.find(b"\n") + 1:]  # drop the line cut in the middle
        return data.decode("utf-8", errors="replace")

    def artifacts(self, job_id: int) -> list[ArtifactInfo]:
        return self._files.list_artifacts(self.get(job_id))

    def open_artifact(self, job_id: int, name: str) -> tuple[BinaryIO, ArtifactInfo]:
        """(binary file, ArtifactInfo); raises JobNotFound or ArtifactNotFound."""
        return self._files.open_artifact(self.get(job_id), name)
