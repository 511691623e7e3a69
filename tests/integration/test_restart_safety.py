"""Process identity on real processes, the admin group on the real group database, and a real
build (run_job.sh, stand-in bitbake) cancelled by a service that did not start it."""

from __future__ import annotations

import grp
import os
import pwd
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autobuild.adapters import procfs
from autobuild.adapters.job_files import JobDirectory
from autobuild.adapters.sqlite_jobs import SqliteJobRepository
from autobuild.adapters.sudo_runner import SudoBuildRunner
from autobuild.adapters.unix_groups import GroupAdministrators
from autobuild.domain.jobs import Job, JobStatus
from autobuild.domain.services import JobService
from tests.fakes import FakeClock, FakeEvents
from tests.integration.conftest import RUNNER, group_members, session_members

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _job(job_id: int = 1, owner: str = "alice") -> Job:
    return Job(owner=owner, repo_url="https://git.example.com/p.git", ref="main",
               machine="qemux86-64", target="core-image-minimal", created_at=T0, id=job_id)


@pytest.fixture
def sleeper():
    process = subprocess.Popen(["sleep", "300"])
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


# --- procfs ---------------------------------------------------------------------------------

def test_a_live_process_is_alive_with_its_own_start_time_only(sleeper):
    started = procfs.start_time(sleeper.pid)
    assert started is not None and started > 0
    assert started == procfs.start_time(sleeper.pid)  # stable: it identifies the process
    assert procfs.is_alive(sleeper.pid, started)
    assert procfs.is_alive(sleeper.pid, None)  # jobs recorded before start times were kept
    assert not procfs.is_alive(sleeper.pid, started + 1)  # a reused pid is another process
    assert procfs.start_time(os.getpid()) <= started  # ticks since boot: older starts first


def test_a_zombie_and_a_reaped_process_are_dead(sleeper):
    started = procfs.start_time(sleeper.pid)
    sleeper.kill()
    deadline = time.monotonic() + 10
    while procfs.process_info(sleeper.pid).state != "Z":  # killed, not yet waited for
        assert time.monotonic() < deadline, "the killed sleep never became a zombie"
        time.sleep(0.01)
    assert not procfs.is_alive(sleeper.pid, started)
    sleeper.wait()
    assert procfs.process_info(sleeper.pid) is None
    assert not procfs.is_alive(sleeper.pid, started)


def test_command_names_with_spaces_and_parentheses_are_parsed(tmp_path):
    fake_proc = tmp_path / "proc"
    (fake_proc / "77").mkdir(parents=True)
    fields = ["S"] + [str(n) for n in range(4, 22)] + ["123456", "0", "0"]
    (fake_proc / "77" / "stat").write_text("77 (evil) R 1 (x) " + " ".join(fields) + "\n")
    info = procfs.process_info(77, fake_proc)
    assert info == procfs.ProcessInfo(state="S", start_time=123456)
    assert procfs.process_info(78, fake_proc) is None
    assert procfs.process_info(-1, fake_proc) is None


# --- SudoBuildRunner.launch / probe on a real process ----------------------------------------

def test_launch_records_the_start_time_and_probe_tells_the_process_from_a_reused_pid(tmp_path):
    runner_path = tmp_path / "run_job.sh"
    runner_path.write_text("#!/bin/sh\nexec sleep 300\n")
    runner_path.chmod(0o755)
    jobs_root = tmp_path / "jobs"
    (jobs_root / "1").mkdir(parents=True)
    runner = SudoBuildRunner(runner_path, jobs_root, use_sudo=False)
    job = _job()
    process = runner.launch(job)
    try:
        assert process.start_time == procfs.start_time(process.pid)
        job.attach_process(process.pid, process.start_time)
        assert runner.probe(job)
        reused = _job()
        reused.attach_process(process.pid, process.start_time - 1)
        assert not runner.probe(reused)
        assert not runner.probe(_job())  # no pid recorded: nothing to re-attach
        os.kill(process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while runner.probe(job):  # a zombie until polled: already dead for the probe
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert process.poll() == -signal.SIGKILL
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)


# --- the admin group --------------------------------------------------------------------------

def test_admin_group_members_and_primary_members_are_administrators():
    root_group = grp.getgrgid(0).gr_name
    admins = GroupAdministrators(root_group)
    assert admins.is_admin(pwd.getpwuid(0).pw_name)  # root's primary group
    assert not admins.is_admin("no-such-user-autobuild")
    assert not admins.is_admin("")
    with_members = next((g for g in grp.getgrall() if g.gr_mem), None)
    if with_members is not None:
        assert GroupAdministrators(with_members.gr_name).is_admin(with_members.gr_mem[0])


def test_no_admin_group_or_a_missing_one_makes_nobody_an_administrator():
    root = pwd.getpwuid(0).pw_name
    assert not GroupAdministrators(None).is_admin(root)
    assert not GroupAdministrators("").is_admin(root)
    assert not GroupAdministrators("no-such-group-autobuild").is_admin(root)


# --- a real build, cancelled after a "restart" -------------------------------------------------

def _service(tmp_path: Path, runner: SudoBuildRunner) -> JobService:
    return JobService(SqliteJobRepository(tmp_path / "jobs.db"), JobDirectory(tmp_path / "jobs"),
                      runner, FakeEvents(), FakeClock(), max_running=1)


def _tick_until(service: JobService, job_id: int, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        service.tick()
        job = service.get(job_id)
        if job.is_terminal:
            return job
        assert time.monotonic() < deadline, f"job {job_id} did not end: {job}"
        time.sleep(0.2)


def test_a_build_started_before_a_restart_is_reattached_and_can_be_cancelled(
        tmp_path, git, user_token, monkeypatch):
    monkeypatch.setenv("GIT_SSL_CAINFO", str(git.server.ca_file))
    monkeypatch.setenv("AUTO_BUILD_PYTHON", sys.executable)
    monkeypatch.setenv("AUTO_BUILD_CANCEL_GRACE", "2")
    (tmp_path / "jobs").mkdir()
    owner = pwd.getpwuid(os.getuid()).pw_name
    first = _service(tmp_path, SudoBuildRunner(RUNNER, tmp_path / "jobs", use_sudo=False))
    job = first.submit(owner, git.url, "main", "qemux86-64", "slow-image")
    first.tick()
    started = first.get(job.id)  # type: ignore[arg-type]
    assert started.status is JobStatus.RUNNING
    assert started.pid_start_time == procfs.start_time(started.pid)  # type: ignore[arg-type]
    log = tmp_path / "jobs" / str(job.id) / "logs" / "build.log"
    deadline = time.monotonic() + 60
    while "NOTE: Running task 1 of 12" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the build did not reach bitbake"
        time.sleep(0.1)
    _, pgid = map(int, (tmp_path / "jobs" / str(job.id) / "runner.pid").read_text().split())

    # The service "restarts": a new JobService and runner adapter, only the database shared.
    second = _service(tmp_path, SudoBuildRunner(RUNNER, tmp_path / "jobs", use_sudo=False))
    second.tick()
    assert second.get(job.id).status is JobStatus.RUNNING  # type: ignore[arg-type]
    second.cancel(job.id, owner)  # type: ignore[arg-type]
    ended = _tick_until(second, job.id)  # type: ignore[arg-type]

    assert ended.status is JobStatus.CANCELLED and ended.reason == f"cancelled by {owner}"
    assert ended.exit_code == 130
    assert log.read_text().rstrip("\n").endswith("==> Build finished: CANCELLED (exit 130)")
    assert group_members(pgid) == [] and session_members(started.pid) == []  # type: ignore[arg-type]
