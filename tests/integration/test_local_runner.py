"""LocalBuildRunner with the real run_job.sh (as the current user, without sudo): a runner is
known alive by the lock on its launch log, its end is seen at once, and after a service
restart a new adapter finds running and ended builds again without any pid."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autobuild.adapters.local_runner import LocalBuildRunner
from autobuild.domain import layout
from autobuild.domain.jobs import Job, JobStatus
from autobuild.domain.orders import BuildSettings
from autobuild.domain.ports import Ended, Lost, Running, RunnerError
from tests.integration.conftest import MACHINE, RUNNER

USER = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def env(monkeypatch, git, user_token):
    monkeypatch.setenv("GIT_SSL_CAINFO", str(git.server.ca_file))
    monkeypatch.setenv("STANDIN_BITBAKE_DELAY", "0")


@pytest.fixture
def adapter(tmp_path, env) -> LocalBuildRunner:
    (tmp_path / "jobs").mkdir()
    return make_adapter(tmp_path)


def make_adapter(tmp_path: Path) -> LocalBuildRunner:
    """A new adapter over the same directories: what a restarted service has."""
    return LocalBuildRunner(RUNNER, tmp_path / "jobs", tmp_path / "data" / "launch",
                            use_sudo=False)


def make_job(tmp_path: Path, git, job_id: int = 7, target: str = "core-image-minimal",
             owner: str = USER) -> Job:
    job = Job(id=job_id, owner=owner, repo_url=git.url, ref="main", machine=MACHINE,
              target=target, created_at=datetime.now(UTC))
    job.decide(("*.bin", "*.mtd"), BuildSettings(cache_dir=str(tmp_path / "no-cache"),
                                                 cancel_grace=2))
    return job


def wait_for(adapter: LocalBuildRunner, job: Job, kind: type, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = adapter.state(job)
        if isinstance(state, kind):
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {job.id} never reached {kind.__name__}: {state}")


def test_a_build_runs_and_its_end_is_told_at_once(adapter, tmp_path, git):
    ended = threading.Event()
    adapter.on_change(ended.set)
    job = make_job(tmp_path, git)

    assert adapter.launch(job) == "local"
    assert isinstance(adapter.state(job), Running)
    assert ended.wait(60), "the end was never told"
    assert adapter.state(job) == Ended(JobStatus.SUCCESS, 0)
    launch_log = tmp_path / "data" / "launch" / "7.log"
    assert launch_log.is_file() and not (tmp_path / "jobs" / "7").exists()
    assert (tmp_path / "jobs" / USER / "7" / layout.STATUS).is_file()


def test_a_failing_build_ends_failed_with_its_exit_code(adapter, tmp_path, git):
    job = make_job(tmp_path, git, target="fail-image")
    adapter.launch(job)
    state = wait_for(adapter, job, Ended)
    assert (state.status, state.exit_code) == (JobStatus.FAILED, 1)


def test_a_runner_that_refuses_never_started_and_says_why(adapter, tmp_path, git):
    job = make_job(tmp_path, git, owner="nobody")  # not the user the runner runs as
    adapter.launch(job)
    state = wait_for(adapter, job, Lost)
    assert not state.started
    assert "belongs to nobody" in state.reason and "Traceback" not in state.reason


def test_a_restarted_service_finds_the_running_build_and_is_told_its_end(tmp_path, env, git,
                                                                         monkeypatch):
    (tmp_path / "jobs").mkdir()
    monkeypatch.setenv("STANDIN_BITBAKE_DELAY", "0.3")
    job = make_job(tmp_path, git)
    make_adapter(tmp_path).launch(job)  # the service that launched it is gone
    restarted = make_adapter(tmp_path)
    ended = threading.Event()
    restarted.on_change(ended.set)

    assert isinstance(restarted.state(job), Running)
    assert ended.wait(60)
    assert isinstance(restarted.state(job), Ended)


def test_an_ended_build_reads_ended_while_another_service_process_waits_on_it(adapter,
                                                                              tmp_path, git):
    """The old process of a restarted service may still be waiting on the runner's lock
    when the new one is told the end: its waiter must not make the build read as running."""
    import fcntl
    job = make_job(tmp_path, git)
    adapter.launch(job)
    wait_for(adapter, job, Ended)
    fd = os.open(tmp_path / "data" / "launch" / "7.log", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # as that waiter holds it, the moment it wakes
        assert adapter.state(job) == Ended(JobStatus.SUCCESS, 0)
    finally:
        os.close(fd)


def test_cancel_ends_the_build_cancelled(adapter, tmp_path, git, monkeypatch):
    monkeypatch.setenv("STANDIN_BITBAKE_DELAY", "0.5")
    job = make_job(tmp_path, git)
    adapter.launch(job)
    log = tmp_path / "jobs" / USER / "7" / layout.LOGS_DIR / layout.BUILD_LOG
    deadline = time.monotonic() + 30
    while "do_fetch" not in (log.read_text(errors="replace") if log.exists() else ""):
        assert time.monotonic() < deadline, "the build never got to bitbake"
        time.sleep(0.05)
    adapter.cancel(job)
    state = wait_for(adapter, job, Ended)
    assert state.status is JobStatus.CANCELLED


def test_cancel_of_an_ended_build_is_not_an_error_and_purge_removes_everything(
        adapter, tmp_path, git):
    job = make_job(tmp_path, git)
    adapter.launch(job)
    wait_for(adapter, job, Ended)
    adapter.cancel(job)  # it ended meanwhile: nothing to do, nothing raised
    adapter.purge(job)
    assert not (tmp_path / "jobs" / USER / "7").exists()
    assert not (tmp_path / "data" / "launch" / "7.log").exists()
    assert isinstance(adapter.state(job), Lost)


def test_a_runner_killed_mid_build_is_lost_after_it_started(adapter, tmp_path, git, monkeypatch):
    monkeypatch.setenv("STANDIN_BITBAKE_DELAY", "0.5")
    job = make_job(tmp_path, git)
    adapter.launch(job)
    record = tmp_path / "jobs" / USER / "7" / layout.RUNNER_RECORD
    deadline = time.monotonic() + 30
    while not record.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    import json
    data = json.loads(record.read_text())
    os.killpg(data["pgid"], signal.SIGKILL)
    os.kill(data["pid"], signal.SIGKILL)
    state = wait_for(adapter, job, Lost)
    assert state.started and "without saying how the build ended" in state.reason


def test_a_second_launch_while_one_runs_is_refused(adapter, tmp_path, git, monkeypatch):
    monkeypatch.setenv("STANDIN_BITBAKE_DELAY", "0.3")
    job = make_job(tmp_path, git)
    adapter.launch(job)
    with pytest.raises(RunnerError, match="already at work"):
        make_adapter(tmp_path).launch(job)
    wait_for(adapter, job, Ended)


def test_a_build_started_by_the_old_service_is_followed_by_pid(adapter, tmp_path, git):
    job = make_job(tmp_path, git)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        from autobuild.adapters import procfs
        job.runner_ref = f"pid:{sleeper.pid}:{procfs.start_time(sleeper.pid)}"
        assert isinstance(adapter.state(job), Running)
        job.runner_ref = f"pid:{sleeper.pid}:1"  # the pid, reused by another process
        assert isinstance(adapter.state(job), Lost)
    finally:
        sleeper.kill()
        sleeper.wait()
    job.runner_ref = f"pid:{sleeper.pid}:"
    assert isinstance(adapter.state(job), Lost)
    done = tmp_path / "jobs" / USER / "7"
    done.mkdir(parents=True)
    (done / layout.STATUS).write_text('{"status": "SUCCESS", "exit_code": 0}')
    os.chmod(done / layout.STATUS, 0o640)
    assert adapter.state(job) == Ended(JobStatus.SUCCESS, 0)


def test_a_job_stored_under_looser_rules_is_refused_with_a_runner_error(adapter, tmp_path, git):
    job = make_job(tmp_path, git)
    job.repo_url = "http://insecure.example.com/p.git"  # no longer accepted
    with pytest.raises(RunnerError, match="no longer accepted"):
        adapter.launch(job)
    assert not (tmp_path / "data" / "launch" / "7.log").exists()


@pytest.mark.parametrize("content", [
    b'{"status": "FAILED", "exit_code": 1180591620717411303424}',  # would not fit the database
    b'{"status": "FAILED", "exit_code": -1}', b'{"status": "SUCCESS", "exit_code": 256}',
    b'{"status": "SUCCESS", "exit_code": true}', b'{"status": "RUNNING", "exit_code": 0}',
    b'not json', b'[]'])
def test_a_status_the_owner_forged_out_of_range_is_no_end(content):
    from autobuild.adapters.local_runner import parse_status

    assert parse_status(content) is None
    assert parse_status(b'{"status": "CANCELLED", "exit_code": 130}') == Ended(
        JobStatus.CANCELLED, 130)
