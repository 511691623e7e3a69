"""Buildstats: BitBake's task files read as buildstats.bbclass writes them, the runner's
condensed file, and what the job page derives from it (totals, rankings, critical path,
differences between two builds). Files a build writes are hostile: no text makes it raise."""

from __future__ import annotations

import random

from hypothesis import example, given, settings
from hypothesis import strategies as st

from autobuild.domain.buildstats import (
    CONDENSED_HEADER, MAX_TASKS, BuildSummary, TaskTiming, Timing, condense, condense_build,
    parse_build_stats, parse_condensed, parse_task_file, split_pf, timing_differences,
    timing_view,
)

# A task file as buildstats.bbclass writes it (TaskStarted, then write_task_data), trailing
# blanks included.
BUSYBOX_COMPILE = """\
Event: TaskStarted 
Started: 1700000100.25 
busybox-1.36.1-r0: do_compile
Elapsed time: 42.50 seconds
utime: 12
stime: 3
cutime: 3700
cstime: 430
IO rchar: 4467324
IO wchar: 454879
IO read_bytes: 0
IO write_bytes: 4381943
rusage ru_utime: 0.12
rusage ru_stime: 0.03
rusage ru_maxrss: 99042
Child rusage ru_utime: 37.00
Child rusage ru_stime: 4.30
Child rusage ru_maxrss: 869803
Status: PASSED 
Ended: 1700000142.75 
"""

BUILD_STATS = """\
Host Info: Linux host 6.8.0 #1 SMP x86_64 
Build Started: 1700000000.00 
Failed at: busybox-1.36.1-r0 at task: do_install 
Elapsed time: 300.00 seconds 
CPU usage: 61.5% 
"""


def task(recipe: str, name: str, start: float, end: float, cpu: float = 1.0,
         version: str = "1.0-r0", failed: bool = False) -> TaskTiming:
    return TaskTiming(recipe, version, name, start, end, round(end - start, 2), cpu, failed)


# --- one task file ------------------------------------------------------------------------

def test_a_task_file_gives_its_times_and_the_cpu_of_the_task_and_its_children():
    t = parse_task_file("busybox-1.36.1-r0", "do_compile", BUSYBOX_COMPILE)

    assert t is not None
    assert (t.recipe, t.version, t.task) == ("busybox", "1.36.1-r0", "do_compile")
    assert (t.start, t.end, t.elapsed) == (1700000100.25, 1700000142.75, 42.5)
    assert t.cpu == 41.45  # rusage + child rusage, user + system (as scripts/lib/buildstats.py)
    assert not t.failed


def test_a_failed_task_is_marked_failed():
    text = BUSYBOX_COMPILE.replace("Status: PASSED", "Status: FAILED")
    t = parse_task_file("busybox-1.36.1-r0", "do_compile", text)
    assert t is not None and t.failed


def test_a_task_still_running_when_the_build_stopped_has_no_end_and_is_left_out():
    started_only = "Event: TaskStarted \nStarted: 1700000100.25 \n"
    assert parse_task_file("busybox-1.36.1-r0", "do_compile", started_only) is None


def test_garbled_numbers_or_names_leave_the_task_out():
    assert parse_task_file("busybox-1.36.1-r0", "do_compile",
                           BUSYBOX_COMPILE.replace("Ended: 1700000142.75", "Ended: soon")) is None
    assert parse_task_file("busybox-1.36.1-r0", "do_compile",
                           BUSYBOX_COMPILE.replace("Ended: 1700000142.75", "Ended: 1.0")) is None
    assert parse_task_file("busybox-1.36.1-r0", "do_compile",
                           BUSYBOX_COMPILE.replace("ru_utime: 37.00", "ru_utime: nan")) is None
    assert parse_task_file("../etc", "do_compile", BUSYBOX_COMPILE) is None
    assert parse_task_file("busybox-1.36.1-r0", "compile", BUSYBOX_COMPILE) is None


def test_rusage_times_in_exponent_form_are_read_as_python_wrote_them():
    """buildstats.bbclass writes rusage with "%s": a task of a few microseconds of CPU says
    4e-06 (the stand-in's kas build lost such a task before)."""
    text = BUSYBOX_COMPILE.replace("rusage ru_stime: 0.03", "rusage ru_stime: 4e-06")
    t = parse_task_file("busybox-1.36.1-r0", "do_compile", text)
    assert t is not None and t.cpu == round(0.12 + 0.000004 + 37.0 + 4.3, 2)


@given(st.floats(0, 1e6, allow_nan=False, allow_infinity=False))
@example(0.025934740705513992)  # 18 decimals: str() writes up to 17 significant digits
@example(0.00012345678901234567)
@example(4e-06)
def test_any_time_python_writes_with_str_is_read_back(seconds):
    text = BUSYBOX_COMPILE.replace("Child rusage ru_utime: 37.00",
                                   f"Child rusage ru_utime: {seconds}")
    t = parse_task_file("busybox-1.36.1-r0", "do_compile", text)
    assert t is not None and t.cpu == round(0.12 + 0.03 + seconds + 4.3, 2)


def test_without_rusage_the_cpu_time_is_zero_and_without_elapsed_it_is_end_minus_start():
    text = "Started: 10.00 \nEnded: 12.50 \nStatus: PASSED \n"
    t = parse_task_file("zlib-1.3.1-r0", "do_fetch", text)
    assert t is not None and t.cpu == 0.0 and t.elapsed == 2.5


def test_recipe_names_and_versions_are_split_as_oe_core_splits_them():
    assert split_pf("busybox-1.36.1-r0") == ("busybox", "1.36.1-r0")
    assert split_pf("netbase-1_6.4-r0") == ("netbase", "6.4-r0")  # the epoch goes
    assert split_pf("update-rc.d-0.8+git-r0") == ("update-rc.d", "0.8+git-r0")
    assert split_pf("core-image-minimal-1.0-r0") == ("core-image-minimal", "1.0-r0")
    assert split_pf("odd") == ("odd", "")


def test_build_stats_gives_bitbakes_elapsed_time_and_where_it_failed():
    summary = parse_build_stats(BUILD_STATS)
    assert summary == BuildSummary(1700000000.0, 300.0, "busybox-1.36.1-r0 at task: do_install")
    assert parse_build_stats("garbage\n: :\nElapsed time: lots") == BuildSummary()


# --- the condensed file -------------------------------------------------------------------

def test_a_build_directory_condenses_into_a_file_that_reads_back_the_same():
    text = condense_build(BUILD_STATS, [("busybox-1.36.1-r0", "do_compile", BUSYBOX_COMPILE),
                                        ("busybox-1.36.1-r0", "do_install", "Started: x"),
                                        ("zlib-1.3.1-r0", "do_fetch", "Started: 1700000000.5\n"
                                                                      "Ended: 1700000003.0\n")])
    timing = parse_condensed(text)

    assert [t.label for t in timing.tasks] == ["zlib:do_fetch", "busybox:do_compile"]
    assert timing.build_elapsed == 300.0 and timing.wall_seconds == 300.0
    assert timing.cpu_seconds == 41.45
    assert timing.tasks[1] == parse_task_file("busybox-1.36.1-r0", "do_compile", BUSYBOX_COMPILE)


def test_without_build_stats_the_wall_time_is_first_start_to_last_end():
    timing = parse_condensed(condense([task("a", "do_fetch", 100, 110),
                                       task("b", "do_fetch", 105, 130)]))
    assert timing.build_elapsed is None and timing.wall_seconds == 30
    assert timing.task_seconds == 35


def test_a_file_without_the_header_or_with_bad_lines_gives_what_is_valid():
    assert parse_condensed("task\tzlib\t1.3-r0\tdo_fetch\t1\t2\t1\t0\tP\n").is_empty
    good = "task\tzlib\t1.3-r0\tdo_fetch\t1.00\t2.00\t1.00\t0.50\tP"
    text = "\n".join([CONDENSED_HEADER, good, "task\tzlib\t1\tdo_x\t2\t1\t1\t0\tP",
                      "task\t<script>\t1\tdo_fetch\t1\t2\t1\t0\tP", "build\t-5", "junk", ""])
    timing = parse_condensed(text)
    assert [t.label for t in timing.tasks] == ["zlib:do_fetch"]
    assert timing.skipped == 4 and timing.build_elapsed is None


def test_the_condensed_file_is_capped_and_small_for_a_sato_sized_build():
    """core-image-sato from scratch runs ~10k tasks (10-20 MB of task files): condensed they
    take under 100 bytes a task, and no more than MAX_TASKS are ever kept."""
    rng = random.Random(1)
    tasks = [task(f"recipe{n // 20}", f"do_task{n % 20}", 1.7e9 + n, 1.7e9 + n + rng.random() * 900,
                  cpu=rng.random() * 3000, version="10.2.3+git-r12") for n in range(10_000)]
    size = len(condense(tasks).encode())
    assert size < 100 * 10_000  # measured: 0.84 MB for these 10k tasks
    assert len(parse_condensed(condense(tasks)).tasks) == 10_000
    many = tasks * (MAX_TASKS // len(tasks) + 1)
    assert len(parse_condensed(condense(many)).tasks) == MAX_TASKS


names = st.sampled_from(["glibc", "busybox", "linux-yocto", "gcc-cross-x86_64", "a", "b",
                         "update-rc.d", "libstdc++"])
task_names = st.sampled_from(["do_fetch", "do_compile", "do_install", "do_package_write_ipk",
                              "do_rootfs", "do_populate_sysroot_setscene"])
times = st.floats(min_value=0, max_value=2e9, allow_nan=False).map(lambda x: round(x, 2))


@st.composite
def timings(draw):
    out = []
    for _ in range(draw(st.integers(0, 30))):
        start = draw(times)
        elapsed = draw(st.floats(0, 1e5, allow_nan=False).map(lambda x: round(x, 2)))
        out.append(TaskTiming(draw(names), draw(st.sampled_from(["1.0-r0", "2.3+git-r1", ""])),
                              draw(task_names),
                              start, round(start + elapsed, 2), elapsed,
                              draw(st.floats(0, 1e5, allow_nan=False).map(lambda x: round(x, 2))),
                              draw(st.booleans())))
    return out


@given(timings())
@settings(max_examples=60)
def test_well_formed_files_round_trip(tasks):
    timing = parse_condensed(condense(tasks))
    key = (lambda t: (t.start, t.recipe, t.task, t.end))
    assert sorted(timing.tasks, key=key) == sorted(tasks, key=key)
    assert timing.skipped == 0


@given(st.text(max_size=3000))
@settings(max_examples=300)
def test_no_text_makes_any_parser_raise(text):
    for candidate in (text, f"{CONDENSED_HEADER}\n{text}"):
        timing = parse_condensed(candidate)
        timing_view(timing)
        timing.critical_path()
    parse_task_file("busybox-1.36.1-r0", "do_compile", text)
    parse_build_stats(text)


@given(st.lists(st.sampled_from(["Started: 5.5", "Ended: 7", "Ended: 1e400", "Elapsed time: x",
                                 "rusage ru_utime: -1", "Child rusage ru_stime: 3", ":", "Status",
                                 "Started: 99999999999999999999", "Ended: 10.123456789"]),
                max_size=12))
def test_a_shuffle_of_known_keys_gives_a_valid_task_or_none(lines):
    t = parse_task_file("a-1.0-r0", "do_x", "\n".join(lines))
    if t is not None:
        assert 0 <= t.start <= t.end and t.elapsed >= 0 and t.cpu >= 0


# --- rankings and totals -----------------------------------------------------------------

def test_slowest_recipes_add_up_their_tasks_and_slowest_tasks_rank_single_tasks():
    timing = Timing((task("glibc", "do_configure", 0, 30, cpu=20),
                     task("glibc", "do_compile", 30, 130, cpu=400),
                     task("busybox", "do_compile", 10, 120, cpu=300),
                     task("zlib", "do_fetch", 0, 2)))
    assert [(r.recipe, r.elapsed, r.cpu, r.tasks) for r in timing.slowest_recipes(2)] == [
        ("glibc", 130, 420, 2), ("busybox", 110, 300, 1)]
    assert [t.label for t in timing.slowest_tasks(2)] == ["busybox:do_compile", "glibc:do_compile"]
    assert timing.cpu_seconds == 721 and timing.wall_seconds == 130


# --- critical path -------------------------------------------------------------------------

def test_the_critical_path_goes_back_from_the_last_task_through_what_ended_before_each_start():
    timing = Timing((
        task("glibc", "do_fetch", 0, 5), task("glibc", "do_compile", 5.1, 100),
        task("zlib", "do_fetch", 0, 3), task("zlib", "do_compile", 3.1, 20),  # off the path
        task("busybox", "do_compile", 100.2, 150),
        task("image", "do_rootfs", 150.1, 180),
    ))
    assert [t.label for t in timing.critical_path()] == [
        "glibc:do_fetch", "glibc:do_compile", "busybox:do_compile", "image:do_rootfs"]


def test_of_tasks_that_ended_about_as_late_the_same_recipe_is_preferred():
    timing = Timing((task("a", "do_configure", 0, 10), task("b", "do_fetch", 0, 10.5),
                     task("a", "do_compile", 10.6, 50)))
    assert [t.label for t in timing.critical_path()] == ["a:do_configure", "a:do_compile"]


def test_a_gap_ends_nothing_and_overlapping_tasks_are_not_chained():
    timing = Timing((task("a", "do_fetch", 0, 10), task("b", "do_fetch", 5, 20),
                     task("c", "do_fetch", 30, 40)))
    # b ended last before c started; a ended after b started, so it is not b's predecessor
    assert [t.label for t in timing.critical_path()] == ["b:do_fetch", "c:do_fetch"]
    assert Timing(()).critical_path() == []


@given(timings())
@settings(max_examples=100)
def test_the_critical_path_is_a_chain_of_distinct_tasks_in_time_order(tasks):
    path = Timing(tuple(tasks)).critical_path()
    assert len({id(t) for t in path}) == len(path) <= len(tasks)
    for before, after in zip(path, path[1:]):
        assert before.end <= after.start + 0.01
    if tasks:
        assert path[-1].end == max(t.end for t in tasks)


# --- two builds ----------------------------------------------------------------------------

def test_timing_differences_are_per_recipe_and_task_largest_change_first():
    a = Timing((task("glibc", "do_compile", 0, 100), task("busybox", "do_compile", 0, 50),
                task("zlib", "do_fetch", 0, 3)))
    b = Timing((task("glibc", "do_compile", 0, 90, version="2.40-r0"),
                task("busybox", "do_compile", 0, 80), task("curl", "do_compile", 0, 12)))
    diffs = timing_differences(a, b)
    assert [(d.recipe, d.task, d.before, d.after, d.delta) for d in diffs] == [
        ("busybox", "do_compile", 50, 80, 30),
        ("curl", "do_compile", None, 12, 12),
        ("glibc", "do_compile", 100, 90, -10),
        ("zlib", "do_fetch", 3, None, -3),
    ]
    assert [d.recipe for d in timing_differences(a, b, limit=1)] == ["busybox"]
    assert [d.recipe for d in timing_differences(a, b, minimum=11)] == ["busybox", "curl"]
    assert timing_differences(a, a) == []


@given(timings(), timings())
@settings(max_examples=80)
def test_differences_are_sorted_and_antisymmetric(a_tasks, b_tasks):
    a, b = Timing(tuple(a_tasks)), Timing(tuple(b_tasks))
    forward = timing_differences(a, b, limit=10_000)
    backward = timing_differences(b, a, limit=10_000)
    assert [abs(d.delta) for d in forward] == sorted((abs(d.delta) for d in forward), reverse=True)
    assert ({(d.recipe, d.task): -d.delta for d in forward}
            == {(d.recipe, d.task): d.delta for d in backward})


def test_the_view_of_an_empty_timing_is_none_and_otherwise_holds_the_summary():
    assert timing_view(Timing(())) is None
    view = timing_view(Timing((task("a", "do_fetch", 10, 20, cpu=4),
                               task("a", "do_compile", 20, 50, cpu=90, failed=True))), n=1)
    assert view is not None
    assert (view.wall_seconds, view.cpu_seconds, view.task_count, view.failed_tasks) == (
        40, 94, 2, 1)
    assert [t.label for t in view.slowest_tasks] == ["a:do_compile"]
    assert view.critical_seconds == 40 and view.first_start == 10


def test_a_long_critical_path_shows_its_longest_steps_in_order_and_its_whole_length():
    """A forged buildstats.tsv can chain 30k tasks: the page keeps 200 steps, says how many."""
    chain = tuple(task(f"r{i}", "do_compile", i * 10.0, i * 10.0 + (9 if i % 7 else 5))
                  for i in range(1000))

    view = timing_view(Timing(chain))

    assert view is not None and view.critical_steps == 1000 and view.critical_path_cut
    assert len(view.critical_path) == 200
    assert all(t.elapsed == 9 for t in view.critical_path)
    assert [t.start for t in view.critical_path] == sorted(t.start for t in view.critical_path)
    assert view.critical_seconds == sum(t.elapsed for t in chain)
