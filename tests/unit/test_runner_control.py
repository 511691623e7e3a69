"""cancel and purge trust only our own record, and a pid only with its start time and owner."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import time

import pytest

from autobuild.adapters.procfs import start_time
from autobuild.domain import layout
from autobuild.domain.orders import JobAddress
from autobuild.runner import control
from autobuild.runner.fsops import Refused
from autobuild.runner.jobdir import Identity, RunnerRecord, write_record
from autobuild.runner.procs import group_members, is_our_process


@pytest.fixture
def me(tmp_path) -> Identity:
    return Identity(os.getuid(), pwd.getpwuid(os.getuid()).pw_name, str(tmp_path))


@pytest.fixture
def address(tmp_path, me) -> JobAddress:
    (tmp_path / "jobs").mkdir()
    return JobAddress(4, me.name, str(tmp_path / "jobs"))


@pytest.fixture
def job_dir(address, me):
    path = os.path.join(address.jobs_root, me.name, "4")
    os.makedirs(path, mode=0o2750)
    return path


@pytest.fixture
def sleeper():
    """A process of ours in its own group that records the first SIGINT it gets."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time\n"
         "signal.signal(signal.SIGINT, lambda *a: (print('INT', flush=True), sys.exit(0)))\n"
         "print('ready', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout.readline() == "ready\n"
    yield process
    process.kill()
    process.wait()


def record(job_dir: str, pid: int, pgid: int, started: int | None) -> None:
    fd = os.open(job_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        write_record(fd, RunnerRecord(4, pid, pgid, started or 1))
    finally:
        os.close(fd)


def test_cancel_of_a_job_that_never_appears_says_not_running(address, me, monkeypatch, capsys):
    monkeypatch.setattr(control, "WAIT_FOR_JOB_DIR", 0.3)
    started = time.monotonic()
    assert control.cancel(address, me) == 3
    assert time.monotonic() - started >= 0.3
    assert capsys.readouterr().out == "job 4 is not running\n"


def test_cancel_of_an_ended_job_says_not_running(address, me, job_dir):
    open(os.path.join(job_dir, layout.STATUS), "w").close()
    assert control.cancel(address, me) == 3


def test_cancel_before_the_runner_record_leaves_a_note(address, me, job_dir, capsys):
    assert control.cancel(address, me) == 0
    assert os.path.isfile(os.path.join(job_dir, layout.CANCEL_REQUEST))
    assert "will stop as soon as it starts" in capsys.readouterr().out
    assert control.cancel(address, me) == 0  # a second note is not an error


def test_cancel_signals_a_live_runner_of_ours(address, me, job_dir, sleeper):
    record(job_dir, sleeper.pid, sleeper.pid, start_time(sleeper.pid))
    assert control.cancel(address, me) == 0
    assert sleeper.stdout.readline() == "INT\n"


def test_cancel_does_not_signal_a_pid_with_another_start_time(address, me, job_dir, sleeper):
    record(job_dir, sleeper.pid, 2 ** 22 + 7, start_time(sleeper.pid) + 1)
    assert control.cancel(address, me) == 3
    assert sleeper.poll() is None


def test_cancel_kills_the_group_of_a_dead_runner(address, me, job_dir, sleeper):
    record(job_dir, 2 ** 22 + 5, sleeper.pid, 1)
    assert control.cancel(address, me) == 0
    assert sleeper.wait(timeout=10) == -signal.SIGKILL


def test_cancel_refuses_a_linked_record(address, me, job_dir, sleeper, tmp_path):
    real = tmp_path / "record.json"
    real.write_text(f'{{"job_id": 4, "pid": {sleeper.pid}, "pgid": {sleeper.pid}, '
                    f'"start_time": {start_time(sleeper.pid)}}}')
    os.symlink(real, os.path.join(job_dir, layout.RUNNER_RECORD))
    with pytest.raises(Refused, match="not a regular file"):
        control.cancel(address, me)
    assert sleeper.poll() is None


def test_processes_of_another_user_are_never_ours(sleeper):
    assert is_our_process(sleeper.pid, start_time(sleeper.pid))
    assert not is_our_process(sleeper.pid, start_time(sleeper.pid), uid=os.getuid() + 1)
    assert group_members(sleeper.pid) == [sleeper.pid]
    assert group_members(sleeper.pid, uid=os.getuid() + 1) == []


def test_purge_removes_the_job_and_refuses_while_the_runner_lives(address, me, job_dir, sleeper):
    os.makedirs(os.path.join(job_dir, "work", "ro"))
    os.chmod(os.path.join(job_dir, "work", "ro"), 0o555)
    record(job_dir, sleeper.pid, sleeper.pid, start_time(sleeper.pid))
    with pytest.raises(Refused, match="still running") as caught:
        control.purge(address, me)
    assert caught.value.code == 3
    sleeper.kill()
    sleeper.wait()

    assert control.purge(address, me) == 0
    assert not os.path.exists(job_dir)
    assert control.purge(address, me) == 0


def test_purge_of_a_job_under_a_missing_owner_dir_is_done(address, me):
    assert control.purge(address, me) == 0


def test_a_runner_from_before_the_upgrade_is_cancelled_through_its_runner_pid(
        address, me, job_dir, tmp_path):
    old = tmp_path / "run_job.sh"
    old.write_text("#!/bin/bash\ntrap 'echo INT; exit 130' INT\necho ready\n"
                   "while :; do sleep 0.05; done\n")
    old.chmod(0o755)
    # bash cannot trap a signal ignored when it started, as SIGINT is under a shell's
    # background job (the real runner sets its own handlers): this stand-in starts with it on.
    process = subprocess.Popen([str(old), "4", "https://x/y.git"], stdout=subprocess.PIPE,
                               text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert process.stdout.readline() == "ready\n"
        with open(os.path.join(job_dir, control.LEGACY_RUNNER_PID), "w") as f:
            f.write(f"{process.pid} {process.pid}\n")
        with pytest.raises(Refused, match="still running"):
            control.purge(address, me)

        assert control.cancel(address, me) == 0

        assert process.stdout.readline() == "INT\n"
        assert process.wait(timeout=10) == 130
    finally:
        process.kill()
        process.wait()
    assert control.cancel(address, me) == 0  # nothing alive: only the note is left
    assert control.purge(address, me) == 0
