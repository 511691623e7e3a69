"""Builds on the real single-node cluster through SlurmBuildRunner and the real run_job.sh.

The adapter runs the runner as an engineer (``abtest-slurm-a``) through ``sudo -n -u``, as the
service does: ``submit`` sbatches the build as that user, Slurm runs ``run_job.sh build`` on
the node as that user, and the stand-in poky (served over HTTPS with a token) is built into a
jobs root both the user and the "service" (these tests, as root) reach. The durations measured
are printed (-s) and listed at the end of the run.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autobuild.adapters.slurm_runner import SlurmBuildRunner
from autobuild.domain.jobs import Job, JobStatus
from autobuild.domain.layout import (
    JOBS_ROOT_MODE_NO_ACL, STEP_CANCELLING, slurm_output_name, step_line,
)
from autobuild.domain.orders import DEFAULT_CANCEL_GRACE, BuildSettings, ClusterRequest
from autobuild.domain.ports import Ended, Running, RunnerState, Waiting

from tests.slurm.conftest import SlurmUser
from tests.support.git_https_server import GitHttpsServer
from tests.support.slurm_cluster import BASE, SlurmCluster
from tests.support.standin import create_standin_repo

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNNER = REPO_ROOT / "runner" / "run_job.sh"
JOBS_ROOT = BASE / "jobs"  # reachable by the test users: root-owned, sticky, others -wx
TOKEN = "glpat-" + secrets.token_urlsafe(18)
MACHINE = "qemux86-64"
GRACE = 3  # the service's AUTO_BUILD_CANCEL_GRACE, for the cancelled build
Timing = Callable[[str, float], None]


def sudo_runner(user: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sudo", "-n", "-u", user, "--", str(RUNNER), *args], input=stdin,
                          capture_output=True, text=True, timeout=90,
                          env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"})


@dataclass(frozen=True)
class Engineer:
    name: str
    uid: int
    home: Path


@dataclass(frozen=True)
class World:
    cluster: SlurmCluster
    engineer: Engineer
    other: SlurmUser
    url: str
    runner: SlurmBuildRunner
    next_id: list[int]

    def job(self, target: str = "core-image-minimal", **changes: object) -> Job:
        self.next_id[0] += 1
        job = Job(id=self.next_id[0], owner=self.engineer.name, repo_url=self.url, ref="main",
                  machine=MACHINE, target=target, created_at=datetime.now(UTC),
                  artifact_patterns=("*.bin",),
                  settings=BuildSettings(cache_dir=str(BASE / "no-cache")))
        return replace(job, **changes)

    def job_dir(self, job: Job) -> Path:
        return JOBS_ROOT / job.owner / str(job.id)


@pytest.fixture(scope="module")
def world(slurm_cluster: SlurmCluster, slurm_users, tmp_path_factory) -> Iterator[World]:
    a, b = slurm_users
    account = pwd.getpwnam(a.name)
    engineer = Engineer(a.name, account.pw_uid, Path(account.pw_dir))
    shutil.rmtree(JOBS_ROOT, ignore_errors=True)
    JOBS_ROOT.mkdir(parents=True)
    JOBS_ROOT.chmod(JOBS_ROOT_MODE_NO_ACL)
    repos = tmp_path_factory.mktemp("slurm-repos")
    create_standin_repo(repos / "poky.git")
    with GitHttpsServer(repos, token=TOKEN) as server:
        # The engineer trusts the test CA through their own git settings (the batch job
        # starts with a clean environment: no GIT_SSL_CAINFO reaches it).
        ca = a.work / "git-ca.pem"
        shutil.copyfile(server.ca_file, ca)
        ca.chmod(0o644)
        gitconfig = engineer.home / ".gitconfig"
        gitconfig.write_text(f"[http \"https://127.0.0.1:{server.port}/\"]\n\tsslCAInfo = {ca}\n")
        os.chown(gitconfig, engineer.uid, -1)
        stored = sudo_runner(engineer.name, "store-token", stdin=TOKEN)
        assert stored.returncode == 0, stored.stderr
        runner = SlurmBuildRunner(RUNNER, JOBS_ROOT, BASE / "launch", use_sudo=True,
                                  cluster=ClusterRequest(cpus=1, time_limit_minutes=10),
                                  poll_seconds=0.5, status_grace=5)
        try:
            yield World(slurm_cluster, engineer, b, server.url("poky.git"), runner, [0])
        finally:
            for user in (a, b):
                slurm_cluster.command("scancel", "--user", user.name, check=False)
            gitconfig.unlink(missing_ok=True)
            shutil.rmtree(engineer.home / ".autobuild", ignore_errors=True)


def follow(world: World, job: Job, until: type, timeout: float = 90,
           interval: float = 0.1) -> tuple[RunnerState, list[tuple[float, RunnerState]]]:
    """Poll state() as the scheduler does until it is an ``until``; (that state, the changes
    seen with their monotonic times)."""
    seen: list[tuple[float, RunnerState]] = []
    deadline = time.monotonic() + timeout
    while True:
        state = world.runner.state(job)
        if not seen or seen[-1][1] != state:
            seen.append((time.monotonic(), state))
        if isinstance(state, until):
            return state, seen
        assert time.monotonic() < deadline, f"not {until.__name__} after {timeout} s: {seen}"
        time.sleep(interval)


def user_processes(uid: int) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
        except OSError:
            continue
    return [line for line in found if line]


def slurm_jobs(world: World) -> list[dict]:
    listed = sudo_runner(world.engineer.name, "slurm-jobs")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)["jobs"]


# --- tests ------------------------------------------------------------------------------------

def test_a_build_runs_on_the_cluster_as_the_engineer(world: World, timing: Timing) -> None:
    job = world.job()
    submitted = time.monotonic()
    ref = world.runner.launch(job)
    timing("adapter launch (submit: sudo + sbatch as the engineer)", time.monotonic() - submitted)
    assert ref.startswith("slurm:") and ref[6:].isdigit()
    job = replace(job, runner_ref=ref)

    running, seen = follow(world, job, Running)
    timing("launch -> Running(node) through the adapter (poll 0.5 s)", seen[-1][0] - submitted)
    assert running == Running(ref, world.cluster.hostname)
    listed = [j for j in slurm_jobs(world) if f"slurm:{j['slurm_job']}" == ref]
    assert listed and listed[0]["job_id"] == job.id and listed[0]["state"] in ("RUNNING", "COMPLETED")

    ended, seen_end = follow(world, job, Ended)
    timing("launch -> Ended SUCCESS (stand-in build)", seen_end[-1][0] - submitted)
    assert ended == Ended(JobStatus.SUCCESS, 0), (world.job_dir(job) / "logs" / "build.log").read_text()
    print(f"[slurm] states seen: {[s for _, s in seen + seen_end]}")

    directory = world.job_dir(job)
    assert directory.stat().st_uid == world.engineer.uid
    status = json.loads((directory / "status.json").read_text())
    assert status["status"] == "SUCCESS"
    assert (directory / "status.json").stat().st_uid == world.engineer.uid
    artifacts = sorted(p.name for p in (directory / "artifacts").iterdir())
    assert artifacts and all(name.endswith(".bin") for name in artifacts)
    assert (directory / "artifacts.sha256").read_text().count("\n") == len(artifacts)
    digest = json.loads((directory / "logs" / "digest.json").read_text())
    assert digest
    log = (directory / "logs" / "build.log").read_text()
    assert f"for {world.engineer.name} on " in log
    output = JOBS_ROOT / world.engineer.name / slurm_output_name(job.id)
    assert output.stat().st_uid == world.engineer.uid
    assert stat.S_IMODE(output.stat().st_mode) == 0o640
    assert output.stat().st_gid == JOBS_ROOT.stat().st_gid  # the setgid root's: the service reads it

    # The same id again is refused by the runner; purge removes the job and the batch output.
    again = sudo_runner(world.engineer.name, "submit", str(job.id),
                        stdin=json.dumps({"job_id": job.id, "owner": job.owner,
                                          "jobs_root": str(JOBS_ROOT),
                                          "repo_url": world.url, "ref": "main",
                                          "machine": MACHINE, "target": "core-image-minimal",
                                          "cluster": {"cpus": 1}}))
    assert again.returncode == 2 and "has already run" in again.stderr
    world.runner.purge(job)
    assert not directory.exists() and not output.exists()


def test_a_pending_build_shows_slurms_reason_and_cancels_before_it_runs(world: World, timing: Timing) -> None:
    cpus = int(world.cluster.node()["CPUTot"])
    blocker = world.cluster.sbatch("#!/bin/sh\nexec sleep 120\n", f"--chdir={world.other.work}",
                                   f"--output={world.other.work}/blocker.out", "--cpus-per-task=1",
                                   user=world.other.name)
    world.cluster.wait_for_job(blocker, "RUNNING", timeout=30)
    try:
        big = SlurmBuildRunner(RUNNER, JOBS_ROOT, BASE / "launch", use_sudo=True,
                               cluster=ClusterRequest(cpus=cpus, time_limit_minutes=10),
                               poll_seconds=0.5)
        job = world.job()
        job = replace(job, runner_ref=big.launch(job))
        deadline = time.monotonic() + 30
        while (state := big.state(job)) != Waiting("Resources", job.runner_ref):
            assert isinstance(state, Waiting), state
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        print(f"[slurm] a pending build: {state}")

        job = replace(job, cancel_requested_by=world.engineer.name)
        asked = time.monotonic()
        big.cancel(job)
        ended, _ = follow(world, job, Ended, timeout=30)
        timing("cancel of a pending build -> Ended CANCELLED", time.monotonic() - asked)
        assert ended == Ended(JobStatus.CANCELLED, 130)
        sid = int(job.runner_ref.split(":")[1])
        assert world.cluster.job(sid)["JobState"] == "CANCELLED"
        assert not world.job_dir(job).exists()  # it never ran
    finally:
        world.cluster.scancel(str(blocker))


def test_cancel_of_a_running_build_stops_it_through_its_runner(world: World, timing: Timing) -> None:
    # The grace comes from the service's settings, in the order: nothing else reaches the node.
    job = world.job("slow-image", settings=BuildSettings(cache_dir=str(BASE / "no-cache"),
                                                         cancel_grace=GRACE))
    job = replace(job, runner_ref=world.runner.launch(job))
    follow(world, job, Running)
    log = world.job_dir(job) / "logs" / "build.log"
    deadline = time.monotonic() + 60
    while not (log.exists() and "Running task 2 of" in log.read_text(errors="replace")):
        assert time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
        time.sleep(0.1)

    # Another build's Slurm job is refused: slurm-cancel checks the name.
    wrong = sudo_runner(world.engineer.name, "slurm-cancel", str(job.id + 1000),
                        stdin=json.dumps({"job_id": job.id + 1000, "owner": job.owner,
                                          "jobs_root": str(JOBS_ROOT),
                                          "slurm_job": int(job.runner_ref.split(":")[1])}))
    assert wrong.returncode == 2 and "not job" in wrong.stderr, wrong

    job = replace(job, cancel_requested_by=world.engineer.name)
    asked = time.monotonic()
    world.runner.cancel(job)
    timing("adapter cancel (slurm-cancel: squeue + scancel --signal=INT --batch)",
           time.monotonic() - asked)
    ended, seen = follow(world, job, Ended, timeout=90)
    took = time.monotonic() - asked
    timing(f"cancel of a running build -> Ended CANCELLED (the configured grace for the "
           f"SIGINT-deaf task, {GRACE} s)", took)
    assert ended == Ended(JobStatus.CANCELLED, 130), seen
    assert json.loads((world.job_dir(job) / "status.json").read_text())["status"] == "CANCELLED"
    # On the node: SIGINT to bitbake, the configured grace (not the runner's default), SIGTERM.
    said = log.read_text()
    assert step_line(f"{STEP_CANCELLING}: SIGINT received, stopping the build") in said
    assert "Keyboard Interrupt, closing down..." in said  # bitbake had the SIGINT first
    assert step_line(f"{STEP_CANCELLING}: still running after {GRACE}s, sending SIGTERM") in said
    assert GRACE <= took < DEFAULT_CANCEL_GRACE, took
    sid = int(job.runner_ref.split(":")[1])
    record = world.cluster.wait_for_job(sid, "FAILED", "CANCELLED", "COMPLETED", timeout=30)
    print(f"[slurm] after the cancel: JobState={record['JobState']} ExitCode={record['ExitCode']}")
    deadline = time.monotonic() + 30
    while user_processes(world.engineer.uid):
        assert time.monotonic() < deadline, user_processes(world.engineer.uid)
        time.sleep(0.1)
    timing("cancel -> nothing of the engineer left running", time.monotonic() - asked)
