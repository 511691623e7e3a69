"""Insights over recent builds: the team's sstate reuse, and the trends of one repository +
MACHINE + target (duration, sstate reuse, image size, package count).

Every build's files are its owner's and may be hostile: they are read through JobQueries
(the JobFiles port) with small limits, and at most MAX_BUILDS builds per question, so one
page costs a bounded amount whatever the builds wrote. Anyone signed in may read every job
(permissions.py), so these views show everyone's builds.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from .artifacts import ArtifactInfo
from .jobs import Job
from .manifests import MANIFEST_SUFFIX
from .ports import JobFilter, JobRepository
from .queries import JobQueries
from .sstate import CacheReuse

MAX_BUILDS = 50  # builds whose files one answer reads
SCAN_ROWS = 2000  # job rows (the database only) looked through to find them
PAGE_ROWS = 200
# Per build: what an insight reads of its files (a job page reads more of one build). A build
# whose digest is missing or behind is its owner's doing (the runner digests to the end): its
# log is read only this far, with the line budget of queries.py, 50 times per answer.
DIGEST_BYTES = 256 * 1024  # more is many error lines of a failed build: its reuse shows unknown
GAP_BYTES = 256 * 1024
SCAN_BYTES = 256 * 1024
MANIFEST_BYTES = 1024 * 1024
MAX_FIELD = 4096

# Artifacts that describe an image rather than being one (SBOM, manifests, checksums...).
_NOT_IMAGES = (MANIFEST_SUFFIX, ".spdx.json", ".spdx.index.json", ".spdx.tar.zst", ".json",
               ".txt", ".sha256", ".md5", ".sig", ".asc", ".log", ".testdata.json", ".qemuboot.conf")


class InvalidTarget(ValueError):
    """A repository/MACHINE/target triple no build could have; the message is fit to show."""


@dataclass(frozen=True)
class TargetKey:
    """What a trend follows: builds of ``target`` for ``machine`` from ``repo_url``."""

    repo_url: str
    machine: str
    target: str

    @classmethod
    def parse(cls, repo_url: str, machine: str, target: str) -> TargetKey:
        """The key, or InvalidTarget naming what is missing or too long."""
        missing = [name for name, value in (("repo", repo_url), ("machine", machine),
                                            ("target", target)) if not value.strip()]
        if missing:
            raise InvalidTarget(f"choose a repository, MACHINE and target ({', '.join(missing)}"
                                " missing)")
        if any(len(value) > MAX_FIELD for value in (repo_url, machine, target)):
            raise InvalidTarget(f"a repository, MACHINE or target is at most {MAX_FIELD} "
                                "characters")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for value in (repo_url, machine, target)
               for ch in value):
            raise InvalidTarget("a repository, MACHINE or target has no control characters")
        return cls(repo_url.strip(), machine.strip(), target.strip())

    def matches(self, job: Job) -> bool:
        return (job.repo_url, job.machine, job.target) == (self.repo_url, self.machine,
                                                           self.target)


@dataclass(frozen=True)
class SeenTarget:
    """A combination built recently: ``builds`` of them ended, the newest ``last_id``."""

    key: TargetKey
    builds: int
    last_id: int
    last_at: datetime


@dataclass(frozen=True)
class BuildPoint:
    """One ended build on a trend or the team view. ``image``: the largest image artifact
    (None when it kept none); ``packages``: the image manifest's package count."""

    job: Job
    duration_seconds: float | None
    reuse: CacheReuse
    image: ArtifactInfo | None = None
    packages: int | None = None

    @property
    def match_percent(self) -> int | None:
        return self.reuse.match_percent


@dataclass(frozen=True)
class TeamReuse:
    """The team's sstate reuse over its last ended builds (oldest first). Each build's log
    says its own counts and any build can print any summary (a task can print "Wanted
    999999999 Local 999999999 ..."), so the team reads per-build percentages, each build
    counting once: ``median`` (what a typical build reuses; one build, however forged, moves
    it at most one place) and ``average``, of those that printed a summary and wanted
    objects (None when none did: a build with every task current had nothing to match and
    would pull the figure toward 0 %)."""

    points: list[BuildPoint]
    limit: int

    @property
    def with_summary(self) -> list[BuildPoint]:
        """The builds the median and average are of: a summary that wanted objects."""
        return [p for p in self.points if p.match_percent is not None]

    @property
    def _matches(self) -> list[int]:
        return [p.match_percent for p in self.points if p.match_percent is not None]

    @property
    def average(self) -> float | None:
        known = self._matches
        return sum(known) / len(known) if known else None

    @property
    def median(self) -> float | None:
        known = self._matches
        return float(statistics.median(known)) if known else None

    @property
    def objects(self) -> tuple[int, int]:
        """(found, wanted) summed over the builds as their logs say them: not a team measure
        (one build's summary can outweigh all others'), kept for the API's ``found`` and
        ``wanted``; the page shows ``median``."""
        return (sum(p.reuse.found for p in self.points), sum(p.reuse.wanted for p in self.points))


@dataclass(frozen=True)
class Trend:
    key: TargetKey
    points: list[BuildPoint]  # oldest first
    limit: int


def largest_image(artifacts: list[ArtifactInfo]) -> ArtifactInfo | None:
    """The biggest artifact that is an image rather than a description of one (manifest,
    SBOM, checksums); ties go to the first name."""
    images = [a for a in artifacts if not a.name.endswith(_NOT_IMAGES)]
    return max(images, key=lambda a: (a.size, [-ord(c) for c in a.name]), default=None)


class Insights:
    def __init__(self, jobs: JobRepository, queries: JobQueries) -> None:
        self._jobs = jobs
        self._queries = queries

    def _ended(self, where: JobFilter) -> Iterator[Job]:
        """Ended jobs matching ``where``, newest first, among the newest SCAN_ROWS rows."""
        before: int | None = None
        scanned = 0
        while scanned < SCAN_ROWS:
            rows = self._jobs.list_keyset(where, min(PAGE_ROWS, SCAN_ROWS - scanned),
                                          before=before)
            if not rows:
                return
            scanned += len(rows)
            before = rows[-1].id
            for job in rows:
                if job.is_terminal and job.started_at is not None:
                    yield job

    def _point(self, job: Job, files: bool) -> BuildPoint:
        duration = job.duration_seconds(job.finished_at or job.created_at)
        if job.purged_at is not None:
            return BuildPoint(job, duration, CacheReuse())
        reuse = self._queries.cache_reuse(job.id, DIGEST_BYTES, GAP_BYTES, SCAN_BYTES)
        if not files:
            return BuildPoint(job, duration, reuse)
        artifacts = self._queries.artifacts(job.id)
        packages = self._queries.packages(job.id, MANIFEST_BYTES, artifacts)
        return BuildPoint(job, duration, reuse, largest_image(artifacts),
                          None if packages is None else packages.count)

    def team_reuse(self, limit: int | None = None) -> TeamReuse:
        """The last ``limit`` (at most MAX_BUILDS) builds that ran and ended, anyone's."""
        limit = max(1, min(limit or MAX_BUILDS, MAX_BUILDS))
        jobs = []
        for job in self._ended(JobFilter()):
            jobs.append(job)
            if len(jobs) >= limit:
                break
        return TeamReuse([self._point(job, files=False) for job in reversed(jobs)], limit)

    def seen_targets(self, limit: int = 100) -> list[SeenTarget]:
        """The repository/MACHINE/target combinations of recent ended builds, most recently
        built first (at most ``limit``)."""
        seen: dict[TargetKey, SeenTarget] = {}
        for job in self._ended(JobFilter()):
            key = TargetKey(job.repo_url, job.machine, job.target)
            old = seen.get(key)
            if old is None:
                if len(seen) >= limit:
                    continue
                seen[key] = SeenTarget(key, 1, job.id, job.created_at)
            else:
                seen[key] = SeenTarget(key, old.builds + 1, old.last_id, old.last_at)
        return list(seen.values())

    def trend(self, key: TargetKey, limit: int | None = None) -> Trend:
        """The last ``limit`` (at most MAX_BUILDS) ended builds of ``key``, oldest first."""
        limit = max(1, min(limit or MAX_BUILDS, MAX_BUILDS))
        jobs = []
        # The text filter narrows through the database's index; the key then must match.
        for job in self._ended(JobFilter(text=key.target)):
            if key.matches(job):
                jobs.append(job)
                if len(jobs) >= limit:
                    break
        return Trend(key, [self._point(job, files=True) for job in reversed(jobs)], limit)
