"""Builds on a real Slurm cluster through the installed service (issue 10).

A second instance of the installed service (/opt/autobuild, run as the service user, real PAM
and sudo) is started with AUTO_BUILD_EXECUTOR=slurm on port 8100, with its own database and
jobs root, against the single-node cluster of tests/slurm (slurmctld + slurmd on 127.0.0.1,
two CPUs: each build asks for one). The engineers sign in, save their token and build as in
local mode; Slurm runs each build as its engineer.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from autobuild.domain import layout
from tests.slurm.conftest import slurm_cluster, timing  # noqa: F401 -- the cluster, timings
from tests.support.slurm_cluster import SlurmCluster
from tests.system.helpers import (
    PREFIX,
    SERVICE_USER,
    USERS_GROUP,
    alive,
    csrf_from,
    job,
    listening_pids,
    login,
    save_token,
    submit,
    wait_for_end,
)

PORT = 8100
BASE = Path("/srv/autobuild-slurm-test")
JOBS = BASE / "jobs"
DATA = BASE / "data"
TIME_LIMIT_MINUTES = 1
pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not shutil.which("slurmctld"), reason="needs slurm-wlm (.ci/run installs it)"),
]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, check=True)


@dataclass
class SlurmService:
    """The installed service in Slurm mode, as a process of its own (to be killed)."""

    process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "AUTO_BUILD_EXECUTOR": "slurm", "AUTO_BUILD_PORT": str(PORT),
            "AUTO_BUILD_DB": str(DATA / "jobs.db"), "AUTO_BUILD_JOBS_ROOT": str(JOBS),
            "AUTO_BUILD_RUNNER": str(PREFIX / "runner" / "run_job.sh"),
            "AUTO_BUILD_SLURM_CPUS": "1", "AUTO_BUILD_SLURM_MEMORY": "256M",
            "AUTO_BUILD_SLURM_TIME_LIMIT": str(TIME_LIMIT_MINUTES),
            "AUTO_BUILD_MIN_FREE_GB": "0", "AUTO_BUILD_USERS_GROUP": USERS_GROUP,
        }

    def start(self) -> None:
        _stop_one_left_over()
        log = open(BASE / "service.log", "ab")  # noqa: SIM115 -- the child keeps it
        self.process = subprocess.Popen(
            ["runuser", "-u", SERVICE_USER, "--", "env", "-i",
             *(f"{k}={v}" for k, v in self.env().items()),
             str(PREFIX / "venv" / "bin" / "autobuild"), "serve"],
            stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{PORT}/login", timeout=2).status_code == 200:
                    # The answer came from this process (runuser's session), not another.
                    holders = listening_pids(PORT)
                    assert holders and all(_session(pid) == self.process.pid for pid in holders), \
                        f"port {PORT} is held by {holders}, not by the service just started"
                    return
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, (BASE / "service.log").read_text()[-3000:]
            time.sleep(0.2)
        raise AssertionError("the Slurm-mode service did not answer in 60 s")

    def kill(self) -> None:
        """As kill -9 does: the service, and the runuser in front of it."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def _session(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def _stop_one_left_over() -> None:
    """A run killed before its teardown leaves its Slurm-mode service running in a session of
    its own, on PORT: it would answer in place of the one started next (which cannot bind the
    port), with a database _layout() has deleted. Stop it: only a service of this module (its
    environment names this module's database), never anything else on the port."""
    ours = f"AUTO_BUILD_DB={DATA / 'jobs.db'}".encode()
    for pid in listening_pids(PORT):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        assert ours in environ, f"port {PORT} is held by pid {pid}, not a service of this module"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(pid):
            assert time.monotonic() < deadline, f"the left-over service (pid {pid}) survived SIGKILL"
            time.sleep(0.05)


def _layout() -> None:
    """A jobs root as install.sh makes one (3751 + the engineers' ACL), and a data dir."""
    shutil.rmtree(BASE, ignore_errors=True)
    BASE.mkdir(mode=0o755, parents=True)
    DATA.mkdir(mode=0o750)
    shutil.chown(DATA, SERVICE_USER, SERVICE_USER)
    JOBS.mkdir()
    shutil.chown(JOBS, SERVICE_USER, SERVICE_USER)
    JOBS.chmod(layout.JOBS_ROOT_MODE)
    _run("setfacl", "-m", f"g:{USERS_GROUP}:{layout.JOBS_ROOT_MEMBERS_ACL},m::rwx,o::--x",
         str(JOBS))


@pytest.fixture(scope="module")
def service(installs, slurm_cluster: SlurmCluster) -> Iterator[SlurmService]:  # noqa: F811
    _layout()
    running = SlurmService()
    running.start()
    try:
        yield running
    finally:
        running.stop()
        slurm_cluster.start_slurmd()  # whatever a test left stopped


def _web(account, git) -> httpx.Client:
    web = httpx.Client(base_url=f"http://127.0.0.1:{PORT}", follow_redirects=False, timeout=60)
    response = login(web, account.name, account.password)
    assert response.status_code == 303, response.text
    assert save_token(web, git.token).status_code == 303
    return web


@pytest.fixture(scope="module")
def engineers(service, accounts, git):
    alice, bob = _web(accounts.alice, git), _web(accounts.bob, git)
    yield alice, bob
    alice.close()
    bob.close()


def _wait_for(web: httpx.Client, job_id: int, status: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        current = job(web, job_id)
        if current["status"] == status:
            return current
        assert current["status"] not in ("SUCCESS", "FAILED", "CANCELLED") or status in (
            "SUCCESS", "FAILED", "CANCELLED"), current
        assert time.monotonic() < deadline, f"#{job_id} not {status} in {timeout} s: {current}"
        time.sleep(0.2)


def _cancel(web: httpx.Client, job_id: int) -> None:
    page = web.get(f"/jobs/{job_id}")
    response = web.post(f"/jobs/{job_id}/cancel", data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 303, response.text


def _owner_of_build(owner: str, job_id: int, timeout: float = 30) -> str:
    """Who owns the build's log. Slurm says RUNNING once the batch job starts on the node,
    a moment before the runner it execs has made the log: wait for it."""
    log = JOBS / owner / str(job_id) / "logs" / "build.log"
    deadline = time.monotonic() + timeout
    while not log.exists():
        assert time.monotonic() < deadline, f"#{job_id} has no log {timeout} s after RUNNING"
        time.sleep(0.2)
    return pwd.getpwuid(log.stat().st_uid).pw_name


def _processes_of(user: str) -> list[str]:
    uid = pwd.getpwnam(user).pw_uid
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return found


def test_two_engineers_build_at_the_same_time_each_as_themselves_and_a_cancel_goes_through_slurm(
        engineers, accounts, git, timing):
    alice, bob = engineers
    started = time.monotonic()
    mine = submit(alice, git.url, "slow-image")
    theirs = submit(bob, git.url, "slow-image")
    running = _wait_for(alice, mine, "RUNNING")
    timing("submit -> RUNNING through the service", time.monotonic() - started)
    other = _wait_for(bob, theirs, "RUNNING")
    assert running["node"] and other["node"]  # the page says where it runs
    assert _owner_of_build(accounts.alice.name, mine) == accounts.alice.name
    assert _owner_of_build(accounts.bob.name, theirs) == accounts.bob.name
    assert job(alice, mine)["status"] == job(bob, theirs)["status"] == "RUNNING"  # at once

    asked = time.monotonic()
    _cancel(alice, mine)
    cancelled = wait_for_end(alice, mine, timeout=60)
    timing("cancel -> CANCELLED through Slurm", time.monotonic() - asked)
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["reason"] == f"cancelled by {accounts.alice.name}"
    time.sleep(1)
    assert not [p for p in _processes_of(accounts.alice.name) if "bitbake" in p or "run_job" in p]

    done = wait_for_end(bob, theirs, timeout=90)
    assert done["status"] == "SUCCESS", done
    artifacts = bob.get(f"/api/jobs/{theirs}/artifacts").json()
    assert artifacts and all(a["sha256"] for a in artifacts)
    assert b"NOTE: Tasks Summary" in bob.get(f"/api/jobs/{theirs}/log/raw").content


def test_a_build_queued_in_slurm_says_why_and_a_kill_9_of_the_service_loses_nothing(
        service, engineers, git, timing):
    alice, bob = engineers
    first = submit(alice, git.url, "slow-image")
    second = submit(bob, git.url, "slow-image")
    _wait_for(alice, first, "RUNNING")
    _wait_for(bob, second, "RUNNING")
    queued = submit(alice, git.url, "core-image-minimal")  # both CPUs are taken
    deadline = time.monotonic() + 30
    while (waiting := job(alice, queued))["waiting_reason"] not in ("Resources", "Priority"):
        assert time.monotonic() < deadline, waiting  # Slurm's own reason, once it looked
        time.sleep(0.3)
    assert waiting["status"] == "PENDING" and waiting["node"] is None
    page = alice.get(f"/jobs/{queued}").text
    assert waiting["waiting_reason"] in page

    service.kill()  # one build pending in Slurm, two running
    service.start()
    web = _web_again(alice)
    for job_id in (first, second, queued):
        assert wait_for_end(web, job_id, timeout=150)["status"] == "SUCCESS", job(web, job_id)
    assert job(web, queued)["node"]


def _web_again(old: httpx.Client) -> httpx.Client:
    """The same signed-in browser after the service restarted (sessions are in the database)."""
    web = httpx.Client(base_url=f"http://127.0.0.1:{PORT}", follow_redirects=False, timeout=60,
                       cookies=old.cookies)
    assert web.get("/api/jobs?per_page=1").status_code == 200
    return web


def test_a_build_that_reaches_its_time_limit_ends_failed_saying_so(engineers, git, timing):
    alice, _ = engineers
    job_id = submit(alice, git.url, "endless-image")
    _wait_for(alice, job_id, "RUNNING")
    started = time.monotonic()
    ended = wait_for_end(alice, job_id, timeout=TIME_LIMIT_MINUTES * 60 + 90)
    timing("RUNNING -> FAILED at a 1 min time limit", time.monotonic() - started)
    assert ended["status"] == "FAILED"
    assert "time limit" in ended["reason"] and "TIMEOUT" in ended["reason"], ended
    assert "time limit" in alice.get(f"/jobs/{job_id}").text


def test_a_node_that_goes_away_under_a_running_build_fails_it_with_that_reason(
        engineers, accounts, git, slurm_cluster, timing):  # noqa: F811
    alice, _ = engineers
    job_id = submit(alice, git.url, "slow-image")
    _wait_for(alice, job_id, "RUNNING")
    # The node is gone, and everything that ran on it: slurmd, the job's step daemon (which
    # would otherwise still report how the job ended) and the build.
    slurm_cluster.stop_slurmd()
    subprocess.run(["pkill", "-KILL", "-x", "slurmstepd"], check=False)
    subprocess.run(["pkill", "-KILL", "-u", accounts.alice.name], check=False)
    lost = time.monotonic()
    try:
        ended = wait_for_end(alice, job_id, timeout=120)
        timing("slurmd stopped -> FAILED (NODE_FAIL)", time.monotonic() - lost)
    finally:
        slurm_cluster.start_slurmd()
    assert ended["status"] == "FAILED", ended
    assert "NODE_FAIL" in ended["reason"], ended
    assert "NODE_FAIL" in alice.get(f"/jobs/{job_id}").text


def test_autobuild_check_sees_the_cluster_and_the_shared_jobs_root(service):
    from autobuild.check import _run as run_for_check, slurm_checks
    from autobuild.config import Settings

    settings = Settings(jobs_root=JOBS, executor="slurm")
    results = list(slurm_checks(settings, run_for_check))
    assert [r.ok for r in results] == [True, True], [r.line() for r in results]
    assert "sinfo" in results[0].what and "same directory" in results[1].what
    elsewhere = list(slurm_checks(Settings(jobs_root=BASE / "not-shared", executor="slurm"),
                                  run_for_check))
    assert not elsewhere[-1].ok  # a jobs root that is not there is reported (one machine: no
    # jobs root can be here and missing on the node; the fake-run test covers a different inode)
