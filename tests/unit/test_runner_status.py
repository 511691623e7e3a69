"""The runner records how every build ended: status.json last, on every exit path."""

from __future__ import annotations

import json
import os
import pwd
import signal
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from autobuild.domain import layout
from autobuild.domain.orders import BuildOrder, BuildSettings, JobAddress
from autobuild.domain.requests import BuildRequest
from autobuild.runner import build
from autobuild.runner.build import Supervisor, status_of
from autobuild.runner.jobdir import Identity, create_job_dir, open_jobs_root, open_owner_dir


@pytest.fixture(autouse=True)
def _keep_signal_handlers():
    """The supervisor ignores INT/TERM/HUP while it records the end: not in pytest."""
    saved = {s: signal.getsignal(s) for s in build.FORWARDED}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("code,signum,expected", [
    (0, None, ("SUCCESS", 0)), (1, None, ("FAILED", 1)), (128, None, ("FAILED", 128)),
    (1, signal.SIGINT, ("CANCELLED", 130)), (137, signal.SIGTERM, ("CANCELLED", 143)),
    (1, signal.SIGHUP, ("CANCELLED", 129)), (0, signal.SIGINT, ("SUCCESS", 0)),
])
def test_status_of_an_exit(code, signum, expected):
    assert status_of(code, signum) == expected


@pytest.fixture
def supervisor(tmp_path):
    me = Identity(os.getuid(), pwd.getpwuid(os.getuid()).pw_name, str(tmp_path))
    root = tmp_path / "jobs"
    root.mkdir()
    root_fd = open_jobs_root(str(root))
    owner = open_owner_dir(root_fd, str(root), me, create=True)
    files = create_job_dir(owner, f"{root}/{me.name}", 3)
    os.close(owner)
    os.close(root_fd)
    order = BuildOrder(
        address=JobAddress(3, me.name, str(root)),
        request=BuildRequest.parse("https://git.example.com/poky.git", "main", "qemux86-64",
                                   "core-image-minimal"),
        settings=BuildSettings(cache_dir=str(tmp_path / "cache")))
    sup = Supervisor(order, files, me)
    sup.dir = Path(files.path)
    yield sup
    files.close()


def ended(sup) -> tuple[dict, list[str]]:
    status = json.loads((sup.dir / layout.STATUS).read_text())
    log = (sup.dir.joinpath(*layout.LOG_PATH)).read_text().splitlines()
    return status, log


def test_a_successful_run_writes_status_last_and_removes_the_workspace(supervisor, monkeypatch):
    monkeypatch.setattr(Supervisor, "start_and_wait", lambda self: 0)

    assert supervisor.run() == 0

    status, log = ended(supervisor)
    assert set(status) == {"status", "exit_code", "finished_at"}
    assert (status["status"], status["exit_code"]) == ("SUCCESS", 0)
    assert log[0].startswith(layout.step_line(f"{layout.STEP_JOB}3 for "))
    assert log[-1] == layout.step_line(f"{layout.STEP_FINISHED}SUCCESS (exit 0)")
    assert layout.step_line(layout.STEP_CLEANUP) in log
    assert not (supervisor.dir / layout.WORK_DIR).exists()
    assert not (supervisor.dir / layout.SPACE_RESERVE).exists()
    assert sorted(p.name for p in supervisor.dir.iterdir() if p.name.startswith(".")) == []


def test_a_python_error_in_the_runner_still_records_failed(supervisor, monkeypatch):
    def broken(self):
        raise RuntimeError("boom")
    monkeypatch.setattr(Supervisor, "start_and_wait", broken)

    assert supervisor.run() == 1

    status, log = ended(supervisor)
    assert status["status"] == "FAILED"
    assert "ERROR: the runner failed: RuntimeError: boom" in log


def test_a_signal_before_the_build_records_cancelled(supervisor, monkeypatch):
    monkeypatch.setattr(Supervisor, "start_and_wait", lambda self: 1)
    supervisor.on_signal(signal.SIGTERM)

    assert supervisor.run() == 143

    status, log = ended(supervisor)
    assert (status["status"], status["exit_code"]) == ("CANCELLED", 143)
    assert layout.step_line(f"{layout.STEP_CANCELLING}: SIGTERM received, stopping the build") in log


def test_a_cancel_escalates_after_the_grace_the_order_says(supervisor, monkeypatch):
    now, sent = [1000.0], []
    monkeypatch.setattr(build, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(build, "signal_group", lambda pgid, signum: sent.append((pgid, signum)))
    order = replace(supervisor.order, settings=replace(supervisor.order.settings, cancel_grace=7))
    sup = Supervisor(order, supervisor.files, supervisor.me)
    sup.child = 4321

    sup.on_signal(signal.SIGINT)
    now[0] += 6.9
    sup.escalate()
    assert sent == [(4321, signal.SIGINT)]  # bitbake stops its tasks in the grace
    now[0] += 0.1
    sup.escalate()
    assert sent[-1] == (4321, signal.SIGTERM)
    now[0] += build.KILL_AFTER_TERM
    sup.escalate()
    assert sent[-1] == (4321, signal.SIGKILL) and len(sent) == 3
    log = (supervisor.dir.joinpath(*layout.LOG_PATH)).read_text().splitlines()
    assert layout.step_line(f"{layout.STEP_CANCELLING}: still running after 7s, "
                            "sending SIGTERM") in log


def test_a_full_disk_removes_even_a_kept_workspace_and_says_so(supervisor, monkeypatch):
    monkeypatch.setattr(Supervisor, "start_and_wait", lambda self: 1)
    monkeypatch.setattr(Supervisor, "ran_out_of_space", lambda self: True)
    object.__setattr__(supervisor.order.settings, "keep_workspace", True)

    assert supervisor.run() == 1

    status, log = ended(supervisor)
    assert status["status"] == "FAILED"
    assert not (supervisor.dir / layout.WORK_DIR).exists()
    assert any(line.startswith("ERROR: No space left on device: the disk holding ")
               for line in log)


def test_a_kept_workspace_stays(supervisor, monkeypatch):
    monkeypatch.setattr(Supervisor, "start_and_wait", lambda self: 0)
    object.__setattr__(supervisor.order.settings, "keep_workspace", True)
    supervisor.run()
    assert (supervisor.dir / layout.WORK_DIR).is_dir()


def test_the_space_reserve_is_made_exclusively(supervisor, tmp_path, monkeypatch):
    victim = tmp_path / "notes.txt"
    victim.write_text("precious")
    (supervisor.dir / layout.SPACE_RESERVE).symlink_to(victim)
    monkeypatch.setattr(Supervisor, "start_and_wait", lambda self: 0)

    supervisor.run()

    assert victim.read_text() == "precious"
    assert any("WARNING: the disk holding" in line for line in ended(supervisor)[1])


def test_a_status_that_cannot_be_written_is_said_on_stderr(supervisor, monkeypatch, capsys):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Supervisor, "start_and_wait", lambda self: 0)
    monkeypatch.setattr(build, "write_atomically", no_space)

    assert supervisor.run() == 0
    assert "could not write status.json" in capsys.readouterr().err
