"""Crash consistency of submit and start (issue 7, point 6): the real service, in a process of
its own, is stopped dead (SIGKILL, by itself) at each named step, then started again. A
job runs exactly once with the parameters the service decided, or never; a submission that
did not complete leaves no job behind.

The runner is the real run_job.sh, run as the current user without sudo
(AUTO_BUILD_NO_SUDO=1), building the stand-in poky from the token-protected git server.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from autobuild.adapters.crash_points import CrashAt
from autobuild.adapters.local_runner import LAUNCH_LOCKED
from autobuild.domain import commands, layout, supervision
from tests.integration.conftest import RUNNER
from tests.support.loopback import free_port
from tests.web.helpers import csrf_from

REPO_ROOT = Path(__file__).resolve().parents[2]
USER = pwd.getpwuid(os.getuid()).pw_name
PASSWORD = "crash-test-password"


class Service:
    """``autobuild``'s web app in a child process, on a port of its own."""

    def __init__(self, tmp_path: Path, git_ca: Path) -> None:
        self.data = tmp_path / "data"
        self.data.mkdir()
        self.jobs_root = tmp_path / "jobs"
        self.jobs_root.mkdir()
        self.port = free_port()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "AUTO_BUILD_DB": str(self.data / "jobs.db"),
            "AUTO_BUILD_JOBS_ROOT": str(self.jobs_root),
            "AUTO_BUILD_RUNNER": str(RUNNER), "AUTO_BUILD_NO_SUDO": "1",
            "AUTO_BUILD_DEV": "1", "AUTO_BUILD_SECRET_KEY": "crash-test-secret-key-0123456789",
            "AUTO_BUILD_MIN_FREE_GB": "0", "AUTO_BUILD_CACHE_DIR": str(tmp_path / "no-cache"),
            "GIT_SSL_CAINFO": str(git_ca), "STANDIN_BITBAKE_DELAY": "0",
            "AUTOBUILD_TEST_USER": USER, "AUTOBUILD_TEST_PASSWORD": PASSWORD,
            "PYTHONPATH": str(REPO_ROOT),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def start(self, crash_at: str | None = None) -> None:
        env = dict(self.env)
        if crash_at:
            env["AUTO_BUILD_TEST_CRASH_AT"] = crash_at
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.service_process", str(self.port)],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL)
        self.client.close()  # a new browser session for the new service
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.client.get("/login").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("the service did not start")

    def wait_dead(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def sign_in(self) -> None:
        page = self.client.get("/login")
        response = self.client.post("/login", data={
            "username": USER, "password": PASSWORD, "csrf_token": csrf_from(page.text)})
        assert response.status_code == 303, response.text

    def submit(self, url: str) -> httpx.Response | None:
        """POST /new; None when the service died answering it."""
        page = self.client.get("/new")
        try:
            return self.client.post("/new", data={
                "repo_url": url, "ref": "main", "machine": "qemux86-64",
                "target": "core-image-minimal", "csrf_token": csrf_from(page.text)})
        except httpx.TransportError:
            return None

    def jobs(self) -> list[dict]:
        return self.client.get("/api/jobs").json()["items"]

    def wait_for_end(self, job_id: int, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.client.get(f"/api/jobs/{job_id}").json()
            if job["status"] in ("SUCCESS", "FAILED", "CANCELLED"):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not end: {job}")

    def build_log(self, job_id: int) -> str:
        return (self.jobs_root / USER / str(job_id) / layout.LOGS_DIR /
                layout.BUILD_LOG).read_text(errors="replace")


@pytest.fixture
def service(tmp_path, git, user_token):
    svc = Service(tmp_path, git.server.ca_file)
    yield svc
    svc.stop()
    svc.client.close()


def test_every_named_step_is_a_crash_point():
    """The steps the tests below stop at are the ones the code reports (a renamed step
    would silently test nothing)."""
    steps = {commands.SUBMIT_VALIDATED, commands.SUBMIT_STORED, supervision.START_DECIDED,
             LAUNCH_LOCKED, supervision.START_LAUNCHED, supervision.START_RECORDED}
    assert steps == set(STEPS)
    CrashAt(None).reached(commands.SUBMIT_STORED)  # without a step it never stops anything


STEPS = {
    # step: whether the job exists after the crash
    commands.SUBMIT_VALIDATED: False,
    commands.SUBMIT_STORED: True,
    supervision.START_DECIDED: True,
    LAUNCH_LOCKED: True,
    supervision.START_LAUNCHED: True,
    supervision.START_RECORDED: True,
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_service_killed_at_each_step_runs_the_build_exactly_once_or_not_at_all(
        service, git, step):
    service.start(crash_at=step)
    service.sign_in()
    answer = service.submit(git.url)
    assert service.wait_dead() == -9, "the service should have stopped at the crash point"
    if answer is not None:  # a step after the answer (the scheduler's): the user was told
        assert answer.status_code == 303

    service.start()
    service.sign_in()
    jobs = service.jobs()
    if not STEPS[step]:
        assert jobs == [], "a submission that did not complete left a job behind"
        return
    [job] = jobs
    ended = service.wait_for_end(job["id"])
    assert ended["status"] == "SUCCESS", ended
    log = service.build_log(job["id"])
    # One runner, one build: the header the runner writes once per run appears once.
    assert log.count(layout.step_line(layout.STEP_JOB)) == 1, log
    assert log.count(layout.step_line(layout.STEP_FINISHED)) == 1, log
