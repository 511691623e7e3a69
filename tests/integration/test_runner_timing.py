"""A real stand-in build through the runner leaves its buildstats condensed in the job
(layout.TIMING), with the numbers of the task files bitbake wrote, for the service to read."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autobuild.domain.buildstats import (
    MAX_CONDENSED_BYTES, parse_build_stats, parse_condensed,
    timing_differences,
)
from autobuild.domain.jobs import Job
from autobuild.domain.layout import BUILDSTATS_PATH, BUILDSTATS_SUMMARY, TIMING

from .conftest import MACHINE, TARGET
from .test_runner import assert_finished


def buildstats_run(build_dir: Path) -> Path:
    runs = list(build_dir.joinpath(*BUILDSTATS_PATH).iterdir())
    assert len(runs) == 1 and runs[0].name.isdigit() and len(runs[0].name) == 14  # DATETIME
    return runs[0]


def written_by_bitbake(run: Path) -> dict[tuple[str, str], tuple[float, float, bool]]:
    """(recipe, task) -> (Elapsed time, Started, failed), read straight from the task files."""
    out = {}
    for task_file in run.glob("*/do_*"):
        lines = dict(line.split(": ", 1) for line in task_file.read_text().splitlines())
        name = task_file.parent.name.rsplit("-", 2)[0]
        out[(name, task_file.name)] = (float(lines["Elapsed time"].split()[0]),
                                       float(lines["Started"]),
                                       lines["Status"].strip() == "FAILED")
    return out


def test_a_build_keeps_the_timing_of_every_task_bitbake_recorded(runner, git, files):
    build = runner.build(1, git.url, "main", STANDIN_BUILDSTATS_SEED="one")

    assert_finished(build, "SUCCESS", 0)
    run = buildstats_run(build.job_dir / "work" / "src" / "build")
    raw = written_by_bitbake(run)
    assert len(raw) > 150 and len({recipe for recipe, _ in raw}) >= 14
    kept = parse_condensed((build.job_dir / TIMING).read_text())
    assert kept.skipped == 0
    assert {(t.recipe, t.task): (t.elapsed, t.start, t.failed) for t in kept.tasks} == raw
    summary = parse_build_stats((run / BUILDSTATS_SUMMARY).read_text())
    assert kept.build_elapsed == summary.elapsed and kept.wall_seconds > 60
    assert (build.job_dir / TIMING).stat().st_mode & 0o777 == 0o640
    assert f"Kept the timing of {len(raw)} tasks from buildstats ({TIMING}" in build.log

    # the service reads the same through BuildTree
    job = Job(id=1, owner=runner.owner, repo_url=git.url, ref="main", machine=MACHINE,
              target=TARGET, created_at=datetime(2026, 1, 1, tzinfo=UTC))
    data = files.read_timing(job, MAX_CONDENSED_BYTES)
    assert data is not None and parse_condensed(data.decode()) == kept
    assert kept.tasks[-1].recipe == TARGET
    assert kept.critical_path()[-1].label == f"{TARGET}:do_build"


def test_two_builds_differ_in_timing_unless_seeded_alike(runner, git):
    builds = [runner.build(n, git.url, "main", STANDIN_BUILDSTATS_SEED=seed)
              for n, seed in ((1, "same"), (2, "same"), (3, "other"))]

    timings = [parse_condensed((b.job_dir / TIMING).read_text()) for b in builds]
    assert timing_differences(timings[0], timings[1]) == []
    diffs = timing_differences(timings[0], timings[2])
    assert len(diffs) > 20 and abs(diffs[0].delta) > 1


def test_a_failed_build_keeps_its_timing_too_with_the_failed_task(runner, git):
    build = runner.build(1, git.url, "main", target="fail-compile",
                         settings={"cache_dir": "/nonexistent"})

    assert_finished(build, "FAILED", 1)
    assert not (build.job_dir / "work").exists()  # kept before the workspace went
    kept = parse_condensed((build.job_dir / TIMING).read_text())
    failed = [t.label for t in kept.tasks if t.failed]
    assert failed == ["fail-compile:do_compile"]
    assert kept.build_elapsed is not None


def test_a_kas_build_keeps_its_timing_from_kas_build_directory(runner, git):
    from .test_runner_build_features import KAS, create_kas_repo
    if not KAS.exists():
        pytest.skip("kas is not installed in .venv")
    bare = git.bare.parent / "kas-project.git"
    if not bare.exists():
        create_kas_repo(bare)
    build = runner.build(1, git.server.url("kas-project.git"), "main")

    assert_finished(build, "SUCCESS", 0)
    raw = written_by_bitbake(buildstats_run(build.job_dir / "work" / "build"))
    kept = parse_condensed((build.job_dir / TIMING).read_text())
    assert len(kept.tasks) == len(raw) > 150


def test_the_service_reads_no_link_fifo_or_hard_link_in_place_of_the_file(runner, git, files,
                                                                          tmp_path):
    build = runner.build(1, git.url, "main")
    assert_finished(build, "SUCCESS", 0)
    job = Job(id=1, owner=runner.owner, repo_url=git.url, ref="main", machine=MACHINE,
              target=TARGET, created_at=datetime(2026, 1, 1, tzinfo=UTC))
    kept = build.job_dir / TIMING
    outside = tmp_path / "outside.tsv"
    outside.write_bytes(kept.read_bytes())
    outside.chmod(0o640)

    kept.unlink()
    kept.symlink_to(outside)
    assert files.read_timing(job, MAX_CONDENSED_BYTES) is None
    kept.unlink()
    os.mkfifo(kept, 0o640)
    assert files.read_timing(job, MAX_CONDENSED_BYTES) is None  # and did not block
    kept.unlink()
    os.link(outside, kept)
    assert files.read_timing(job, MAX_CONDENSED_BYTES) is None
