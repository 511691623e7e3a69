"""The app under test, in a child process, for the benchmarks (not a benchmark itself).

``Server(tmp)`` serves the real app with uvicorn on 127.0.0.1 in a child process (so its CPU
is its own), with a real JobDirectory on the build tree ``tmp/jobs`` (reads go through the
owner-checked build tree and the inotify watch) and jobs #1 (..#N) of the current user, kept in
memory with the status asked for; then signs in and keeps the session cookie.
``Server(tmp, "SERVICE")`` serves the whole service instead (SQLite in ``tmp/data``, the
scheduler, the real runner/run_job.sh as the current user without sudo), as
tests/integration/test_end_to_end.py does; only the sign-in is a fake.

    .venv/bin/python -m bench._server TMP PORT STATUS N    # what Server runs
"""

from __future__ import annotations

import os
import pwd
import re
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

OWNER = pwd.getpwuid(os.getuid()).pw_name  # the build tree must be a real user's
PASSWORD = "bench-pw"
JOB_ID = 1
TIMEOUT = 30.0
ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "runner" / "run_job.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{what} did not start (exit {process.returncode})") from None
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer on port {port} within {TIMEOUT:.0f} s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def job_dir(tmp: Path, job_id: int = JOB_ID) -> Path:
    return tmp / "jobs" / OWNER / str(job_id)


def prepare(tmp: Path) -> Path:
    """A build tree with the (empty) log of job #1; returns the log's path."""
    old = os.umask(0o022)  # as a build writes it: nothing writable by group or others
    try:
        logs = job_dir(tmp) / "logs"
        logs.mkdir(parents=True)
        (tmp / "data").mkdir(exist_ok=True)
        log = logs / "build.log"
        log.write_bytes(b"")
        return log
    finally:
        os.umask(old)


def sign_in(port: int) -> str:
    """Signs in as OWNER on the app at ``port``; returns the Cookie header value."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        page = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        response = client.post("/login", data={"username": OWNER, "password": PASSWORD,
                                               "csrf_token": token})
        assert response.status_code == 303, response.status_code
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def serve_service(tmp: Path, port: int) -> None:
    """The child process: the whole service on 127.0.0.1:port (only the sign-in is fake)."""
    import uvicorn

    from autobuild.config import Settings
    from autobuild.web.app import create_app
    from tests.fakes import FakeAuthenticator, FakeMembers

    settings = Settings(db_path=tmp / "data" / "jobs.db", jobs_root=tmp / "jobs",
                        secret_key_file=tmp / "secret_key", runner_path=RUNNER, dev_mode=True,
                        use_sudo=False, cache_dir=tmp / "no-cache", login_failures=10_000)
    app = create_app(settings, overrides={"auth": FakeAuthenticator({OWNER: PASSWORD}),
                                          "members": FakeMembers({OWNER})})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def serve(tmp: Path, port: int, status: str, jobs: int) -> None:
    """The child process: the app on 127.0.0.1:port, jobs #1..#jobs of OWNER, RUNNING,
    SUCCESS or FAILED."""
    from datetime import UTC, datetime

    import uvicorn

    from autobuild.config import Settings
    from autobuild.domain.jobs import Job, JobStatus
    from autobuild.domain.ports import Ended, Running
    from autobuild.web.app import create_app
    from tests.fakes import (
        FakeAuthenticator,
        FakeClock,
        FakeJobFiles,
        FakeJobRepository,
        FakeMembers,
        FakeRunner,
    )

    now = datetime.now(UTC)
    repo = FakeJobRepository()
    runner = FakeRunner(FakeJobFiles(), FakeClock())
    for job_id in range(JOB_ID, JOB_ID + jobs):
        job = Job(id=job_id, owner=OWNER, repo_url="https://git.example.com/bsp/poky.git",
                  ref="v1", machine="qemux86-64", target="core-image-minimal", created_at=now)
        job.start(now)
        if status == "RUNNING":
            runner.states[job_id] = Running()
        else:
            exit_code = 0 if status == "SUCCESS" else 1
            job.finish(exit_code, now)
            runner.states[job_id] = Ended(JobStatus(status), exit_code)
        repo.rows[job_id] = job
    settings = Settings(db_path=tmp / "data" / "jobs.db", jobs_root=tmp / "jobs",
                        secret_key_file=tmp / "secret_key", dev_mode=True, use_sudo=False,
                        login_failures=10_000, max_streams_per_user=100_000)
    app = create_app(settings, overrides={
        "jobs": repo, "runner": runner, "auth": FakeAuthenticator({OWNER: PASSWORD}),
        "members": FakeMembers({OWNER}),
    })
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=2048)


class Server:
    """The app in a child process, signed in (``cookie``)."""

    def __init__(self, tmp: Path, status: str = "RUNNING", jobs: int = 1) -> None:
        (tmp / "data").mkdir(exist_ok=True)
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._server", str(tmp), str(self.port), status, str(jobs)],
            cwd=ROOT)
        try:
            wait_for_port(self.port, self.process, "the app")
            self.cookie = sign_in(self.port)
        except BaseException:
            self.stop()
            raise

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    raise_file_limit()
    if sys.argv[3] == "SERVICE":
        serve_service(Path(sys.argv[1]), int(sys.argv[2]))
    else:
        serve(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
