"""Queries: what people read about jobs (lists, logs, progress, failures, artifacts).

Nothing here changes a job."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import BinaryIO

from .artifacts import ArtifactInfo, ArtifactList, ArtifactNotFound
from .buildstats import MAX_CONDENSED_BYTES, Timing, TimingView, parse_condensed, timing_view
from .digest import MAX_DIGEST_BYTES, LogDigest
from .failures import FailureSummary, summarize
from .jobs import Job
from .logs import LogChunk, decode_chunk
from .manifests import MAX_MANIFEST_BYTES, PackageCount, choose_manifest, count_packages
from .ports import JobFiles, JobFilter, JobRepository
from .progress import Progress, ProgressTracker
from .provenance import Provenance, ProvenanceCollector
from .sstate import CacheReuse, SstateCollector
from .text import after_first_line_break, after_last_line_break, count_line_breaks

DEFAULT_LOG_CHUNK = 64 * 1024
# Progress and failure summaries come from the runner's digest of the whole log (digest.py)
# and the bytes written after it, if there are at most this many.
DIGEST_GAP_BYTES = 16 * 1024 * 1024
DIGEST_READ_BYTES = 1024 * 1024
# A build without a digest (from before digests): how much of the end of its log is read.
PROGRESS_SCAN_BYTES = 4 * 1024 * 1024
FAILURE_SCAN_BYTES = 8 * 1024 * 1024
PROVENANCE_SCAN_BYTES = 4 * 1024 * 1024  # the commit and Build Configuration come early
CACHE_SCAN_BYTES = 8 * 1024 * 1024  # the sstate summary comes early, the task summary last
# What one call reads of a log line by line: at most this many bytes, and a line for every
# BYTES_PER_LINE of them. A build writes its own log (and could leave its digest behind or
# remove it), and the readers cost per line, so a log of blank lines must not cost more than
# one of bitbake's (whose lines are longer than that on average).
REPLAY_BYTES = 1024 * 1024
BYTES_PER_LINE = 32
# A digest that is big, or was brought up to date over many bytes, or that a call could not
# bring up to date (REPLAY_BYTES), is kept as read: a job page reads the digest four times
# (progress, failure, provenance, cache reuse), each view again, and the next call goes on
# from where the last stopped. Kept: the last REPLAYS_KEPT, weighing at most
# REPLAYS_KEPT_BYTES (a digest's file size and the bytes replayed into it).
DIGEST_KEPT_FROM_BYTES = 64 * 1024
REPLAY_KEPT_FROM_BYTES = 256 * 1024
REPLAYS_KEPT = 64
REPLAYS_KEPT_BYTES = 64 * 1024 * 1024


class JobNotFound(Exception):
    """No job with that id."""


@dataclass(frozen=True)
class _Kept:
    """A digest as read (from the file saved at log byte ``saved_at``, replayed on to its own
    offset), and what it weighs against REPLAYS_KEPT_BYTES."""

    saved_at: int
    digest: LogDigest
    weight: int


@dataclass(frozen=True)
class Page:
    """One page of a job list, newest first. ``newer``/``older`` are the cursors of the
    neighbouring pages (``after=newer``, ``before=older``), None where there is none; no
    page numbers and no total, so a page costs the same at any depth."""

    items: list[Job]
    per_page: int
    where: JobFilter
    newer: int | None
    older: int | None

    @property
    def has_prev(self) -> bool:
        return self.newer is not None

    @property
    def has_next(self) -> bool:
        return self.older is not None


class JobQueries:
    def __init__(self, jobs: JobRepository, files: JobFiles) -> None:
        self._jobs = jobs
        self._files = files
        self._replays: OrderedDict[tuple[int, int, int], _Kept] = OrderedDict()
        self._replays_lock = threading.Lock()

    def get(self, job_id: int) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list_page(self, where: JobFilter | None = None, per_page: int = 25,
                  before: int | None = None, after: int | None = None,
                  number: int = 1) -> Page:
        """The jobs matching ``where`` below id ``before``, or the page just above id
        ``after``, or the newest; an empty page beyond either end comes back as the first
        or last page. ``number`` > 1 (an old numbered link, unfiltered list only) is found
        once by offset and costs what offsets cost."""
        where = where or JobFilter()
        per_page = min(max(1, per_page), 200)
        if number > 1 and before is None and after is None and where == JobFilter():
            skipped = self._jobs.list_page(limit=1, offset=(number - 1) * per_page)
            before = skipped[0].id + 1 if skipped else 1  # beyond the end: the last page
        if after is not None and before is None:
            items = self._jobs.list_keyset(where, per_page + 1, after=after)
            newer_exists = len(items) > per_page
            items = items[1:] if newer_exists else items
            if len(items) < per_page:  # reached the newest: show a full first page
                return self.list_page(where, per_page)
            older_exists = bool(self._jobs.list_keyset(where, 1, before=items[-1].id))
        else:
            items = self._jobs.list_keyset(where, per_page + 1, before=before)
            older_exists = len(items) > per_page
            items = items[:per_page]
            if not items and before is not None:  # beyond the oldest: show the last page
                last = self._jobs.list_keyset(where, per_page, after=0)
                items, older_exists = last, False
            newer_exists = bool(items) and before is not None and bool(
                self._jobs.list_keyset(where, 1, after=items[0].id))
        return Page(items=items, per_page=per_page, where=where,
                    newer=items[0].id if newer_exists else None,
                    older=items[-1].id if older_exists else None)

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
        """How far the build has come, from its whole log."""
        job = self.get(job_id)
        return self.track_progress(job_id, self._files.log_size(job)).progress

    def track_progress(self, job_id: int, upto: int) -> ProgressTracker:
        """A tracker fed with the log up to byte ``upto``, to be fed the rest as it comes:
        the runner's digest and the bytes after it (the last few MB for a build without one)."""
        job = self.get(job_id)
        digest = self._digest(job, upto)
        if digest is not None:
            return digest.tracker
        tracker = ProgressTracker()
        tracker.feed(self._log_tail(job, upto, PROGRESS_SCAN_BYTES)[0])
        return tracker

    def failure_summary(self, job_id: int) -> FailureSummary:
        """Failed tasks (with the end of each one's saved log) and git problems in the log."""
        job = self.get(job_id)
        size = self._files.log_size(job)
        task_logs = self._files.read_task_logs(job)
        digest = self._digest(job, size)
        if digest is not None:
            summary = digest.failure(task_logs)
            if digest.offset < size and summary.incomplete is None:
                summary = replace(
                    summary, read_bytes=digest.offset, log_bytes=size, incomplete=(
                        f"Only the first {digest.offset:,} bytes of this {size:,}-byte log "
                        "have been summarised yet; reload to read further"))
            return summary
        text, cut = self._log_tail(job, size, FAILURE_SCAN_BYTES)
        summary = summarize(text, task_logs)
        if cut:
            return replace(summary, incomplete=(
                f"This build kept no digest of its log: only its last "
                f"{FAILURE_SCAN_BYTES >> 20} MiB were read, an earlier error may be missing"))
        return summary

    def provenance(self, job_id: int) -> Provenance:
        """What the build really built: the commit its ref resolved to and bitbake's Build
        Configuration (version, DISTRO, MACHINE, layers and their revisions), from the
        runner's digest, or for a build without one from the start of its log."""
        job = self.get(job_id)
        digest = self._digest(job, self._files.log_size(job))
        if digest is not None:
            return digest.provenance
        collector = ProvenanceCollector()
        head = self._files.read_log(job, 0, PROVENANCE_SCAN_BYTES)
        lines = head.split(b"\n", _line_budget(len(head)))[:_line_budget(len(head))]
        collector.add_lines(line.decode("utf-8", errors="replace") for line in lines)
        return collector.provenance

    def cache_reuse(self, job_id: int, digest_bytes: int = MAX_DIGEST_BYTES,
                    gap_bytes: int = DIGEST_GAP_BYTES,
                    scan_bytes: int = CACHE_SCAN_BYTES) -> CacheReuse:
        """What the sstate cache saved the build (sstate summary, setscene and real tasks),
        from the runner's digest; for a build whose digest predates it, or without one, from
        its log when it has at most ``scan_bytes`` (nothing is known otherwise: a partial
        count would mislead). The limits bound what one call reads (insights read many)."""
        job = self.get(job_id)
        size = self._files.log_size(job)
        digest = self._digest(job, size, digest_bytes, gap_bytes)
        if digest is not None and digest.sstate_known:
            return digest.cache_reuse
        if size > scan_bytes:
            return CacheReuse()
        collector = SstateCollector()
        text, cut = self._log_tail(job, size, scan_bytes)
        if cut:  # more lines than are read: a partial count would mislead
            return CacheReuse()
        collector.add_lines(text.splitlines())
        return collector.reuse

    def _digest(self, job: Job, upto: int, digest_bytes: int = MAX_DIGEST_BYTES,
                gap_bytes: int = DIGEST_GAP_BYTES) -> LogDigest | None:
        """The runner's digest of the log brought toward byte ``upto``; None when there is
        none, it cannot be read, it is bigger than ``digest_bytes``, or it is not within
        ``gap_bytes`` before ``upto``. One call reads at most REPLAY_BYTES of the log (and
        its budget of lines): the digest's ``offset`` says how far it came, and the next
        call goes on from there."""
        raw = self._files.read_digest(job, min(digest_bytes, MAX_DIGEST_BYTES))
        if raw is None:
            return None
        key = (job.id, len(raw), hash(raw))  # this version of the digest file
        with self._replays_lock:
            kept = self._replays.get(key)
            if kept is not None:
                self._replays.move_to_end(key)
        if kept is not None and kept.digest.offset <= upto:
            saved_at, digest = kept.saved_at, copy.deepcopy(kept.digest)  # callers feed it
        else:
            try:
                digest = LogDigest.parse(raw)
            except ValueError:
                return None
            saved_at = digest.offset
        if not saved_at <= upto <= saved_at + gap_bytes:
            return None
        start = position = digest.offset
        budget = min(REPLAY_BYTES, gap_bytes)
        lines = _line_budget(budget)
        while position < upto and budget > 0 and lines > 0:
            data = self._files.read_log(job, position, min(DIGEST_READ_BYTES, budget,
                                                           upto - position))
            if not data:
                break
            data, counted = _within_lines(data, lines)
            if not data:
                break
            digest.feed(data)
            position += len(data)
            budget -= len(data)
            lines -= counted
        if (kept is None and len(raw) >= DIGEST_KEPT_FROM_BYTES) or (position > start and (
                position < upto or position - saved_at >= REPLAY_KEPT_FROM_BYTES)):
            self._keep(key, _Kept(saved_at, copy.deepcopy(digest),
                                  len(raw) + position - saved_at))
        return digest

    def _keep(self, key: tuple[int, int, int], kept: _Kept) -> None:
        with self._replays_lock:
            self._replays[key] = kept
            self._replays.move_to_end(key)
            while len(self._replays) > REPLAYS_KEPT or sum(
                    each.weight for each in self._replays.values()) > REPLAYS_KEPT_BYTES:
                self._replays.popitem(last=False)

    def _log_tail(self, job: Job, upto: int, limit: int) -> tuple[str, bool]:
        """The log text before byte ``upto``, at most ``limit`` bytes, from a line start; and
        whether the log was cut (it has more before)."""
        upto = max(0, upto)
        start = max(0, upto - limit)
        data = self._files.read_log(job, start, upto - start)
        if start > 0:
            data = data[after_first_line_break(data):]  # drop the line cut in the middle
        cut = start > 0
        while count_line_breaks(data) > _line_budget(limit):  # the end of a log of short lines
            data = data[len(data) // 2:]
            data = data[after_first_line_break(data):]
            cut = True
        return data.decode("utf-8", errors="replace"), cut

    def artifacts(self, job_id: int) -> ArtifactList:
        """The first MAX_ARTIFACTS_LISTED artifacts by name (``more``: the others)."""
        return self._files.list_artifacts(self.get(job_id))

    def packages(self, job_id: int, limit: int = MAX_MANIFEST_BYTES,
                 artifacts: list[ArtifactInfo] | None = None) -> PackageCount | None:
        """The package count of the image manifest among the job's artifacts (see
        manifests.py; ``artifacts``: the list when the caller has it); None when it has none,
        or it is bigger than ``limit`` (at most MAX_MANIFEST_BYTES)."""
        manifest = self.manifest_text(job_id, limit, artifacts)
        if manifest is None:
            return None
        return PackageCount(count_packages(manifest[1]), manifest[0])

    def manifest_text(self, job_id: int, limit: int = MAX_MANIFEST_BYTES,
                      artifacts: list[ArtifactInfo] | None = None) -> tuple[str, str] | None:
        """(name, text) of the image manifest among the job's artifacts (choose_manifest);
        None when it has none, it is unreadable or bigger than ``limit`` (at most
        MAX_MANIFEST_BYTES)."""
        job = self.get(job_id)
        limit = min(limit, MAX_MANIFEST_BYTES)
        listed = self._files.list_artifacts(job) if artifacts is None else artifacts
        name = choose_manifest((a.name for a in listed), job.target, job.machine)
        if name is None:
            return None
        try:
            fileobj, info = self._files.open_artifact(job, name)
            with fileobj:
                data = fileobj.read(limit + 1) if info.size <= limit else b""
        except (ArtifactNotFound, OSError):
            return None  # removed since it was listed, or unreadable
        if max(info.size, len(data)) > limit:
            return None
        return name, data.decode("utf-8", errors="replace")

    def timing(self, job_id: int, top: int = 10) -> TimingView | None:
        """Where the build's time went, from the runner's condensed buildstats; None when the
        build left none, a TimingView with ``problem`` set when they cannot be read."""
        raw = self._files.read_timing(self.get(job_id), MAX_CONDENSED_BYTES)
        if raw is None:
            return None
        if len(raw) > MAX_CONDENSED_BYTES:
            return TimingView.unavailable("the buildstats file is too large")
        view = timing_view(parse_condensed(raw.decode("utf-8", errors="replace")), top)
        return view or TimingView.unavailable("the buildstats file holds no readable task")

    def build_timing(self, job_id: int) -> Timing | None:
        """Every task's timing of the build (for comparing two builds with
        buildstats.timing_differences); None when it left none or they cannot be read."""
        raw = self._files.read_timing(self.get(job_id), MAX_CONDENSED_BYTES)
        if raw is None or len(raw) > MAX_CONDENSED_BYTES:
            return None
        timing = parse_condensed(raw.decode("utf-8", errors="replace"))
        return None if timing.is_empty else timing

    def open_artifact(self, job_id: int, name: str) -> tuple[BinaryIO, ArtifactInfo]:
        """(binary file, ArtifactInfo); raises JobNotFound or ArtifactNotFound."""
        return self._files.open_artifact(self.get(job_id), name)

    def open_log(self, job_id: int) -> tuple[BinaryIO, int]:
        """(binary file, size) of the whole build log; raises JobNotFound or LogNotFound."""
        return self._files.open_log(self.get(job_id))

    def log_size(self, job_id: int) -> int:
        """How many bytes the build log has now (0 before it exists)."""
        return self._files.log_size(self.get(job_id))


def _line_budget(nbytes: int) -> int:
    """How many lines a call reading ``nbytes`` of a log reads at most."""
    return max(1024, nbytes // BYTES_PER_LINE)


def _within_lines(data: bytes, lines: int) -> tuple[bytes, int]:
    """``data`` cut after a line break (text.py: as its readers split it) so that it ends at
    most ``lines`` (at least 1) of them, but never less than its first line; and how many it
    ends. Halving keeps the counting in C, whatever the number of lines."""
    count = count_line_breaks(data)
    first = after_first_line_break(data)
    while count > lines:
        data = data[:max(first, len(data) // 2)]
        data = data[:after_last_line_break(data)]
        count = count_line_breaks(data)
    return data, count
