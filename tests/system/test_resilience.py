"""Cancel and crash safety on the real install: a cancelled build leaves no process of the
engineer's behind; SIGKILL of the service mid-build, five times, loses no build and no log
line; a runner killed while the service is down is reported FAILED with the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.system.helpers import (
    CTL,
    alive,
    build_log,
    cmdline,
    job,
    job_dir,
    runner_record,
    service_pid,
    submit,
    wait_for_end,
    wait_for_log,
    wait_for_service,
)
from tests.web.helpers import csrf_from

ALICE = "abtest-alice"
TASKS = 12  # the stand-in's task count
KILLS = 5
FIRST_TASK = f"NOTE: Running task 1 of {TASKS}"


@dataclass(frozen=True)
class Proc:
    pid: int
    state: str
    pgid: int
    sid: int
    uid: int
    command: str


def _procs() -> list[Proc]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            uid = entry.stat().st_uid
        except (OSError, IndexError):
            continue
        pid = int(entry.name)
        found.append(Proc(pid, fields[0], int(fields[2]), int(fields[3]), uid,
                          " ".join(cmdline(pid))))
    return found


def _build_processes(uid: int, pgid: int, sid: int, job_id: int) -> list[Proc]:
    """Processes of ``uid`` that belong to the build: its process group or session, or a
    command line naming its job directory, bitbake or the runner."""
    marks = (str(job_dir(job_id, ALICE)), "bitbake", "run_job.sh", "autobuild.runner")
    return [p for p in _procs() if p.uid == uid and (
        p.pgid == pgid or p.sid == sid or any(mark in p.command for mark in marks))]


def _runner_ids(job_id: int) -> tuple[int, int, int]:
    """(runner pid, build process group, session) of a running build."""
    record = runner_record(job_id, ALICE)
    runner_pid, pgid = record["pid"], record["pgid"]
    stat = Path(f"/proc/{runner_pid}/stat").read_text().rsplit(")", 1)[1].split()
    return runner_pid, pgid, int(stat[3])


def _api_post(web, path: str):
    token = csrf_from(web.get("/").text)
    return web.post(path, headers={"X-CSRF-Token": token})


def _kill_service() -> int:
    pid = service_pid()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < deadline, f"the service (pid {pid}) survived SIGKILL"
        time.sleep(0.05)
    return pid


def _start_service() -> None:
    started = subprocess.run([str(CTL), "start"], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    wait_for_service()


def _assert_complete_success(web, job_id: int) -> None:
    ended = wait_for_end(web, job_id, timeout=180)
    assert (ended["status"], ended["exit_code"], ended["reason"]) == ("SUCCESS", 0, None), ended
    log = build_log(job_id, ALICE)
    missing = [n for n in range(1, TASKS + 1) if f"NOTE: Running task {n} of {TASKS} " not in log]
    assert missing == [], f"build #{job_id}: tasks {missing} are missing from the log"
    assert log.rstrip("\n").endswith("==> Build finished: SUCCESS (exit 0)")
    assert web.get(f"/api/jobs/{job_id}/artifacts").json() != []


def _cancel_and_measure(web, job_id: int) -> tuple[dict, float]:
    started = time.monotonic()
    response = _api_post(web, f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["cancel_requested_by"] is not None
    ended = wait_for_end(web, job_id, timeout=120)
    return ended, time.monotonic() - started


def _assert_nothing_left(uid: int, pgid: int, sid: int, job_id: int) -> None:
    # The `run_job.sh cancel` helper polls every 0.2 s: give it a moment to notice the end.
    deadline = time.monotonic() + 10
    while True:
        left = [p for p in _build_processes(uid, pgid, sid, job_id) if p.state != "Z"]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert left == [], f"processes of the cancelled build are still running: {left}"


def test_cancel_of_a_running_build_ends_cancelled_and_leaves_no_process(alice, accounts, git):
    job_id = submit(alice, git.url, "slow-image")
    wait_for_log(job_id, ALICE, FIRST_TASK)
    _, pgid, sid = _runner_ids(job_id)
    uid = accounts.alice.uid
    assert _build_processes(uid, pgid, sid, job_id), "the scan does not see the running build"
    assert 'action="/jobs/%d/cancel"' % job_id in alice.get("/").text  # the list offers it too

    ended, secs = _cancel_and_measure(alice, job_id)
    print(f"cancel->CANCELLED: {secs:.1f}s")

    assert ended["status"] == "CANCELLED", ended
    assert ended["reason"] == f"cancelled by {accounts.alice.name}"
    log = build_log(job_id, ALICE)
    assert "Keyboard Interrupt, closing down..." in log  # bitbake got SIGINT first
    assert log.rstrip("\n").splitlines()[-1].startswith("==> Build finished: CANCELLED")
    _assert_nothing_left(uid, pgid, sid, job_id)
    assert "cancelled by" in alice.get(f"/jobs/{job_id}").text


def test_cancel_works_for_a_build_started_before_the_service_was_killed(alice, accounts, git):
    job_id = submit(alice, git.url, "slow-image")
    wait_for_log(job_id, ALICE, FIRST_TASK)
    _, pgid, sid = _runner_ids(job_id)
    _kill_service()
    _start_service()
    assert job(alice, job_id)["status"] == "RUNNING"

    ended, secs = _cancel_and_measure(alice, job_id)
    print(f"cancel->CANCELLED after a service restart: {secs:.1f}s")

    assert ended["status"] == "CANCELLED", ended
    _assert_nothing_left(accounts.alice.uid, pgid, sid, job_id)


def test_sigkill_of_the_service_mid_build_five_times_loses_nothing(alice, git):
    builds = [submit(alice, git.url, "slow-image")]
    wait_for_log(builds[-1], ALICE, FIRST_TASK)
    kills = []
    while len(kills) < KILLS:
        if (job_dir(builds[-1], ALICE) / "status.json").exists():
            # The build was quicker than the kills: the rest hit the next one.
            builds.append(submit(alice, git.url, "slow-image"))
            wait_for_log(builds[-1], ALICE, FIRST_TASK)
        before = len(build_log(builds[-1], ALICE))
        kills.append((builds[-1], _kill_service()))
        time.sleep(0.5)  # the build goes on alone meanwhile
        _start_service()
        current = job(alice, builds[-1])
        assert current["status"] in ("RUNNING", "SUCCESS"), current
        time.sleep(1.5)
        assert len(build_log(builds[-1], ALICE)) > before or current["status"] == "SUCCESS"
    print(f"SIGKILL x{KILLS}: builds {builds}, kills per build "
          f"{[sum(1 for b, _ in kills if b == build) for build in builds]}")

    for build in builds:
        _assert_complete_success(alice, build)


def test_a_runner_killed_while_the_service_is_down_is_failed_with_the_reason(alice, accounts, git):
    job_id = submit(alice, git.url, "slow-image")
    wait_for_log(job_id, ALICE, FIRST_TASK)
    runner_pid, pgid, _ = _runner_ids(job_id)
    _kill_service()
    os.kill(runner_pid, signal.SIGKILL)  # no trap runs: no status.json
    os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(runner_pid) or any(p.pgid == pgid and p.state != "Z" for p in _procs()):
        assert time.monotonic() < deadline, "the build survived SIGKILL"
        time.sleep(0.05)
    assert not (job_dir(job_id, ALICE) / "status.json").exists()

    _start_service()
    ended = wait_for_end(alice, job_id, timeout=30)

    assert ended["status"] == "FAILED", ended
    lost = "the runner stopped without saying how the build ended"
    assert ended["reason"].startswith(lost), ended
    page = alice.get(f"/jobs/{job_id}").text
    assert lost in page
