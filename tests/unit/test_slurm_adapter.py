"""SlurmBuildRunner's view of a build, with a fake run_job.sh: what Slurm says, with what the
build left (status.json, the batch output), becomes Waiting, Running, Ended or Lost."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autobuild.adapters.slurm_runner import SlurmBuildRunner, parse_jobs
from autobuild.runner.slurm import batch_script
from autobuild.domain.jobs import Job, JobStatus
from autobuild.domain.layout import slurm_output_name
from autobuild.domain.orders import BuildOrder, BuildSettings, ClusterRequest
from autobuild.domain.ports import Ended, Lost, Running, RunnerError, Waiting

ME = pwd.getpwuid(os.getuid()).pw_name


class FakeShim:
    """run_job.sh as the fake cluster answers it: ``jobs`` is what slurm-jobs lists."""

    def __init__(self) -> None:
        self.jobs: list[dict] = []
        self.calls: list[tuple[str, list[str], str]] = []
        self.fail: str | None = None
        self.submit_answer = subprocess.CompletedProcess([], 0, "4242\n", "")
        self.cancel_code = 0

    def __call__(self, owner, args, stdin, timeout):
        self.calls.append((owner, args, stdin))
        mode = args[0]
        if mode == "slurm-jobs":
            if self.fail:
                return subprocess.CompletedProcess([], 1, "", self.fail)
            return subprocess.CompletedProcess([], 0, json.dumps({"jobs": self.jobs}), "")
        if mode == "submit":
            return self.submit_answer
        if mode == "slurm-cancel":
            return subprocess.CompletedProcess([], self.cancel_code, "", "scancel said no")
        return subprocess.CompletedProcess([], 0, "", "")

    def slurm(self, sid: int, job_id: int, state: str, reason: str = "None", node: str = "") -> None:
        self.jobs = [j for j in self.jobs if j["slurm_job"] != sid]
        self.jobs.append({"slurm_job": sid, "job_id": job_id, "state": state,
                          "reason": reason, "node": node})

    def count(self, mode: str) -> int:
        return sum(1 for _, args, _ in self.calls if args[0] == mode)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path):
    shim, clock = FakeShim(), Clock()
    root = tmp_path / "jobs"
    (root / ME).mkdir(parents=True, mode=0o750)
    runner = SlurmBuildRunner(Path("/opt/autobuild/runner/run_job.sh"), root, tmp_path / "launch",
                              use_sudo=True, cluster=ClusterRequest(cpus=4, time_limit_minutes=30),
                              poll_seconds=2.0, call=shim, status_grace=0, monotonic=clock)
    return shim, clock, runner, root


def job(job_id: int = 7, ref: str | None = "slurm:4242", cancel: str | None = None) -> Job:
    return Job(id=job_id, owner=ME, repo_url="https://gitlab.example.com/a/poky.git",
               ref="main", machine="qemux86-64", target="core-image-minimal",
               created_at=datetime(2026, 1, 1, tzinfo=UTC), runner_ref=ref,
               cancel_requested_by=cancel)


def build_dir(root: Path, job_id: int = 7, status: dict | None = None) -> Path:
    path = root / ME / str(job_id)
    path.mkdir(mode=0o750, exist_ok=True)
    if status is not None:
        (path / "status.json").write_text(json.dumps(status))
        (path / "status.json").chmod(0o640)
    return path


def test_launch_submits_the_order_with_the_cluster_and_keeps_the_slurm_job(world):
    shim, _, runner, root = world
    assert runner.queues is True
    assert runner.launch(job(ref=None)) == "slurm:4242"
    owner, args, stdin = shim.calls[-1]
    assert (owner, args) == (ME, ["submit", "7"])
    order = BuildOrder.from_json(stdin)
    assert order.cluster == ClusterRequest(cpus=4, time_limit_minutes=30)
    assert order.address.jobs_root == str(root)
    assert "submit as" in (root.parent / "launch" / "7.log").read_text()


def test_the_configured_cancel_grace_goes_to_the_node_in_the_order(world):
    shim, _, runner, _ = world
    runner.launch(replace(job(ref=None), settings=BuildSettings(cancel_grace=45)))
    submitted = BuildOrder.from_json(shim.calls[-1][2])
    on_the_node = BuildOrder.from_json(batch_script("/opt/r/run_job.sh", submitted).splitlines()[2])
    assert submitted.settings.cancel_grace == on_the_node.settings.cancel_grace == 45


def test_launch_refused_by_slurm_says_what_sbatch_said(world):
    shim, _, runner, root = world
    shim.submit_answer = subprocess.CompletedProcess(
        [], 1, "", "run_job.sh: sbatch failed (exit 1): sbatch: error: invalid partition\x07\n")
    with pytest.raises(RunnerError, match="invalid partition") as caught:
        runner.launch(job(ref=None))
    assert "\x07" not in str(caught.value)
    assert "invalid partition" in (root.parent / "launch" / "7.log").read_text()
    shim.submit_answer = subprocess.CompletedProcess([], 0, "Submitted batch job 5\n", "")
    with pytest.raises(RunnerError):
        runner.launch(job(ref=None))


def test_launch_finds_a_submission_it_did_not_record(world):
    shim, _, runner, _ = world
    shim.slurm(99, 7, "PENDING", "Priority")
    assert runner.launch(job(ref=None)) == "slurm:99"
    assert shim.count("submit") == 0


def test_pending_running_ended(world):
    shim, clock, runner, root = world
    shim.slurm(4242, 7, "PENDING", "None")
    assert runner.state(job()) == Waiting("waiting for the scheduler", "slurm:4242")
    clock.now += 2
    shim.slurm(4242, 7, "PENDING", "Resources")
    assert runner.state(job()) == Waiting("Resources", "slurm:4242")
    clock.now += 2
    shim.slurm(4242, 7, "RUNNING", "None", "node01")
    assert runner.state(job()) == Running("slurm:4242", "node01")
    build_dir(root, status={"status": "SUCCESS", "exit_code": 0})
    assert runner.state(job()) == Ended(JobStatus.SUCCESS, 0)  # status.json decides at once
    clock.now += 2
    shim.slurm(4242, 7, "COMPLETED", "None", "node01")
    assert runner.state(job()) == Ended(JobStatus.SUCCESS, 0)


def test_one_slurm_jobs_per_owner_per_poll(world):
    shim, clock, runner, _ = world
    shim.slurm(4242, 7, "RUNNING", node="n1")
    shim.slurm(4243, 8, "PENDING", "Priority")
    for _ in range(5):
        runner.state(job())
        runner.state(job(8, "slurm:4243"))
    assert shim.count("slurm-jobs") == 1
    clock.now += 2.5
    runner.state(job())
    assert shim.count("slurm-jobs") == 2


def test_a_submission_is_seen_at_once(world):
    shim, _, runner, _ = world
    runner.state(job(8, "slurm:1"))  # the owner's jobs are cached now, without job 7
    shim.slurm(4242, 7, "PENDING", "Priority")
    ref = runner.launch(job(ref=None))
    assert runner.state(job(ref=ref)) == Waiting("Priority", "slurm:4242")


def test_found_by_name_without_a_ref(world):
    shim, _, runner, _ = world
    shim.slurm(31, 7, "RUNNING", node="n2")
    shim.slurm(30, 7, "CANCELLED")
    assert runner.state(job(ref=None)) == Running("slurm:31", "n2")


def test_a_slurm_job_of_another_build_under_the_same_id_is_not_ours(world):
    shim, _, runner, _ = world
    shim.slurm(4242, 9, "RUNNING", node="n1")  # the controller started again from 1
    assert isinstance(runner.state(job()), Lost)


@pytest.mark.parametrize("state,status,reason", [
    ("TIMEOUT", {"status": "CANCELLED", "exit_code": 143},
     "it reached its time limit of 30 min (Slurm TIMEOUT)"),
    ("NODE_FAIL", None, "the node node01 stopped answering (Slurm NODE_FAIL)"),
    ("OUT_OF_MEMORY", None, "OUT_OF_MEMORY"),
    ("BOOT_FAIL", None, "BOOT_FAIL"),
    ("DEADLINE", None, "DEADLINE"),
    ("PREEMPTED", None, "PREEMPTED"),
])
def test_slurm_ends_that_are_losses(world, state, status, reason):
    shim, _, runner, root = world
    build_dir(root, status=status)
    shim.slurm(4242, 7, state, "x", "node01")
    got = runner.state(job())
    assert isinstance(got, Lost) and got.started and reason in got.reason


def test_cancelled_in_slurm(world):
    shim, clock, runner, root = world
    shim.slurm(4242, 7, "CANCELLED")
    assert runner.state(job(cancel="alice")) == Ended(JobStatus.CANCELLED, 130)
    assert runner.state(job()) == Lost("Slurm cancelled it (scancel outside Autobuild?)", False)
    build_dir(root)
    clock.now += 2
    assert runner.state(job()) == Lost("Slurm cancelled it (scancel outside Autobuild?)", True)
    build_dir(root, status={"status": "CANCELLED", "exit_code": 130})
    assert runner.state(job(cancel="alice")) == Ended(JobStatus.CANCELLED, 130)
    # Stopped by Slurm, not by anyone through the service: FAILED with Slurm's reason.
    assert runner.state(job()) == Lost("Slurm cancelled it (scancel outside Autobuild?)", True)


def test_a_runner_stopped_by_slurms_time_limit_waits_for_slurms_word(world):
    """At its time limit Slurm sends SIGTERM: the runner records CANCELLED and exits, often
    before the poll that shows TIMEOUT. That CANCELLED nobody asked for is not the end yet."""
    shim, clock, runner, root = world
    shim.slurm(4242, 7, "RUNNING", "None", "node01")
    build_dir(root, status={"status": "CANCELLED", "exit_code": 143})
    assert runner.state(job()) == Running("slurm:4242", "node01")
    clock.now += 2
    shim.slurm(4242, 7, "TIMEOUT", "TimeLimit", "node01")
    assert runner.state(job()) == Lost("it reached its time limit of 30 min (Slurm TIMEOUT)", True)
    clock.now += 2
    shim.slurm(4242, 7, "FAILED", "NonZeroExitCode", "node01")  # a signal of the engineer's own
    assert runner.state(job()) == Ended(JobStatus.CANCELLED, 143)


def test_failed_without_a_status_says_what_the_batch_job_printed(world):
    shim, _, runner, root = world
    shim.slurm(4242, 7, "FAILED", node="n1")
    build_dir(root)
    out = root / ME / slurm_output_name(7)
    out.write_text("line one\nrun_job.sh: cannot open the jobs root /srv/x: No such file\n")
    out.chmod(0o640)
    got = runner.state(job())
    assert isinstance(got, Lost) and got.started
    assert "FAILED" in got.reason and "cannot open the jobs root" in got.reason
    out.chmod(0o666)  # writable by others: not trusted, not read
    got = runner.state(job())
    assert "cannot open" not in got.reason


def test_an_end_without_status_waits_for_shared_storage(world):
    shim, clock, runner, root = world
    runner._grace = 30
    shim.slurm(4242, 7, "COMPLETED", node="n1")
    assert runner.state(job()) == Running("slurm:4242", "n1")
    clock.now += 10
    assert runner.state(job()) == Running("slurm:4242", "n1")
    clock.now += 25
    assert isinstance(runner.state(job()), Lost)


def test_unknown_to_slurm(world):
    shim, _, runner, root = world
    assert runner.state(job(ref=None)) == Lost("the build was never handed to Slurm", False)
    got = runner.state(job())
    assert got == Lost("Slurm no longer knows job 4242 and the build left no status", False)
    assert runner.state(job(cancel="bob")) == Ended(JobStatus.CANCELLED, 130)
    build_dir(root, status={"status": "FAILED", "exit_code": 1})
    assert runner.state(job()) == Ended(JobStatus.FAILED, 1)


def test_a_silent_controller_keeps_the_last_state(world, caplog):
    shim, clock, runner, root = world
    shim.slurm(4242, 7, "RUNNING", node="n1")
    assert runner.state(job()) == Running("slurm:4242", "n1")
    shim.fail = "squeue: error: Unable to contact slurm controller (connect failure)"
    clock.now += 3
    for _ in range(3):
        assert runner.state(job()) == Running("slurm:4242", "n1")
        clock.now += 3
    assert sum("Unable to contact" in r.message for r in caplog.records) == 1
    # A build it never saw: waiting, or running once its directory exists; never lost.
    assert isinstance(runner.state(job(8, "slurm:5")), Waiting)
    build_dir(root, 8)
    assert runner.state(job(8, "slurm:5")) == Running("slurm:5")
    build_dir(root, 9, status={"status": "SUCCESS", "exit_code": 0})
    assert runner.state(job(9, "slurm:6")) == Ended(JobStatus.SUCCESS, 0)


def test_cancel_goes_to_slurm_cancel_with_the_slurm_job(world):
    shim, _, runner, root = world
    runner.cancel(job())
    owner, args, stdin = shim.calls[-1]
    assert args == ["slurm-cancel", "7"]
    assert json.loads(stdin) == {"job_id": 7, "owner": ME, "jobs_root": str(root),
                                 "slurm_job": 4242}
    shim.cancel_code = 3
    runner.cancel(job())  # it had ended: fine
    shim.cancel_code = 1
    with pytest.raises(RunnerError, match="scancel said no"):
        runner.cancel(job())


def test_cancel_without_a_ref_finds_the_job_by_name_or_does_nothing(world):
    shim, _, runner, _ = world
    runner.cancel(job(ref=None))
    assert shim.count("slurm-cancel") == 0
    shim.slurm(55, 7, "PENDING")
    runner.cancel(job(ref=None))
    assert json.loads(shim.calls[-1][2])["slurm_job"] == 55


def test_purge_always_runs_as_the_owner(world):
    shim, _, runner, root = world
    launch = root.parent / "launch"
    launch.mkdir()
    (launch / "7.log").write_text("x")
    runner.purge(job())
    assert shim.calls[-1][1] == ["purge", "7"]
    assert not (launch / "7.log").exists()


@pytest.mark.parametrize("text", [
    "", "[]", '{"jobs": {}}', '{"jobs": [{"slurm_job": 1}]}',
    '{"jobs": [{"slurm_job": 1, "job_id": 1, "state": "running", "reason": "", "node": ""}]}',
    '{"jobs": [{"slurm_job": true, "job_id": 1, "state": "RUNNING", "reason": "", "node": ""}]}',
])
def test_slurm_jobs_output_is_checked(text):
    with pytest.raises((ValueError, TypeError)):
        parse_jobs(text)
