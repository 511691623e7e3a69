"""The runner condenses tmp/buildstats into the job without following a link out of the
build tree, reading a FIFO, or keeping more than its caps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autobuild.domain.buildstats import parse_condensed
from autobuild.domain.layout import TIMING
from autobuild.runner import timing
from autobuild.runner.timing import keep_timing

TASK = "Event: TaskStarted \nStarted: {start:.2f} \n{pf}: {task}\nElapsed time: {e:.2f} seconds\n" \
       "rusage ru_utime: 0.5\nrusage ru_stime: 0.1\nChild rusage ru_utime: 3.0\n" \
       "Child rusage ru_stime: 0.4\nStatus: PASSED \nEnded: {end:.2f} \n"


def write_task(run: Path, pf: str, task: str, start: float, end: float) -> Path:
    (run / pf).mkdir(exist_ok=True)
    path = run / pf / task
    path.write_text(TASK.format(start=start, end=end, e=end - start, pf=pf, task=task))
    return path


@pytest.fixture
def tree(tmp_path):
    """work/ with build/tmp/buildstats/<BUILDNAME>/, and the job directory; yields
    (run dir, job dir, keep) where keep() runs keep_timing and returns the log lines."""
    work, job = tmp_path / "work", tmp_path / "job"
    run = work / "build" / "tmp" / "buildstats" / "20260101120000"
    run.mkdir(parents=True)
    job.mkdir()
    (run / "build_stats").write_text("Build Started: 1000.00 \nElapsed time: 99.00 seconds \n")
    said: list[str] = []

    def keep() -> list[str]:
        work_fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
        job_fd = os.open(job, os.O_RDONLY | os.O_DIRECTORY)
        try:
            keep_timing(work_fd, "build", job_fd, said.append)
        finally:
            os.close(work_fd)
            os.close(job_fd)
        return said
    return run, job, keep


def kept(job: Path):
    return parse_condensed((job / TIMING).read_text())


def test_it_keeps_every_task_and_bitbakes_elapsed_time(tree):
    run, job, keep = tree
    write_task(run, "zlib-1.3.1-r0", "do_fetch", 1000, 1002)
    write_task(run, "zlib-1.3.1-r0", "do_compile", 1002.5, 1030)
    write_task(run, "busybox-1.36.1-r0", "do_compile", 1001, 1090)

    said = keep()

    timing_ = kept(job)
    assert [t.label for t in timing_.tasks] == ["zlib:do_fetch", "busybox:do_compile",
                                               "zlib:do_compile"]
    assert timing_.build_elapsed == 99.0 and timing_.cpu_seconds == 12.0
    assert said == [f"Kept the timing of 3 tasks from buildstats ({TIMING}, "
                    f"{(job / TIMING).stat().st_size} bytes)"]


def test_links_fifos_and_oversized_files_are_not_read(tree, tmp_path):
    run, job, keep = tree
    write_task(run, "zlib-1.3.1-r0", "do_fetch", 1000, 1002)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = write_task(outside, "x-1-r0", "do_secret", 1, 2)
    os.symlink(secret, run / "zlib-1.3.1-r0" / "do_install")  # a task file that is a link
    os.symlink(outside / "x-1-r0", run / "evil-1.0-r0")  # a recipe directory that is a link
    os.mkfifo(run / "zlib-1.3.1-r0" / "do_compile")  # would block a reader
    big = write_task(run, "zlib-1.3.1-r0", "do_package", 1003, 1004)
    with big.open("a") as f:
        f.write("x" * (timing.MAX_TASK_FILE_BYTES + 1))

    keep()

    assert [t.label for t in kept(job).tasks] == ["zlib:do_fetch"]


def test_a_buildstats_directory_that_is_a_link_is_not_followed(tmp_path):
    work, job, elsewhere = tmp_path / "work", tmp_path / "job", tmp_path / "elsewhere"
    (work / "build" / "tmp").mkdir(parents=True)
    job.mkdir()
    (elsewhere / "20260101120000").mkdir(parents=True)
    write_task(elsewhere / "20260101120000", "zlib-1.3.1-r0", "do_fetch", 1, 2)
    os.symlink(elsewhere, work / "build" / "tmp" / "buildstats")
    said: list[str] = []
    work_fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    job_fd = os.open(job, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert keep_timing(work_fd, "build", job_fd, said.append) is False
    finally:
        os.close(work_fd)
        os.close(job_fd)
    assert not (job / TIMING).exists()
    assert said == ["NOTE: no buildstats to keep (the build wrote no tmp/buildstats)"]


def test_the_latest_run_is_kept_and_caps_hold(tree, monkeypatch):
    run, job, keep = tree
    older = run.parent / "20250101120000"
    older.mkdir()
    write_task(older, "old-1.0-r0", "do_fetch", 1, 2)
    for n in range(5):
        write_task(run, f"r{n}-1.0-r0", "do_fetch", 1000 + n, 1001 + n)
    monkeypatch.setattr(timing, "MAX_TASKS", 3)

    keep()

    assert [t.recipe for t in kept(job).tasks] == ["r0", "r1", "r2"]


def test_nothing_to_keep_says_so_and_writes_nothing(tree):
    run, job, keep = tree
    (run / "zlib-1.3.1-r0").mkdir()
    (run / "zlib-1.3.1-r0" / "do_fetch").write_text("Event: TaskStarted \nStarted: 1.00 \n")

    said = keep()

    assert not (job / TIMING).exists()
    assert said == ["NOTE: no buildstats to keep (no task recorded in tmp/buildstats)"]
