"""Retention for real: run_job.sh --purge, the job directory, the database and `autobuild gc`."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autobuild import cli
from autobuild.adapters.clock import SystemClock
from autobuild.adapters.job_files import JobDirectory
from autobuild.adapters.sqlite_jobs import SqliteJobRepository
from autobuild.adapters.sudo_runner import SudoBuildRunner
from autobuild.domain.jobs import Job, JobStatus
from autobuild.domain.ports import RunnerError
from autobuild.domain.retention import Retention

RUNNER = Path(__file__).resolve().parents[2] / "runner" / "run_job.sh"
NOW = datetime.now(UTC)


@pytest.fixture
def world(tmp_path):
    class World:
        root = tmp_path / "jobs"
        repo = SqliteJobRepository(tmp_path / "jobs.db")
        files = JobDirectory(tmp_path / "jobs")
        runner = SudoBuildRunner(RUNNER, tmp_path / "jobs", use_sudo=False)
    World.root.mkdir()
    World.retention = Retention(World.repo, World.files, World.runner, SystemClock(), 30)
    return World


def ended_job(w, days_ago: float, status=JobStatus.SUCCESS) -> Job:
    """A stored job that ended ``days_ago`` days ago, with what a build leaves in its dir."""
    finished = NOW - timedelta(days=days_ago)
    job = w.repo.add(Job(owner=os.environ.get("USER", "root"), repo_url="https://h/p.git",
                         ref="main", machine="qemux86-64", target="core-image-minimal",
                         created_at=finished - timedelta(hours=1)))
    w.files.create(job, ["*.bin"])
    job.start(finished - timedelta(hours=1))
    job.finish(0 if status is JobStatus.SUCCESS else 1, finished)
    w.repo.save(job)
    job_dir = w.root / str(job.id)
    (job_dir / "launch.log").write_text("")  # the service's
    for sub in ("logs", "artifacts", "work/src/build/tmp"):
        (job_dir / sub).mkdir(parents=True)
    (job_dir / "logs" / "build.log").write_bytes(b"log line\n" * 10000)
    (job_dir / "artifacts" / "image.bin").write_bytes(b"\0" * 200_000)
    (job_dir / "work" / "src" / "build" / "tmp" / "big").write_bytes(b"\1" * 300_000)
    (job_dir / "status.json").write_text('{"status": "SUCCESS", "exit_code": 0}\n')
    return job


def test_the_runner_purges_and_the_service_removes_the_rest(world):
    job = ended_job(world, 31)
    used = world.files.usage(job.id)
    assert used >= 500_000

    [result] = world.retention.run()

    assert result.purged and result.bytes_used == used
    assert not (world.root / str(job.id)).exists()
    stored = world.repo.get(job.id)
    assert stored.purged_at is not None and stored.status is JobStatus.SUCCESS
    assert world.retention.expired() == []


def test_symlinks_in_the_job_dir_are_not_followed(world, tmp_path):
    job = ended_job(world, 40)
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "thesis.txt").write_text("keep me")
    job_dir = world.root / str(job.id)
    (job_dir / "logs" / "to-outside").symlink_to(outside)
    (job_dir / "artifacts" / "evil.bin").symlink_to(outside / "thesis.txt")
    (job_dir / "cache").symlink_to(outside)  # a top-level link
    (job_dir / "work" / "src" / "link").symlink_to(outside)

    [result] = world.retention.run()

    assert result.purged, result.error
    assert (outside / "thesis.txt").read_text() == "keep me"
    assert not job_dir.exists()


def test_the_runner_refuses_bad_ids_and_a_running_build(world):
    bad = Job(owner="x", repo_url="u", ref="r", machine="m", target="t", created_at=NOW, id=None)
    for job_id in ("../1", "-1", "1 2"):
        bad.id = job_id  # type: ignore[assignment]
        with pytest.raises(RunnerError, match="invalid job id"):
            world.runner.purge(bad)
    job = ended_job(world, 31)
    job_dir = world.root / str(job.id)
    (job_dir / "status.json").unlink()
    (job_dir / "runner.pid").write_text(f"{os.getpid()} {os.getpgid(0)}\n")  # our group is alive
    with pytest.raises(RunnerError, match="still running"):
        world.runner.purge(job)
    assert (job_dir / "logs" / "build.log").exists()


def test_a_job_dir_already_gone_counts_as_purged(world):
    job = ended_job(world, 31)
    shutil.rmtree(world.root / str(job.id))
    [result] = world.retention.run()
    assert result.purged and world.repo.get(job.id).purged_at is not None


def test_the_purged_date_survives_the_database(world):
    job = ended_job(world, 31)
    job.mark_purged(NOW)
    world.repo.save(job)
    assert world.repo.get(job.id).purged_at == NOW


@pytest.fixture
def gc_env(world, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTO_BUILD_DB", str(tmp_path / "jobs.db"))
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
    assert (world.root / str(old.id)).exists()

    assert cli.main(["gc"]) == 0
    out = capsys.readouterr().out
    assert f"removed job #{old.id}" in out
    assert "1 job(s) removed (kept 30 days);" in out and "KiB freed" in out
    assert not (world.root / str(old.id)).exists()
    assert (world.root / str(recent.id) / "logs" / "build.log").exists()

    assert cli.main(["gc"]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_autobuild_gc_reports_a_job_it_cannot_purge_and_exits_1(world, gc_env, monkeypatch,
                                                                capsys):
    job = ended_job(world, 45)
    monkeypatch.setenv("AUTO_BUILD_RUNNER", str(world.root / "no-such-runner.sh"))

    assert cli.main(["gc"]) == 1

    assert f"could not remove job #{job.id}" in capsys.readouterr().err
    assert world.repo.get(job.id).purged_at is None
    assert (world.root / str(job.id) / "logs" / "build.log").exists()
    assert (world.root / str(job.id) / "job.json").exists()  # all or nothing
