"""Retention for real: run_job.sh purge (as the owner), the build tree, the launch log, the
database and `autobuild gc`."""

from __future__ import annotations

import json
import os
import pwd
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autobuild import cli
from autobuild.adapters.clock import SystemClock
from autobuild.adapters.job_files import JobDirectory
from autobuild.adapters.sqlite_jobs import SqliteJobRepository
from autobuild.adapters.local_runner import LocalBuildRunner
from autobuild.domain import layout
from autobuild.domain.jobs import JobStatus, Submission
from autobuild.domain.requests import BuildRequest
from autobuild.domain.ports import RunnerError
from autobuild.domain.retention import Retention

RUNNER = Path(__file__).resolve().parents[2] / "runner" / "run_job.sh"
NOW = datetime.now(UTC)
OWNER = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def world(tmp_path):
    class World:
        root = tmp_path / "jobs"
        launch = tmp_path / "data" / "launch"
        repo = SqliteJobRepository(tmp_path / "data" / "jobs.db")
        files = JobDirectory(tmp_path / "jobs")
        runner = LocalBuildRunner(RUNNER, tmp_path / "jobs", tmp_path / "data" / "launch",
                                  use_sudo=False)
    World.root.mkdir()
    World.launch.mkdir(parents=True)
    World.retention = Retention(World.repo, World.files, World.runner, SystemClock(), 30)
    return World


def ended_job(w, days_ago: float, status=JobStatus.SUCCESS) -> Job:
    """A stored job that ended ``days_ago`` days ago, with what a build leaves in its dir."""
    finished = NOW - timedelta(days=days_ago)
    request = BuildRequest.parse("https://h.example/p.git", "main", "qemux86-64",
                                 "core-image-minimal")
    job = w.repo.add(Submission(OWNER, request, finished - timedelta(hours=1)))
    job.start(finished - timedelta(hours=1), "local")
    job.finish(0 if status is JobStatus.SUCCESS else 1, finished)
    w.repo.save(job)
    (w.launch / f"{job.id}.log").write_text("")  # the service's
    job_dir = w.root / OWNER / str(job.id)
    for sub in ("logs", "artifacts", "work/src/build/tmp"):
        (job_dir / sub).mkdir(parents=True)
    (job_dir / "logs" / "build.log").write_bytes(b"log line\n" * 10000)
    (job_dir / "artifacts" / "image.bin").write_bytes(b"\0" * 200_000)
    (job_dir / "work" / "src" / "build" / "tmp" / "big").write_bytes(b"\1" * 300_000)
    (job_dir / "status.json").write_text('{"status": "SUCCESS", "exit_code": 0}\n')
    return job


def test_the_runner_purges_as_the_owner_and_the_launch_log_goes_too(world):
    job = ended_job(world, 31)
    used = world.files.usage(job)
    assert used >= 500_000

    [result] = world.retention.run()

    assert result.purged and result.bytes_used == used
    assert not (world.root / OWNER / str(job.id)).exists()
    assert not (world.launch / f"{job.id}.log").exists()
    stored = world.repo.get(job.id)
    assert stored.purged_at is not None and stored.status is JobStatus.SUCCESS
    assert world.retention.expired() == []


def test_symlinks_in_the_job_dir_are_not_followed(world, tmp_path):
    job = ended_job(world, 40)
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "thesis.txt").write_text("keep me")
    job_dir = world.root / OWNER / str(job.id)
    (job_dir / "logs" / "to-outside").symlink_to(outside)
    (job_dir / "artifacts" / "evil.bin").symlink_to(outside / "thesis.txt")
    (job_dir / "cache").symlink_to(outside)  # a top-level link
    (job_dir / "work" / "src" / "link").symlink_to(outside)

    [result] = world.retention.run()

    assert result.purged, result.error
    assert (outside / "thesis.txt").read_text() == "keep me"
    assert not job_dir.exists()


def test_the_runner_refuses_to_purge_a_running_build(world):
    job = ended_job(world, 31)
    job_dir = world.root / OWNER / str(job.id)
    (job_dir / "status.json").unlink()
    # The runner's own record says it runs: this very process (alive, ours).
    from autobuild.adapters import procfs
    (job_dir / layout.RUNNER_RECORD).write_text(json.dumps({
        "job_id": job.id, "pid": os.getpid(), "pgid": os.getpgid(0),
        "start_time": procfs.start_time(os.getpid())}))
    with pytest.raises(RunnerError, match="still running"):
        world.runner.purge(job)
    assert (job_dir / "logs" / "build.log").exists()


def test_a_job_dir_already_gone_counts_as_purged(world):
    job = ended_job(world, 31)
    shutil.rmtree(world.root / OWNER / str(job.id))
    [result] = world.retention.run()
    assert result.purged and world.repo.get(job.id).purged_at is not None


def test_the_purged_date_survives_the_database(world):
    job = ended_job(world, 31)
    job.mark_purged(NOW)
    world.repo.save(job)
    assert world.repo.get(job.id).purged_at == NOW


@pytest.fixture
def gc_env(world, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTO_BUILD_DB", str(tmp_path / "data" / "jobs.db"))
    monkeypatch.setenv("AUTO_BUILD_JOBS_ROOT", str(world.root))
    monkeypatch.setenv("AUTO_BUILD_RUNNER", str(RUNNER))
    monkeypatch.setenv("AUTO_BUILD_NO_SUDO", "1")
    monkeypatch.setenv("AUTO_BUILD_RETENTION_DAYS", "30")


def test_autobuild_gc_dry_run_lists_then_gc_purges(world, gc_env, capsys):
    old, recent = ended_job(world, 45), ended_job(world, 2)

    assert cli.main(["gc", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would remove job #{old.id} of {old.owner}" in out
    assert f"#{recent.id}" not in out
    assert "1 job(s) expired (kept 30 days)" in out and "would be freed" in out
    assert (world.root / OWNER / str(old.id)).exists()

    assert cli.main(["gc"]) == 0
    out = capsys.readouterr().out
    assert f"removed job #{old.id}" in out
    assert "1 job(s) removed (kept 30 days);" in out and "KiB freed" in out
    assert not (world.root / OWNER / str(old.id)).exists()
    assert (world.root / OWNER / str(recent.id) / "logs" / "build.log").exists()

    assert cli.main(["gc"]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_autobuild_gc_reports_a_job_it_cannot_purge_and_exits_1(world, gc_env, monkeypatch,
                                                                capsys):
    job = ended_job(world, 45)
    monkeypatch.setenv("AUTO_BUILD_RUNNER", str(world.root / "no-such-runner.sh"))

    assert cli.main(["gc"]) == 1

    assert f"could not remove job #{job.id}" in capsys.readouterr().err
    assert world.repo.get(job.id).purged_at is None
    assert (world.root / OWNER / str(job.id) / "logs" / "build.log").exists()
    assert (world.launch / f"{job.id}.log").exists()  # the service's record stays too
