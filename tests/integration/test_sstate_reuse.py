"""Shared state for real: two stand-in builds through the runner with the same cache directory;
the second reuses what the first put into SSTATE_DIR, and the service reads it from the digest."""

from __future__ import annotations

import re

from autobuild.adapters.job_files import JobDirectory
from autobuild.domain.buildstats import Timing, parse_condensed, timing_differences
from autobuild.domain.jobs import Job
from autobuild.domain.layout import TIMING
from autobuild.domain.queries import JobQueries
from tests.fakes import FakeClock, FakeJobRepository

from .conftest import MACHINE, TARGET
from .test_runner import assert_finished

SUMMARY = re.compile(r"^Sstate summary: Wanted (\d+) Local (\d+) Mirrors 0 Missed (\d+) "
                     r"Current 0 \((\d+)% match, 0% complete\)$", re.M)
OBJECT = re.compile(r"^sstate:[a-z-]+:([a-z0-9_]+-poky-linux)?:[0-9.]+(\+git)?:r0:([a-z0-9_]+)?:14:"
                    r"[0-9a-f]{64}_[a-z_]+\.tar\.zst$")
# The recipes whose objects the stand-in keeps in sstate, and the tasks of each object.
CACHED = {"base-files", "busybox", "glibc", "linux-yocto"}
SETSCENE = {"do_populate_lic_setscene", "do_packagedata_setscene", "do_package_qa_setscene",
            "do_populate_sysroot_setscene"}


def reuse_of(runner, job_id: int, machine: str = MACHINE):
    """What the service reads of the build's sstate reuse (its digest, through JobDirectory)."""
    jobs = FakeJobRepository()
    jobs.rows[job_id] = Job(job_id, runner.owner, "https://x/y.git", "main", machine, TARGET,
                            FakeClock().now())
    return JobQueries(jobs, JobDirectory(runner.jobs_root)).cache_reuse(job_id)


def cache_settings(cache) -> dict:
    return {"cache_dir": str(cache), "keep_workspace": False}


def test_a_second_build_reuses_the_sstate_the_first_one_left(runner, git, tmp_path):
    cache = tmp_path / "cache"
    (cache / "downloads").mkdir(parents=True)
    (cache / "sstate-cache").mkdir()

    first = runner.build(1, git.url, "main", settings=cache_settings(cache))
    assert_finished(first, "SUCCESS", 0)
    assert SUMMARY.findall(first.log) == [("16", "0", "16", "0")]
    assert "Running setscene task" not in first.log
    assert "NOTE: Tasks Summary: Attempted 28 tasks of which 0 didn't need to be rerun" \
        in first.log
    objects = sorted(p for p in (cache / "sstate-cache").rglob("*.tar.zst"))
    assert len(objects) == 16
    for path in objects:  # <hash[:2]>/<hash[2:4]>/sstate:...:<hash>_<task>.tar.zst
        unihash = path.name.rsplit(":", 1)[1].split("_", 1)[0]
        assert path.parent.name == unihash[2:4] and path.parent.parent.name == unihash[:2]
        assert OBJECT.match(path.name), path.name
        assert path.with_name(path.name + ".siginfo").is_file()

    second = runner.build(2, git.url, "main", settings=cache_settings(cache))
    assert_finished(second, "SUCCESS", 0)
    assert SUMMARY.findall(second.log) == [("16", "16", "0", "100")]
    assert second.log.count("NOTE: Running setscene task") == 16
    assert "NOTE: Tasks Summary: Attempted 28 tasks of which 16 didn't need to be rerun and " \
           "all succeeded." in second.log
    assert sorted((cache / "sstate-cache").rglob("*.tar.zst")) == objects  # nothing new

    before, after = reuse_of(runner, 1), reuse_of(runner, 2)
    assert (before.wanted, before.found, before.missed, before.match_percent) == (16, 0, 16, 0)
    assert (before.setscene_run, before.tasks_run) == (0, 28)
    assert (after.wanted, after.found, after.local, after.match_percent) == (16, 16, 16, 100)
    assert (after.setscene_run, after.tasks_run, after.attempted, after.not_rerun) == (
        16, 12, 28, 16)

    # Another MACHINE has objects of its own: nothing to reuse yet.
    other = runner.build(3, git.url, "main", machine="genericarm64",
                         settings=cache_settings(cache))
    assert_finished(other, "SUCCESS", 0)
    assert SUMMARY.findall(other.log) == [("16", "0", "16", "0")]
    assert reuse_of(runner, 3, "genericarm64").missed == 16


def tasks_of(timing: Timing) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for t in timing.tasks:
        out.setdefault(t.recipe, set()).add(t.task)
    return out


def test_the_buildstats_of_a_build_from_sstate_show_setscene_tasks_and_less_time(
        runner, git, tmp_path):
    cache = tmp_path / "cache"
    (cache / "downloads").mkdir(parents=True)
    (cache / "sstate-cache").mkdir()
    builds = [runner.build(n, git.url, "main", settings=cache_settings(cache),
                           STANDIN_BUILDSTATS_SEED="alike") for n in (1, 2)]
    for build in builds:
        assert_finished(build, "SUCCESS", 0)
    before, after = (parse_condensed((b.job_dir / TIMING).read_text()) for b in builds)

    built, restored = tasks_of(before), tasks_of(after)
    for recipe in CACHED:  # restored from sstate: only its setscene tasks ran
        assert "do_compile" in built[recipe] and not built[recipe] & SETSCENE
        assert restored[recipe] == SETSCENE, recipe
    assert {r: t for r, t in built.items() if r not in CACHED} == {
        r: t for r, t in restored.items() if r not in CACHED}  # the rest built again
    assert len(after.tasks) == len(before.tasks) - 4 * 13 + 16
    assert after.wall_seconds < before.wall_seconds / 3  # the kernel and the C library

    # Seeded alike: the tasks built both times took the same time; what changed is sstate's.
    diffs = timing_differences(before, after, limit=1000)
    assert {d.recipe for d in diffs} == CACHED
    assert (diffs[0].recipe, diffs[0].task, diffs[0].after) == ("linux-yocto", "do_compile", None)
    setscene = [d for d in diffs if d.task.endswith("_setscene")]
    assert len(setscene) == 16 and all(d.before is None and d.after < 10 for d in setscene)


def test_without_shared_caches_every_build_misses_everything(runner, git):
    for job_id in (1, 2):
        build = runner.build(job_id, git.url, "main")  # the cache directory does not exist
        assert_finished(build, "SUCCESS", 0)
        assert "SSTATE_DIR" not in build.log.split("Sstate summary")[0]
        assert SUMMARY.findall(build.log) == [("16", "0", "16", "0")]
        reuse = reuse_of(runner, job_id)
        assert (reuse.match_percent, reuse.setscene_run, reuse.tasks_run) == (0, 0, 28)
