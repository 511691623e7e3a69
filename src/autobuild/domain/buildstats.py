"""Where a build's time went: BitBake's buildstats, condensed, and what can be read from them.

BitBake's ``buildstats`` class (meta/classes-global/buildstats.bbclass, on by default in
poky) writes, per bitbake run, ``tmp/buildstats/<BUILDNAME>/`` holding ``build_stats`` (host,
"Build Started: <t>", "Elapsed time: <s> seconds", "CPU usage: <p>%", "Failed at: ...") and
one directory per recipe, named by its PF (``busybox-1.36.1-r0``), with one file per task
(``do_compile``) of ``Key: value`` lines: ``Event``, ``Started``, ``<PF>: <task>``,
``Elapsed time: <s> seconds``, ``utime``/``stime``/``cutime``/``cstime`` (clock ticks),
``IO <name>``, ``rusage ru_*`` and ``Child rusage ru_*`` (ru_utime/ru_stime in seconds),
``Status: PASSED|FAILED``, ``Ended``. Like oe-core's scripts/lib/buildstats.py, a task's CPU
time is rusage + child rusage user and system time.

How large they get: core-image-minimal from scratch runs some 4-5k tasks, core-image-sato
9-10k, each task file 1-2 KB: 10-20 MB in 10k small files. The runner does not copy them: it
reads each task file (at most MAX_TASK_FILE_BYTES), keeps the few numbers below and writes one
condensed file (layout.TIMING, 80-110 bytes a task: 0.8-1.1 MB for 10k tasks, measured in
tests/unit/test_buildstats.py), at most MAX_TASKS tasks; the service reads at most
MAX_CONDENSED_BYTES of it (a bigger file, which only absurdly long names make, is shown as
unavailable). Everything here is pure: text in, values out; a build writes these
files, so nothing is trusted: a task with a missing or garbled key is skipped, never an error.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_TASKS = 30_000  # a from-scratch core-image-sato has ~10k; world builds more, kept the first
MAX_RECIPES = 5_000
MAX_TASK_FILE_BYTES = 64 * 1024  # a real task file is 1-2 KB
MAX_BUILD_STATS_BYTES = 64 * 1024
MAX_CONDENSED_BYTES = 4 << 20  # MAX_TASKS real tasks (~110 bytes each at most) and some
MAX_SECONDS = 10 * 365 * 24 * 3600.0  # longer than any build: a bigger number is garbage
CONDENSED_HEADER = "autobuild-buildstats 1"

_PF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,199}$")
_TASK = re.compile(r"^do_[A-Za-z0-9_+-]{1,100}$")
_BUILDNAME = re.compile(r"^[A-Za-z0-9._+-]{1,100}$")
# buildstats.bbclass writes rusage times with "%s": Python's str() of a float, so a task that
# used a few microseconds of CPU says "rusage ru_stime: 4e-06".
_NUMBER = re.compile(r"^-?[0-9]{1,17}(\.[0-9]{1,24})?([eE][-+]?[0-9]{1,3})?$")
# PF = PN-[EPOCH_]PV-PR: the version part starts with a digit (split as scripts/lib/buildstats.py)
_NEVR = re.compile(r"^(?P<name>\S+?)-(?:[0-9]{1,5}_)?(?P<version>[0-9]\S*)$")

# The order bitbake runs a recipe's main tasks in (each depends on the one before): used to
# say which of two tasks of one recipe came first when their times tie.
TASK_ORDER = ("do_fetch", "do_unpack", "do_patch", "do_prepare_recipe_sysroot",
              "do_configure", "do_compile", "do_install", "do_populate_sysroot", "do_package",
              "do_packagedata", "do_package_qa", "do_package_write_rpm", "do_package_write_ipk",
              "do_package_write_deb", "do_populate_lic", "do_rootfs", "do_image",
              "do_image_complete", "do_build")


def is_recipe_dir(name: object) -> bool:
    """A name buildstats could have given a recipe's directory (its PF)."""
    return isinstance(name, str) and bool(_PF.match(name))


def is_task_name(name: object) -> bool:
    return isinstance(name, str) and bool(_TASK.match(name))


def split_pf(pf: str) -> tuple[str, str]:
    """``busybox-1.36.1-r0`` -> ("busybox", "1.36.1-r0"); a PF without a version is all name."""
    nevr, dash, revision = pf.rpartition("-")
    match = _NEVR.match(nevr) if dash else None
    if match is None:
        return pf, ""
    return match.group("name"), f"{match.group('version')}-{revision}"


def _seconds(text: str) -> float | None:
    text = text.strip()
    if not _NUMBER.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) and abs(value) <= 1e12 else None


@dataclass(frozen=True)
class TaskTiming:
    """One task of one recipe: when it ran (epoch seconds), how long, how much CPU."""

    recipe: str  # PN
    version: str  # PV-PR ("" when the directory name had none)
    task: str
    start: float
    end: float
    elapsed: float
    cpu: float
    failed: bool = False

    @property
    def pf(self) -> str:
        return f"{self.recipe}-{self.version}" if self.version else self.recipe

    @property
    def label(self) -> str:
        return f"{self.recipe}:{self.task}"


def _valid(recipe: str, task: str, start: float, end: float, elapsed: float,
           cpu: float) -> bool:
    return (is_recipe_dir(recipe) and is_task_name(task) and 0 <= start <= end
            and end - start <= MAX_SECONDS and 0 <= elapsed <= MAX_SECONDS
            and 0 <= cpu <= MAX_SECONDS * 1000)


def parse_task_file(pf: str, task: str, text: str) -> TaskTiming | None:
    """A task file of buildstats as a TaskTiming; None when it lacks Started or Ended, or a
    number is garbled (a task still running when the build was stopped has no Ended)."""
    if not is_recipe_dir(pf) or not is_task_name(task):
        return None
    values: dict[str, str] = {}
    for line in text.splitlines()[:200]:
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key and key not in values:
            values[key] = value.strip()
    start = _seconds(values.get("Started", ""))
    end = _seconds(values.get("Ended", ""))
    if start is None or end is None:
        return None
    elapsed_text = values.get("Elapsed time", "").removesuffix("seconds")
    elapsed = _seconds(elapsed_text) if elapsed_text else end - start
    cpu = 0.0
    for key in ("rusage ru_utime", "rusage ru_stime", "Child rusage ru_utime",
                "Child rusage ru_stime"):
        if key in values:
            part = _seconds(values[key])
            if part is None:
                return None
            cpu += part
    if elapsed is None:
        return None
    recipe, version = split_pf(pf)
    failed = values.get("Status", "").upper().startswith("FAILED")
    if not _valid(pf, task, start, end, elapsed, cpu):
        return None
    return TaskTiming(recipe, version, task, start, end, round(elapsed, 2), round(cpu, 2),
                      failed)


@dataclass(frozen=True)
class BuildSummary:
    """What ``build_stats`` says of the whole bitbake run (None where it says nothing)."""

    started: float | None = None
    elapsed: float | None = None
    failed_at: str | None = None


def parse_build_stats(text: str) -> BuildSummary:
    started = elapsed = None
    failed_at = None
    for line in text.splitlines()[:1000]:
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "Build Started" and started is None:
            started = _seconds(value)
        elif key == "Elapsed time" and elapsed is None:
            elapsed = _seconds(value.strip().removesuffix("seconds"))
        elif key == "Failed at" and failed_at is None:
            failed_at = value.strip()[:300] or None
    if elapsed is not None and not 0 <= elapsed <= MAX_SECONDS:
        elapsed = None
    return BuildSummary(started, elapsed, failed_at)


# --- the condensed file: one line a task, tab-separated -------------------------------------

def condense(tasks: Iterable[TaskTiming], summary: BuildSummary | None = None) -> str:
    """The condensed file (layout.TIMING): a header, an optional ``build <elapsed>`` line,
    then ``task <PN> <PV-PR> <task> <start> <end> <elapsed> <cpu> <P|F>`` a line (tabs
    between), at most MAX_TASKS."""
    lines = [CONDENSED_HEADER]
    if summary is not None and summary.elapsed is not None:
        lines.append(f"build\t{summary.elapsed:.2f}")
    for count, t in enumerate(tasks):
        if count >= MAX_TASKS:
            break
        lines.append(f"task\t{t.recipe}\t{t.version}\t{t.task}\t{t.start:.2f}\t{t.end:.2f}\t"
                     f"{t.elapsed:.2f}\t{t.cpu:.2f}\t{'F' if t.failed else 'P'}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Timing:
    """A build's tasks (ordered by start) and, when bitbake said it, its own elapsed time."""

    tasks: tuple[TaskTiming, ...]
    build_elapsed: float | None = None
    skipped: int = 0  # lines that were not a valid task

    @property
    def is_empty(self) -> bool:
        return not self.tasks

    # --- totals -------------------------------------------------------------------------

    @property
    def wall_seconds(self) -> float:
        """The build's elapsed time: bitbake's own figure, else first start to last end."""
        if self.build_elapsed is not None:
            return self.build_elapsed
        if not self.tasks:
            return 0.0
        return max(t.end for t in self.tasks) - min(t.start for t in self.tasks)

    @property
    def cpu_seconds(self) -> float:
        return round(sum(t.cpu for t in self.tasks), 2)

    @property
    def task_seconds(self) -> float:
        """The tasks' elapsed times added up (more than the wall time when they overlap)."""
        return round(sum(t.elapsed for t in self.tasks), 2)

    # --- rankings -----------------------------------------------------------------------

    def slowest_tasks(self, n: int) -> list[TaskTiming]:
        return sorted(self.tasks, key=lambda t: (-t.elapsed, t.recipe, t.task))[:max(0, n)]

    def recipe_totals(self) -> dict[str, tuple[float, float, int]]:
        """recipe -> (elapsed of its tasks added up, their CPU time, how many)."""
        totals: dict[str, tuple[float, float, int]] = {}
        for t in self.tasks:
            elapsed, cpu, count = totals.get(t.recipe, (0.0, 0.0, 0))
            totals[t.recipe] = (elapsed + t.elapsed, cpu + t.cpu, count + 1)
        return totals

    def slowest_recipes(self, n: int) -> list[RecipeTime]:
        ranked = [RecipeTime(name, round(e, 2), round(c, 2), k)
                  for name, (e, c, k) in self.recipe_totals().items()]
        ranked.sort(key=lambda r: (-r.elapsed, r.recipe))
        return ranked[:max(0, n)]

    # --- the critical path --------------------------------------------------------------

    def critical_path(self) -> list[TaskTiming]:
        """The chain of tasks that decided when the build ended, as far as timing shows it:
        from the task that ended last, each step back is the task that ended last before
        this one started (one of the same recipe when it ended as late, within
        PATH_SLACK seconds, since a recipe's tasks run in bitbake's fixed order). Buildstats
        record no dependencies: this is derived from timing, not from the task graph."""
        if not self.tasks:
            return []
        by_end = sorted(self.tasks, key=lambda t: (t.end, _order(t.task)))
        ends = [t.end for t in by_end]
        current = by_end[-1]
        path = [current]
        seen = {id(current)}
        while len(path) < len(by_end):
            index = bisect.bisect_right(ends, current.start + EPSILON)
            best = None
            for candidate in reversed(by_end[max(0, index - PATH_LOOKBACK):index]):
                if id(candidate) in seen or candidate.end > current.start + EPSILON:
                    continue
                if best is None:
                    best = candidate
                    if candidate.recipe == current.recipe:
                        break
                    continue
                if best.end - candidate.end > PATH_SLACK:
                    break
                if candidate.recipe == current.recipe:
                    best = candidate
                    break
            if best is None:
                break
            path.append(best)
            seen.add(id(best))
            current = best
        path.reverse()
        return path


EPSILON = 0.005  # Started/Ended have two decimals
PATH_SLACK = 1.0
PATH_LOOKBACK = 64


def _order(task: str) -> int:
    return TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER)


@dataclass(frozen=True)
class RecipeTime:
    recipe: str
    elapsed: float
    cpu: float
    tasks: int


def parse_condensed(text: str) -> Timing:
    """The condensed file as a Timing; every line is checked, a bad one is skipped (and
    counted), a file without the header is empty. Never raises on any text."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != CONDENSED_HEADER:
        return Timing((), None, 0)
    tasks: list[TaskTiming] = []
    build_elapsed = None
    skipped = 0
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split("\t")
        if fields[0] == "build" and len(fields) == 2 and build_elapsed is None:
            value = _seconds(fields[1])
            if value is not None and 0 <= value <= MAX_SECONDS:
                build_elapsed = value
                continue
        task = _task_line(fields) if len(tasks) < MAX_TASKS else None
        if task is None:
            skipped += 1
        else:
            tasks.append(task)
    tasks.sort(key=lambda t: (t.start, _order(t.task), t.recipe, t.task))
    return Timing(tuple(tasks), build_elapsed, skipped)


def _task_line(fields: list[str]) -> TaskTiming | None:
    if len(fields) != 9 or fields[0] != "task" or fields[8] not in ("P", "F"):
        return None
    recipe, version, task = fields[1:4]
    numbers = [_seconds(f) for f in fields[4:8]]
    if any(n is None for n in numbers) or (version and not is_recipe_dir(version)):
        return None
    start, end, elapsed, cpu = (float(n) for n in numbers)  # type: ignore[arg-type]
    if not _valid(recipe, task, start, end, elapsed, cpu):
        return None
    return TaskTiming(recipe, version, task, start, end, elapsed, cpu, fields[8] == "F")


def condense_build(build_stats: str | None, task_files: Iterable[tuple[str, str, str]]) -> str:
    """The condensed file of one buildstats directory: ``build_stats``' text (or None) and
    (PF, task, text) of its task files; unreadable tasks are left out."""
    summary = parse_build_stats(build_stats) if build_stats is not None else None
    tasks = [t for pf, name, text in task_files
             if (t := parse_task_file(pf, name, text)) is not None]
    tasks.sort(key=lambda t: (t.start, _order(t.task), t.recipe, t.task))
    return condense(tasks, summary)


# --- two builds ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TimingDifference:
    """How one task's elapsed time changed from build a to build b (None: it did not run)."""

    recipe: str
    task: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float:
        return round((self.after or 0.0) - (self.before or 0.0), 2)


def timing_differences(a: Timing, b: Timing, limit: int = 50,
                       minimum: float = 0.0) -> list[TimingDifference]:
    """Per recipe and task (versions aside), the change of elapsed time from ``a`` to ``b``,
    largest change (either way) first; tasks in only one build count as 0 in the other.
    Changes smaller than ``minimum`` seconds are left out."""
    def totals(timing: Timing) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        for t in timing.tasks:
            out[(t.recipe, t.task)] = out.get((t.recipe, t.task), 0.0) + t.elapsed
        return out
    before, after = totals(a), totals(b)
    diffs = [TimingDifference(recipe, task, before.get((recipe, task)), after.get((recipe, task)))
             for recipe, task in before.keys() | after.keys()]
    diffs = [d for d in diffs if abs(d.delta) >= minimum and (d.delta or d.before is None
                                                              or d.after is None)]
    diffs.sort(key=lambda d: (-abs(d.delta), d.recipe, d.task))
    return diffs[:max(0, limit)]


@dataclass(frozen=True)
class TimingView:
    """What the job page and the API show of a Timing (computed once)."""

    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    task_count: int = 0
    failed_tasks: int = 0
    slowest_recipes: list[RecipeTime] = field(default_factory=list)
    slowest_tasks: list[TaskTiming] = field(default_factory=list)
    critical_path: list[TaskTiming] = field(default_factory=list)  # its longest steps, in order
    critical_steps: int = 0  # all of its steps
    critical_seconds: float = 0.0  # all of its steps
    first_start: float = 0.0
    skipped: int = 0
    problem: str | None = None  # why there is nothing to show, when the file is unusable

    @classmethod
    def unavailable(cls, problem: str) -> TimingView:
        return cls(problem=problem)

    @property
    def last_end(self) -> float:
        ends = [t.end for t in (*self.slowest_tasks, *self.critical_path)]
        return max(ends, default=self.first_start)

    @property
    def critical_path_cut(self) -> bool:
        return self.critical_steps > len(self.critical_path)


MAX_PATH_SHOWN = 200  # a forged file can chain 30k tasks: a page of 30k bars helps nobody


def timing_view(timing: Timing, n: int = 10) -> TimingView | None:
    """The summary of a build's timing; None when it has no task. Of the critical path the
    MAX_PATH_SHOWN longest steps are kept, in their order; its length and time are whole."""
    if timing.is_empty:
        return None
    path = timing.critical_path()
    longest = sorted(range(len(path)), key=lambda i: path[i].elapsed, reverse=True)
    shown = [path[i] for i in sorted(longest[:MAX_PATH_SHOWN])]
    return TimingView(
        wall_seconds=round(timing.wall_seconds, 2), cpu_seconds=timing.cpu_seconds,
        task_count=len(timing.tasks), failed_tasks=sum(t.failed for t in timing.tasks),
        slowest_recipes=timing.slowest_recipes(n), slowest_tasks=timing.slowest_tasks(n),
        critical_path=shown, critical_steps=len(path),
        critical_seconds=round(sum(t.elapsed for t in path), 2),
        first_start=min(t.start for t in timing.tasks),
        skipped=timing.skipped)
