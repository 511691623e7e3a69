"""Process identity on real processes (builds of the old service are followed by pid), the
admin group on the real group database, and a real build (run_job.sh, stand-in bitbake)
cancelled by a service that did not start it."""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autobuild.adapters import procfs
from autobuild.adapters.job_files import JobDirectory
from autobuild.adapters.sqlite_jobs import SqliteJobRepository
from autobuild.adapters.local_runner import LocalBuildRunner
from autobuild.adapters.unix_groups import GroupAdministrators
from autobuild.domain import layout
from autobuild.domain.commands import JobCommands
from autobuild.domain.jobs import Job, JobStatus
from autobuild.domain.orders import BuildSettings
from autobuild.domain.permissions import Permissions
from autobuild.domain.queries import JobQueries
from autobuild.domain.supervision import Supervisor
from tests.fakes import FakeClock, FakeEvents
from tests.integration.conftest import RUNNER, group_members, session_members

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


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

class Core:
    """The core over real adapters (SQLite, the build tree, the local runner): what one
    service process holds. A "restart" is a new Core over the same files."""

    def __init__(self, tmp_path: Path) -> None:
        self.repo = SqliteJobRepository(tmp_path / "data" / "jobs.db")
        self.runner = LocalBuildRunner(RUNNER, tmp_path / "jobs", tmp_path / "data" / "launch",
                                       use_sudo=False)
        events, clock, lock = FakeEvents(), FakeClock(), threading.RLock()
        self.queries = JobQueries(self.repo, JobDirectory(tmp_path / "jobs"))
        self.commands = JobCommands(self.repo, self.runner, events, clock, Permissions(), lock)
        self.supervisor = Supervisor(self.repo, self.runner, events, clock, lock,
                                     build_settings=BuildSettings(
                                         cache_dir=str(tmp_path / "no-cache"), cancel_grace=2))

    def tick_until_ended(self, job_id: int, timeout: float = 60) -> Job:
        deadline = time.monotonic() + timeout
        while True:
            self.supervisor.tick()
            job = self.queries.get(job_id)
            if job.is_terminal:
                return job
            assert time.monotonic() < deadline, f"job {job_id} did not end: {job}"
            time.sleep(0.2)


def test_a_build_started_before_a_restart_is_reattached_and_can_be_cancelled(
        tmp_path, git, user_token, monkeypatch):
    monkeypatch.setenv("GIT_SSL_CAINFO", str(git.server.ca_file))
    (tmp_path / "jobs").mkdir()
    (tmp_path / "data").mkdir()
    owner = pwd.getpwuid(os.getuid()).pw_name
    first = Core(tmp_path)
    job = first.commands.submit(owner, git.url, "main", "qemux86-64", "slow-image")
    first.supervisor.tick()
    assert first.queries.get(job.id).status is JobStatus.RUNNING
    job_dir = tmp_path / "jobs" / owner / str(job.id)
    log = job_dir / layout.LOGS_DIR / layout.BUILD_LOG
    deadline = time.monotonic() + 60
    while "NOTE: Running task 1 of 12" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the build did not reach bitbake"
        time.sleep(0.1)
    record = json.loads((job_dir / layout.RUNNER_RECORD).read_text())

    # The service "restarts": new objects over the same database and directories.
    second = Core(tmp_path)
    second.supervisor.reconcile()
    assert second.queries.get(job.id).status is JobStatus.RUNNING
    second.commands.cancel(job.id, owner)
    ended = second.tick_until_ended(job.id)

    assert ended.status is JobStatus.CANCELLED and ended.reason == f"cancelled by {owner}"
    assert ended.exit_code == 130
    assert log.read_text().rstrip("\n").endswith(
        layout.step_line(f"{layout.STEP_FINISHED}CANCELLED (exit 130)"))
    assert group_members(record["pgid"]) == [] and session_members(record["pid"]) == []
