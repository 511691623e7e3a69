"""Build progress from the runner's and bitbake's log lines: examples and properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autobuild.domain.progress import Phase, Progress, ProgressTracker, progress_of, task_label

POKY = "/srv/autobuild/jobs/7/work/src"
BUSYBOX = f"{POKY}/meta/recipes-core/busybox/busybox_1.36.1.bb"
QUILT = f"{POKY}/meta/recipes-devtools/quilt/quilt_0.67.bb"

RUNNER_START = """\
==> Job 7 for alice on yocto1 at 2026-01-01T12:00:00Z
    repository https://gitlab.example.com/bsp/poky.git, ref main, MACHINE qemux86-64, target core-image-minimal
==> Cloning https://gitlab.example.com/bsp/poky.git
Cloning into '/srv/autobuild/jobs/7/work/src'...
==> Checking out main
HEAD is now at 0f14567 poky 5.0
==> Setting up the build environment (oe-init-build-env)
==> bitbake core-image-minimal (MACHINE=qemux86-64)
"""


def fed(*chunks: str) -> Progress:
    tracker = ProgressTracker()
    for chunk in chunks:
        tracker.feed(chunk)
    return tracker.progress


def task_line(n: int, m: int, tid: str = f"{BUSYBOX}:do_compile", kind: str = "") -> str:
    return f"NOTE: Running {kind}task {n} of {m} ({tid})\n"


# --- phases ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "phase"), [
    ("", Phase.STARTING),
    ("==> Job 7 for alice on yocto1 at 2026-01-01T12:00:00Z\n", Phase.STARTING),
    ("==> Cloning https://gitlab.example.com/bsp/poky.git\n", Phase.CLONING),
    ("==> Checking out v5.0\n", Phase.CHECKOUT),
    ("==> Updating submodules\n", Phase.CHECKOUT),
    ("==> Setting up the build environment (oe-init-build-env)\n", Phase.CHECKOUT),
    ("==> bitbake core-image-minimal (MACHINE=qemux86-64)\n", Phase.PARSING),
    ("Loading cache...done.\n", Phase.PARSING),
    ("Parsing recipes: 45% |#####        | ETA:  0:00:12\n", Phase.PARSING),
    (task_line(1, 10, kind="setscene "), Phase.SETSCENE),
    (task_line(1, 10), Phase.TASKS),
    (task_line(1, 10, kind="noexec "), Phase.TASKS),
    ("==> Collecting artifacts\n", Phase.COLLECTING),
    ("==> Build finished: SUCCESS (exit 0)\n", Phase.FINISHED),
])
def test_each_line_kind_gives_its_phase(text, phase):
    assert progress_of(text).phase is phase


def test_a_whole_successful_build_goes_through_the_phases_in_order():
    lines = (RUNNER_START + "Loading cache...done.\n"
             "Parsing recipes: 100% |###########| Time: 0:00:01\n"
             + task_line(1, 2, kind="setscene ") + task_line(2, 2, kind="setscene ")
             + task_line(1, 3) + task_line(2, 3) + task_line(3, 3)
             + "==> Collecting artifacts\n==> Build finished: SUCCESS (exit 0)\n").splitlines(True)
    tracker = ProgressTracker()
    phases = []
    for line in lines:
        tracker.feed(line)
        if not phases or phases[-1] is not tracker.progress.phase:
            phases.append(tracker.progress.phase)
    assert phases == [Phase.STARTING, Phase.CLONING, Phase.CHECKOUT, Phase.PARSING,
                      Phase.SETSCENE, Phase.TASKS, Phase.COLLECTING, Phase.FINISHED]
    assert tracker.progress.percent == 100


def test_setscene_lines_interleaved_with_tasks_do_not_move_the_phase_back():
    progress = fed(task_line(3, 100), task_line(40, 500, kind="setscene "))
    assert progress.phase is Phase.TASKS
    assert (progress.setscene_done, progress.setscene_total) == (40, 500)
    assert (progress.tasks_done, progress.tasks_total) == (3, 100)
    assert progress.percent == 3


# --- counting ----------------------------------------------------------------------------

def test_out_of_order_numbers_keep_the_highest_and_the_latest_total():
    progress = fed(task_line(7, 3000), task_line(9, 3000), task_line(8, 3000),
                   task_line(5, 3010))
    assert progress.tasks_done == 9
    assert progress.tasks_total == 3010
    assert progress.percent == 0  # 9 of 3010, rounded down
    assert progress.label == "Running tasks 9 of 3010"


def test_setscene_and_tasks_have_separate_counts():
    progress = fed(task_line(120, 400, kind="setscene "), task_line(15, 1200))
    assert (progress.setscene_done, progress.setscene_total) == (120, 400)
    assert (progress.tasks_done, progress.tasks_total) == (15, 1200)


def test_setscene_percent_while_only_setscene_tasks_run():
    progress = fed(RUNNER_START, task_line(100, 400, kind="setscene "))
    assert progress.phase is Phase.SETSCENE
    assert progress.percent == 25
    assert progress.label == "Setscene tasks 100 of 400"


def test_parsing_percent_comes_from_the_progress_line():
    assert fed(RUNNER_START).percent is None
    assert fed(RUNNER_START, "Parsing recipes: 45% |#####     | ETA:  0:00:12\n").percent == 45
    done = "Parsing of 905 .bb files complete (903 cached, 2 parsed). 1644 targets.\n"
    assert fed(RUNNER_START, done).percent == 100


def test_unknown_percent_before_bitbake():
    for text in ("", "==> Cloning https://x/y.git\n", "==> Checking out main\n"):
        assert progress_of(text).percent is None


def test_a_failed_build_keeps_the_percent_where_it_stopped():
    progress = fed(RUNNER_START, task_line(5, 12), "ERROR: bitbake x failed (exit 1)\n",
                   "==> Build finished: FAILED (exit 1)\n")
    assert progress.phase is Phase.FINISHED
    assert progress.percent == 41
    assert progress.current is None


def test_a_build_that_failed_before_bitbake_has_no_percent():
    progress = fed("==> Cloning https://x/y.git\nfatal: Authentication failed\n"
                   "==> Build finished: FAILED (exit 128)\n")
    assert progress.phase is Phase.FINISHED
    assert progress.percent is None


# --- prefixes and wrappers ------------------------------------------------------------------

@pytest.mark.parametrize("tid, label", [
    (f"{BUSYBOX}:do_compile", "busybox_1.36.1.bb:do_compile"),
    (f"mc:qemuarm64:{BUSYBOX}:do_compile", "mc:qemuarm64:busybox_1.36.1.bb:do_compile"),
    (f"virtual:native:{QUILT}:do_install", "virtual:native:quilt_0.67.bb:do_install"),
    (f"mc:mc1:virtual:native:{QUILT}:do_fetch", "mc:mc1:virtual:native:quilt_0.67.bb:do_fetch"),
    ("busybox.bb:do_fetch", "busybox.bb:do_fetch"),
])
def test_current_task_is_named_without_its_directories(tid, label):
    progress = progress_of(task_line(1, 2, tid=tid))
    assert progress.current == label
    assert task_label(tid) == label


@pytest.mark.parametrize("prefix", [
    "2026-01-01 12:00:00 - INFO     - ",  # kas
    "[12:00:01] ",
    "build | ",
    "\x1b[0m",
])
def test_bitbake_lines_behind_a_wrapper_prefix_count(prefix):
    progress = fed(prefix + task_line(3, 8, kind="setscene "),
                   prefix + task_line(2, 4, tid=f"mc:a:virtual:native:{QUILT}:do_compile"))
    assert (progress.setscene_done, progress.setscene_total) == (3, 8)
    assert (progress.tasks_done, progress.tasks_total) == (2, 4)
    assert progress.current == "mc:a:virtual:native:quilt_0.67.bb:do_compile"
    assert progress_of(prefix + "Parsing recipes: 12% |#   |\n").percent == 12


def test_runner_headers_count_only_at_the_start_of_a_line():
    # The runner writes its own headers; the same text quoted by a task is not a step.
    assert progress_of("| ==> Build finished: SUCCESS (exit 0)\n").phase is Phase.STARTING


def test_lines_split_across_chunks_count_once_complete():
    tracker = ProgressTracker()
    assert tracker.feed("NOTE: Running task 4") is False
    assert tracker.progress.tasks_done == 0
    assert tracker.feed("2 of 100 (/a/b.bb:do_x)") is False
    assert tracker.feed("\n") is True
    assert tracker.progress.tasks_done == 42
    assert tracker.feed("NOTE: recipe b-1.0-r0: task do_x: Started\n") is False


def test_carriage_returns_end_lines_too():
    progress = progress_of("Parsing recipes: 10% |#   |\rParsing recipes: 80% |######|\r\n")
    assert progress.percent == 80


def test_feed_reports_changes_only():
    tracker = ProgressTracker()
    assert tracker.feed(task_line(5, 10)) is True
    assert tracker.feed(task_line(3, 10)) is False  # lower number, same snapshot
    assert tracker.feed("nothing to see here\n") is False
    assert tracker.feed("") is False


def test_absurd_numbers_never_give_a_percent_outside_0_to_100():
    assert fed(task_line(50, 10)).percent == 100
    assert fed(task_line(5, 0)).percent is None
    assert fed(task_line(1, 999999999)).percent == 0


# --- properties ------------------------------------------------------------------------------

task_lines = st.builds(
    task_line,
    st.integers(0, 10**6), st.integers(0, 10**6),
    st.sampled_from([f"{BUSYBOX}:do_compile", f"mc:x:virtual:native:{QUILT}:do_install",
                     "weird ) ( tid"]),
    st.sampled_from(["", "setscene ", "noexec "]),
)
known_lines = st.sampled_from(RUNNER_START.splitlines(True) + [
    "Parsing recipes: 45% |#####     |\n", "==> Collecting artifacts\n",
    "==> Build finished: SUCCESS (exit 0)\n", "==> Build finished: FAILED (exit 1)\n",
    "2026-01-01 12:00:00 - INFO     - NOTE: Running task 3 of 9 (/a/b.bb:do_x)\n",
])
log_texts = st.lists(st.one_of(task_lines, known_lines, st.text(max_size=40)), max_size=40).map("".join)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 5000), st.integers(1, 5000)),
                max_size=60))
def test_done_counts_never_go_backwards(events):
    tracker = ProgressTracker()
    last_setscene = last_tasks = 0
    for setscene, n, m in events:
        tracker.feed(task_line(n, m, kind="setscene " if setscene else ""))
        progress = tracker.progress
        assert progress.setscene_done >= last_setscene
        assert progress.tasks_done >= last_tasks
        last_setscene, last_tasks = progress.setscene_done, progress.tasks_done
    assert last_setscene == max((n for s, n, _ in events if s), default=0)
    assert last_tasks == max((n for s, n, _ in events if not s), default=0)


@settings(max_examples=300)
@given(log_texts, st.lists(st.integers(0, 2000), max_size=12))
def test_any_chunking_gives_the_same_snapshot_as_the_whole_text(text, cuts):
    points = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert fed(*pieces) == progress_of(text)


@settings(max_examples=300)
@given(st.lists(st.one_of(st.text(), log_texts), max_size=20))
def test_garbage_never_raises_and_percent_stays_within_0_and_100(chunks):
    tracker = ProgressTracker()
    for chunk in chunks:
        changed = tracker.feed(chunk)
        assert isinstance(changed, bool)
        percent = tracker.progress.percent
        assert percent is None or 0 <= percent <= 100
        assert isinstance(tracker.progress.label, str)


@given(log_texts)
def test_phases_only_move_forward(text):
    tracker = ProgressTracker()
    rank = 0
    for line in re.split(r"(?<=\n)", text):
        tracker.feed(line)
        assert tracker.progress.phase.rank >= rank
        rank = tracker.progress.phase.rank


def test_a_long_line_of_task_starts_costs_no_more_than_reading_it():
    """"Running task" repeated along a line a build made long: the task id pattern went over
    the rest of the line from each one (time squared in the line's length, GIL held)."""
    tracker = ProgressTracker()
    tracker.feed("NOTE: Running task 1 of 2 (" * 2400 + "\n")  # 64 KiB, the longest line read
    tracker.feed("NOTE: Running task 2 of 4 (/poky/meta/recipes/a.bb:do_compile)\n")

    progress = tracker.progress
    assert (progress.tasks_done, progress.tasks_total) == (2, 4)
    assert progress.current == "a.bb:do_compile"
