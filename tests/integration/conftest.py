"""Integration fixtures: the real run_job.sh shim, a real HTTPS git server, the stand-in poky.

The runner runs as the current user without sudo (as the service does with
AUTO_BUILD_NO_SUDO=1), the build order on its stdin; it reads the GitLab token from the real ~/.autobuild/gitlab_token of
that user, which the ``user_token`` fixture fills and restores afterwards. Tests that need
a second Linux user (PAM, sudo) get a throwaway one when they run as root, else they skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from autobuild.adapters.job_files import JobDirectory

from tests.support.git_https_server import GitHttpsServer, installed_user_token
from tests.support.standin import commit_of, create_standin_repo

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNNER = REPO_ROOT / "runner" / "run_job.sh"
TOKEN = "glpat-" + secrets.token_urlsafe(18)
MACHINE = "qemux86-64"
TARGET = "core-image-minimal"


@dataclass(frozen=True)
class GitRepo:
    server: GitHttpsServer
    url: str
    bare: Path
    main_sha: str
    tag_sha: str


@pytest.fixture(scope="session")
def git(tmp_path_factory: pytest.TempPathFactory):
    """The stand-in poky at https://127.0.0.1:<port>/poky.git, behind token auth."""
    root = tmp_path_factory.mktemp("repos")
    bare = root / "poky.git"
    main_sha = create_standin_repo(bare)
    with GitHttpsServer(root, token=TOKEN) as server:
        yield GitRepo(server, server.url("poky.git"), bare, main_sha, commit_of(bare, "v1.0"))


@pytest.fixture(scope="session")
def _session_token():
    with installed_user_token(TOKEN) as set_token:
        yield set_token


@pytest.fixture
def user_token(_session_token):
    """The current user's token file holds TOKEN; call it to change (None removes the file)."""
    _session_token(TOKEN)
    yield _session_token
    _session_token(TOKEN)


@dataclass
class Build:
    returncode: int
    stdout: str
    stderr: str
    job_dir: Path

    @property
    def status(self) -> dict:
        return json.loads((self.job_dir / "status.json").read_text())

    @property
    def log(self) -> str:
        return (self.job_dir / "logs" / "build.log").read_text()

    @property
    def artifacts(self) -> dict[str, Path]:
        return {p.name: p for p in (self.job_dir / "artifacts").iterdir()}

    @property
    def deploy_dir(self) -> Path:
        return self.job_dir / "work" / "src" / "build" / "tmp" / "deploy" / "images"


def current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


class Runner:
    """Runs the run_job.sh shim as the current user with a test jobs root, like the service
    without sudo (AUTO_BUILD_NO_SUDO=1): the order on stdin, the build in
    <jobs_root>/<current user>/<id>."""

    def __init__(self, jobs_root: Path, ca_file: Path) -> None:
        self.jobs_root = jobs_root
        self.ca_file = ca_file
        self.path = RUNNER
        self.owner = current_user()

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "GIT_SSL_CAINFO": str(self.ca_file),
            "STANDIN_BITBAKE_DELAY": "0",
        }
        env.update(extra)
        return env

    def job_path(self, job_id: int) -> Path:
        return self.jobs_root / self.owner / str(job_id)

    def address(self, job_id: int) -> dict:
        return {"job_id": job_id, "owner": self.owner, "jobs_root": str(self.jobs_root)}

    def order(self, job_id: int, url: str, ref: str, machine: str = MACHINE,
              target: str = TARGET, patterns: list[str] | None = None,
              settings: dict | None = None, kas_file: str | None = None) -> str:
        """A BuildOrder as JSON. By default the workspace is kept (tests look into it) and
        the shared caches are in a directory that does not exist."""
        if settings is None:
            settings = {"keep_workspace": True, "cache_dir": str(self.jobs_root.parent / "no-cache")}
        order = {**self.address(job_id), "repo_url": url, "ref": ref, "machine": machine,
                 "target": target, "kas_file": kas_file, "settings": settings}
        if patterns is not None:
            order["artifact_patterns"] = patterns
        return json.dumps(order)

    def run(self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(RUNNER), *args], env=env or self.env(), input=stdin or "",
                              capture_output=True, text=True, timeout=timeout)

    def build(self, job_id: int, url: str, ref: str, machine: str = MACHINE,
              target: str = TARGET, patterns: list[str] | None = None,
              settings: dict | None = None, kas_file: str | None = None, **env: str) -> Build:
        order = self.order(job_id, url, ref, machine, target, patterns, settings, kas_file)
        result = self.run("build", str(job_id), stdin=order, env=self.env(**env))
        return Build(result.returncode, result.stdout, result.stderr, self.job_path(job_id))

    def start(self, job_id: int, url: str, ref: str, machine: str = MACHINE,
              target: str = TARGET, settings: dict | None = None,
              **env: str) -> subprocess.Popen[bytes]:
        """Start a build in its own session (as the service does) without waiting."""
        process = subprocess.Popen([str(RUNNER), "build", str(job_id)], env=self.env(**env),
                                   stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        assert process.stdin is not None
        process.stdin.write(self.order(job_id, url, ref, machine, target,
                                       settings=settings).encode())
        process.stdin.close()
        return process

    def cancel(self, job_id: int, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run("cancel", str(job_id), stdin=json.dumps(self.address(job_id)),
                        env=self.env(**env))

    def purge(self, job_id: int) -> subprocess.CompletedProcess[str]:
        return self.run("purge", str(job_id), stdin=json.dumps(self.address(job_id)))

    def record(self, job_id: int) -> dict:
        return json.loads((self.job_path(job_id) / "runner.json").read_text())

    def wait_for_log(self, job_id: int, text: str, timeout: float = 30) -> None:
        log = self.job_path(job_id) / "logs" / "build.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if log.exists() and text in log.read_text(errors="replace"):
                return
            time.sleep(0.05)
        raise AssertionError(f"{text!r} did not appear in {log}")


@pytest.fixture
def jobs_root(tmp_path: Path) -> Path:
    root = tmp_path / "jobs"
    root.mkdir()
    return root


@pytest.fixture
def root(jobs_root: Path) -> Path:
    """The jobs root, for tests of the job directory adapter."""
    return jobs_root


@pytest.fixture
def files(jobs_root: Path) -> JobDirectory:
    return JobDirectory(jobs_root)


@pytest.fixture
def runner(jobs_root: Path, git: GitRepo, user_token) -> Runner:
    return Runner(jobs_root, git.server.ca_file)


_PGRP, _SESSION = 2, 3  # positions in /proc/<pid>/stat after the command name


def processes(index: int, value: int) -> list[int]:
    """Live (non-zombie) pids whose /proc/<pid>/stat field ``index`` equals ``value``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[index]) == value:
            found.append(int(entry.name))
    return found


def group_members(pgid: int) -> list[int]:
    return processes(_PGRP, pgid)


def session_members(sid: int) -> list[int]:
    return processes(_SESSION, sid)


# --- a throwaway Linux user (root only) ---------------------------------------------------

@dataclass(frozen=True)
class LinuxUser:
    name: str
    password: str
    home: Path


THROWAWAY_USER = "autobuild-itest"


@pytest.fixture(scope="session")
def throwaway_user():
    """A real user with a known password, created for the session and removed after it."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("sudo"):
        pytest.skip("needs root, useradd and sudo to create a throwaway user")
    lock_path = Path(tempfile.gettempdir()) / f"{THROWAWAY_USER}.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        base = Path(tempfile.mkdtemp(prefix=f"{THROWAWAY_USER}-"))
        base.chmod(0o755)
        home = base / "home"
        _remove_user(THROWAWAY_USER)  # left over by a killed session
        subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--user-group",
                        "--shell", "/usr/sbin/nologin", THROWAWAY_USER],
                       check=True, capture_output=True)
        password = "It-" + secrets.token_urlsafe(16)
        subprocess.run(["chpasswd"], input=f"{THROWAWAY_USER}:{password}\n", text=True,
                       check=True, capture_output=True)
        with contextlib.suppress(KeyError):
            # Production PAM config may require the builders' group.
            grp.getgrnam("autobuild-users")
            subprocess.run(["usermod", "-aG", "autobuild-users", THROWAWAY_USER],
                           check=True, capture_output=True)
        try:
            yield LinuxUser(THROWAWAY_USER, password, home)
        finally:
            _remove_user(THROWAWAY_USER)
            shutil.rmtree(base, ignore_errors=True)


def _remove_user(name: str) -> None:
    # An installed service's install.sh may have made the user's directory in its jobs root
    # while the user was in autobuild-users: it goes with the user (`autobuild check` would
    # rightly flag a directory of a user who no longer exists).
    shutil.rmtree(Path("/srv/autobuild/jobs") / name, ignore_errors=True)
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    subprocess.run(["userdel", "--remove", "--force", name], capture_output=True)
