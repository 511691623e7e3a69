"""Two builds side by side: what changed between them, the answer to "what changed in my
image" (issue 12, point 4).

``compare(a, b)`` is pure: it takes what is known of each build (``BuildFacts``: provenance,
artifact sizes, the image manifest's packages, buildhistory's package sizes and IMAGESIZE) and
gives the differences, each as ``before`` (build a) and ``after`` (build b). Comparing a build
with itself gives nothing; ``compare(b, a)`` is ``compare(a, b).mirrored()``.
``BuildComparisons`` gathers the facts of stored builds through the ports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from . import layout
from .buildhistory import image_size_kib, parse_image_info, parse_package_names, parse_package_sizes
from .buildstats import TimingDifference, timing_differences
from .jobs import Job
from .manifests import parse_manifest
from .ports import JobFilter, JobFiles, JobRepository
from .provenance import Provenance
from .queries import JobQueries

# A date stamp in a deployed file's name (IMAGE_NAME's DATETIME): "-20260101120000" before a
# dot or the end. Without it the names of two builds' images match (their link names).
_STAMP = re.compile(r"-\d{14}(?=\.|$)")
CANDIDATE_SCAN = 500  # recent builds of the target looked through for the same repo/MACHINE
MAX_CANDIDATES = 20
# Of each of packages added, removed and changed, the page and the API list this many (the
# counts are whole): a manifest of 120k packages made a 20 MB page for the colleague comparing.
# The artifacts that differ are listed as many (50k files made a 15 MiB page).
MAX_PACKAGES_LISTED = 500


@dataclass(frozen=True)
class BuildFacts:
    """What is known of one build. ``packages``: package -> version (None: version unknown),
    None when the build listed none; ``package_sizes`` (KiB) and ``image_size_kib`` come from
    buildhistory, None when the build did not write it."""

    job_id: int
    repo_url: str = ""
    machine: str = ""
    target: str = ""
    provenance: Provenance = Provenance()
    artifacts: tuple[tuple[str, int], ...] = ()
    artifacts_unlisted: int = 0  # files beyond the listing (ArtifactList.more): not compared
    packages: Mapping[str, str | None] | None = None
    package_sizes: Mapping[str, int] | None = None
    image_size_kib: int | None = None


@dataclass(frozen=True)
class Changed:
    """``name`` was ``before`` in build a and is ``after`` in build b (None: not there)."""

    name: str
    before: str | None
    after: str | None

    def mirrored(self) -> Changed:
        return Changed(self.name, self.after, self.before)


@dataclass(frozen=True)
class SizeChange:
    """A size (bytes for artifacts, KiB for buildhistory's IMAGESIZE) in a and in b."""

    name: str
    before: int | None
    after: int | None

    @property
    def delta(self) -> int | None:
        return None if self.before is None or self.after is None else self.after - self.before

    def mirrored(self) -> SizeChange:
        return SizeChange(self.name, self.after, self.before)


@dataclass(frozen=True)
class PackageChange:
    """A package added, removed, or with another version or size (KiB, from buildhistory)."""

    name: str
    before: str | None
    after: str | None
    before_kib: int | None = None
    after_kib: int | None = None

    @property
    def kib_delta(self) -> int | None:
        if self.before_kib is None or self.after_kib is None:
            return None
        return self.after_kib - self.before_kib

    def mirrored(self) -> PackageChange:
        return PackageChange(self.name, self.after, self.before, self.after_kib, self.before_kib)


@dataclass(frozen=True)
class Comparison:
    """Build ``a`` against build ``b``. ``different``: what makes them builds of different
    things (repository, MACHINE, target), shown as a warning; ``packages_compared``: both
    listed their packages; ``sizes_compared``: both had buildhistory's package sizes."""

    a: int
    b: int
    different: tuple[Changed, ...] = ()
    commit: Changed | None = None
    variables: tuple[Changed, ...] = ()
    layers: tuple[Changed, ...] = ()
    artifacts: tuple[SizeChange, ...] = ()
    image_size: SizeChange | None = None
    added: tuple[PackageChange, ...] = ()
    removed: tuple[PackageChange, ...] = ()
    changed: tuple[PackageChange, ...] = ()
    packages_compared: bool = False
    sizes_compared: bool = False
    # Files each build left beyond its listing (MAX_ARTIFACTS_LISTED): not compared.
    artifacts_unlisted: tuple[int, int] = (0, 0)
    # Task timing (buildstats.timing_differences), None when a build left no buildstats;
    # filled by BuildComparisons, not by compare(), which sees no files.
    timing: tuple[TimingDifference, ...] | None = field(default=None, compare=False)
    # Each build's elapsed time by its buildstats (Timing.wall_seconds), with ``timing``.
    timing_wall: tuple[float, float] | None = field(default=None, compare=False)

    @property
    def is_empty(self) -> bool:
        return not (self.different or self.commit or self.variables or self.layers
                    or self.artifacts or self.image_size or self.added or self.removed
                    or self.changed or self.timing)

    def mirrored(self) -> Comparison:
        """b against a."""
        return replace(
            self, a=self.b, b=self.a,
            different=tuple(c.mirrored() for c in self.different),
            commit=self.commit.mirrored() if self.commit else None,
            variables=tuple(c.mirrored() for c in self.variables),
            layers=tuple(c.mirrored() for c in self.layers),
            artifacts=tuple(c.mirrored() for c in self.artifacts),
            artifacts_unlisted=self.artifacts_unlisted[::-1],
            image_size=self.image_size.mirrored() if self.image_size else None,
            added=tuple(c.mirrored() for c in self.removed),
            removed=tuple(c.mirrored() for c in self.added),
            changed=tuple(c.mirrored() for c in self.changed),
            timing=None if self.timing is None else tuple(
                TimingDifference(d.recipe, d.task, d.after, d.before) for d in self.timing),
            timing_wall=None if self.timing_wall is None else self.timing_wall[::-1])


def artifact_key(name: str) -> str:
    """The name of an artifact without its date stamp: the same for both builds' images
    (``core-image-minimal-qemux86-64.rootfs-20260101120000.manifest`` ->
    ``core-image-minimal-qemux86-64.rootfs.manifest``)."""
    return _STAMP.sub("", name)


def _by_key(artifacts: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Size by artifact_key; where names share a key, the undated one (the link), else the
    newest dated one."""
    best: dict[str, tuple[tuple[bool, str], int]] = {}
    for name, size in artifacts:
        key = artifact_key(name)
        rank = (name == key, name)
        if key not in best or rank > best[key][0]:
            best[key] = (rank, size)
    return {key: size for key, (_, size) in best.items()}


def _changes(before: Mapping[str, str | None], after: Mapping[str, str | None]) -> tuple[Changed, ...]:
    return tuple(Changed(name, before.get(name), after.get(name))
                 for name in sorted(before.keys() | after.keys())
                 if before.get(name) != after.get(name))


def _layers(built: Provenance) -> dict[str, str | None]:
    layers: dict[str, str | None] = {}
    for layer in built.layers:
        value = ":".join(part for part in (layer.branch, layer.revision) if part) or None
        layers.setdefault(layer.name, value)
    return layers


def _variables(built: Provenance) -> dict[str, str | None]:
    variables: dict[str, str | None] = {}
    for name, value in built.variables:
        variables.setdefault(name, value)
    return variables


def compare(a: BuildFacts, b: BuildFacts) -> Comparison:
    """What differs from build ``a`` to build ``b``."""
    different = _changes({"repository": a.repo_url, "MACHINE": a.machine, "target": a.target},
                         {"repository": b.repo_url, "MACHINE": b.machine, "target": b.target})
    commit = None
    if a.provenance.commit != b.provenance.commit:
        commit = Changed("commit", a.provenance.commit, b.provenance.commit)
    sizes_a, sizes_b = _by_key(a.artifacts), _by_key(b.artifacts)
    artifacts = tuple(SizeChange(key, sizes_a.get(key), sizes_b.get(key))
                      for key in sorted(sizes_a.keys() | sizes_b.keys())
                      if sizes_a.get(key) != sizes_b.get(key))
    image_size = None
    if a.image_size_kib != b.image_size_kib:
        image_size = SizeChange("IMAGESIZE", a.image_size_kib, b.image_size_kib)
    added, removed, changed = _package_changes(a, b)
    return Comparison(
        a=a.job_id, b=b.job_id, different=different, commit=commit,
        variables=_changes(_variables(a.provenance), _variables(b.provenance)),
        layers=_changes(_layers(a.provenance), _layers(b.provenance)),
        artifacts=artifacts, image_size=image_size,
        artifacts_unlisted=(a.artifacts_unlisted, b.artifacts_unlisted),
        added=added, removed=removed, changed=changed,
        packages_compared=a.packages is not None and b.packages is not None,
        sizes_compared=a.package_sizes is not None and b.package_sizes is not None)


def _package_changes(a: BuildFacts, b: BuildFacts) -> tuple[tuple[PackageChange, ...], ...]:
    if a.packages is None or b.packages is None:
        return (), (), ()
    sizes_a, sizes_b = a.package_sizes or {}, b.package_sizes or {}
    added, removed, changed = [], [], []
    for name in sorted(a.packages.keys() | b.packages.keys()):
        change = PackageChange(name, a.packages.get(name), b.packages.get(name),
                               sizes_a.get(name), sizes_b.get(name))
        if name not in a.packages:
            added.append(change)
        elif name not in b.packages:
            removed.append(change)
        else:
            versions = change.before is not None and change.after is not None
            if (versions and change.before != change.after) or change.kib_delta:
                changed.append(change)
    return tuple(added), tuple(removed), tuple(changed)


class BuildComparisons:
    """Compares stored builds, and finds the builds a build is worth comparing with."""

    def __init__(self, jobs: JobRepository, queries: JobQueries, files: JobFiles) -> None:
        self._jobs = jobs
        self._queries = queries
        self._files = files

    def compare(self, a: int, b: int) -> Comparison:
        """Raises JobNotFound (queries) for an id without a build."""
        job_a, job_b = self._queries.get(a), self._queries.get(b)
        result = compare(self.facts(job_a), self.facts(job_b))
        timing_a, timing_b = self._queries.build_timing(a), self._queries.build_timing(b)
        if timing_a is None or timing_b is None:  # either left no readable buildstats
            return result
        return replace(result, timing=tuple(timing_differences(timing_a, timing_b)),
                       timing_wall=(round(timing_a.wall_seconds, 2),
                                    round(timing_b.wall_seconds, 2)))

    def facts(self, job: Job) -> BuildFacts:
        listed = self._files.list_artifacts(job)  # once: the manifest is chosen among them
        manifest = self._queries.manifest_text(job.id, artifacts=listed)
        packages: dict[str, str | None] | None = None
        if manifest is not None:
            packages = dict(parse_manifest(manifest[1]))
        names = self._buildhistory(job, layout.INSTALLED_PACKAGE_NAMES)
        if packages is None and names is not None:
            packages = dict.fromkeys(parse_package_names(names))
        sizes = self._buildhistory(job, layout.INSTALLED_PACKAGE_SIZES)
        info = self._buildhistory(job, layout.IMAGE_INFO)
        return BuildFacts(
            job_id=job.id, repo_url=job.repo_url, machine=job.machine, target=job.target,
            provenance=self._queries.provenance(job.id),
            artifacts=tuple((a.name, a.size) for a in listed), artifacts_unlisted=listed.more,
            packages=packages,
            package_sizes=None if sizes is None else parse_package_sizes(sizes),
            image_size_kib=None if info is None else image_size_kib(parse_image_info(info)))

    def _buildhistory(self, job: Job, name: str) -> str | None:
        data = self._files.read_buildhistory(job, name, layout.MAX_BUILDHISTORY_READ_BYTES)
        return None if data is None else data.decode("utf-8", errors="replace")

    def candidates(self, job: Job) -> list[Job]:
        """The recent ended builds of the same repository, MACHINE and target as ``job``
        (among the last CANDIDATE_SCAN that mention its target), newest first, without
        ``job``; at most MAX_CANDIDATES. A pending or running build has no commit, artifacts
        or packages yet: compared with it, everything would differ."""
        found = []
        # The text filter narrows through the database's index (as Insights' trends do), so
        # builds of other targets in between do not push the candidates out of the scan.
        for other in self._jobs.list_keyset(JobFilter(text=job.target), CANDIDATE_SCAN):
            if other.id != job.id and other.is_terminal and (
                    other.repo_url, other.machine, other.target) == (
                    job.repo_url, job.machine, job.target):
                found.append(other)
                if len(found) >= MAX_CANDIDATES:
                    break
        return found


def previous(job: Job, candidates: Iterable[Job]) -> Job | None:
    """The build to compare ``job`` with first: the newest candidate older than it, else the
    newest one."""
    ordered = sorted(candidates, key=lambda other: other.id, reverse=True)
    older = [other for other in ordered if other.id < job.id]
    return (older or ordered or [None])[0]
