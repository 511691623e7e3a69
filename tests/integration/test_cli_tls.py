"""The command-line client against the real app over HTTPS with a private CA (uvicorn's TLS,
and the shipped nginx HTTPS site as a team runs it with an internal CA): ``login --ca-file``
verifies the service with that CA and remembers it (absolute, in the 0600 config) for every
later command (JSON, the live log, downloads); without it, with another CA or for another name,
the client refuses in one line that names the certificate problem and the fix, before the
token leaves the machine.

Only loopback ports of its own and temporary homes: no shared state, so no lock needed. The
client runs as an engineer runs it: ``/usr/bin/python3 autobuild-cli``, the token on stdin.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import pwd
import re
import shutil
import ssl
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

import autobuild.web
from autobuild.config import Settings
from autobuild.domain.jobs import Job, JobStatus
from autobuild.web.app import create_app
from tests.fakes import (
    FakeAuthenticator, FakeClock, FakeJobFiles, FakeJobRepository, FakeMembers, FakeRunner,
)
from tests.support.git_https_server import make_tls_files
from tests.support.loopback import free_port, serving
from tests.support.nginx_site import Nginx, tls_site_config
from tests.web.helpers import csrf_from

pytestmark = pytest.mark.skipif(not (shutil.which("openssl") and os.path.exists(
    "/usr/bin/python3")), reason="openssl and /usr/bin/python3 needed")

CLI_FILE = Path(autobuild.web.__file__).parent / "static" / "autobuild-cli"
PYTHON = "/usr/bin/python3"
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"
OWNER = pwd.getpwuid(os.getuid()).pw_name
PASSWORD = "pw"
REPO = "https://git.example.com/bsp/poky.git"
TOKENS_PAGE = "/settings/api-tokens"
_SHOWN = re.compile(r'value="(abt_[A-Za-z0-9_-]{43})"')
LOG = "NOTE: Executing Tasks\nNOTE: Tasks Summary: all succeeded\n"
IMAGE = "core-image-minimal-qemux86-64.wic"
IMAGE_BYTES = os.urandom(300_000)


@dataclass(frozen=True)
class Service:
    url: str
    ca_file: Path


def _app(directory: Path):
    """The real app; fakes only behind its ports for builds and PAM: build #1 succeeded, with a
    log and an image."""
    jobs = FakeJobRepository()
    jobs.rows[1] = Job(id=1, owner=OWNER, repo_url=REPO, ref="main", machine="qemux86-64",
                       target="core-image-minimal", created_at=datetime(2026, 1, 1, tzinfo=UTC),
                       status=JobStatus.SUCCESS, exit_code=0,
                       started_at=datetime(2026, 1, 1, 0, 1, tzinfo=UTC),
                       finished_at=datetime(2026, 1, 1, 0, 9, tzinfo=UTC))
    files = FakeJobFiles()
    files.logs[1] = LOG.encode()
    files.artifacts[1] = {IMAGE: IMAGE_BYTES}
    files.checksums[1] = {IMAGE: hashlib.sha256(IMAGE_BYTES).hexdigest()}
    for name in ("data", "jobs"):
        (directory / name).mkdir()
    settings = Settings(db_path=directory / "data" / "jobs.db", jobs_root=directory / "jobs",
                        runner_path=directory / "run_job.sh", secret_key_file=directory / "key",
                        dev_mode=True, use_sudo=False, poll_interval=0.05)
    return create_app(settings, overrides={
        "jobs": jobs, "files": files, "auth": FakeAuthenticator({OWNER: PASSWORD}),
        "members": FakeMembers({OWNER}), "runner": FakeRunner(files, FakeClock())})


def _serve(directory: Path, names: str) -> Iterator[Service]:
    """The app over HTTPS on a loopback port, with a certificate for ``names`` from a CA of
    its own."""
    ca_file, cert, key = make_tls_files(directory / "tls", names)
    with serving(_app(directory), ssl_certfile=str(cert), ssl_keyfile=str(key)) as port:
        yield Service(f"https://127.0.0.1:{port}", ca_file)


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    """Its certificate is for 127.0.0.1 and localhost."""
    yield from _serve(tmp_path_factory.mktemp("service"), "IP:127.0.0.1,DNS:localhost")


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Iterator[Service]:
    """Its certificate (from its CA) is for another name than the address it is reached at."""
    yield from _serve(tmp_path_factory.mktemp("elsewhere"), "DNS:autobuild.example.com")


def _new_token(url: str, ca_file: Path) -> str:
    """An API token made as an engineer makes one: signed in, on Settings → API tokens."""
    verify = ssl.create_default_context(cafile=str(ca_file))
    with httpx.Client(base_url=url, verify=verify, follow_redirects=False, timeout=20) as web:
        signed_in = web.post("/login", data={"username": OWNER, "password": PASSWORD,
                                             "csrf_token": csrf_from(web.get("/login").text)})
        assert signed_in.status_code == 303, signed_in.text
        made = web.post(TOKENS_PAGE, data={"name": "cli tls test", "expires_days": "1",
                                           "csrf_token": csrf_from(web.get(TOKENS_PAGE).text)})
        assert made.status_code == 201, made.text
        return _SHOWN.search(made.text).group(1)


@pytest.fixture(scope="module")
def token(service) -> str:
    return _new_token(service.url, service.ca_file)


@dataclass(frozen=True)
class Engineer:
    """A home of their own, and a working directory where the team's ca.pem was saved."""

    home: Path
    work: Path
    token: str

    @property
    def config(self) -> Path:
        return self.home / ".config" / "autobuild" / "config.json"

    def run(self, *args: str, cwd: Path | None = None, stdin: str = "",
            **env: str) -> subprocess.CompletedProcess[str]:
        argv = [PYTHON, str(CLI_FILE), *args]
        result = subprocess.run(
            argv, cwd=str(cwd or self.work), input=stdin, capture_output=True, text=True,
            timeout=60, env={"HOME": str(self.home), "PATH": "/usr/bin:/bin",
                             "LANG": "C.UTF-8", **env})
        assert self.token not in " ".join(argv)
        assert self.token not in result.stdout and self.token not in result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def login(self, url: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("login", "--url", url, *args, stdin=self.token + "\n")


@pytest.fixture
def engineer(tmp_path, service, token) -> Engineer:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    shutil.copy(service.ca_file, work / "ca.pem")
    return Engineer(home, work, token)


def _refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one line of a refusal (exit code 1), without the program's prefix."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("autobuild-cli: error: "), result.stderr
    return result.stderr.removeprefix("autobuild-cli: error: ")


def test_login_with_the_teams_ca_then_every_command_uses_it(engineer, service):
    logged_in = engineer.login(service.url, "--ca-file", "ca.pem")  # relative, as typed
    assert logged_in.returncode == 0, logged_in.stderr
    verified = f"(its certificate verified with {engineer.work / 'ca.pem'})"
    assert f"Signed in to {service.url} {verified}" in logged_in.stdout

    saved = json.loads(engineer.config.read_text())
    assert saved == {"url": service.url, "token": engineer.token,
                     "ca_file": str(engineer.work / "ca.pem")}
    assert stat.S_IMODE(engineer.config.stat().st_mode) == 0o600
    assert stat.S_IMODE(engineer.config.parent.stat().st_mode) == 0o700

    _uses_the_saved_ca(engineer, cwd=engineer.home)  # elsewhere: the saved path is absolute


def _uses_the_saved_ca(engineer: Engineer, cwd: Path) -> None:
    """Every kind of request the client makes works without --ca-file: JSON, the live log
    (Server-Sent Events), a download."""
    listed = engineer.run("list", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"#1\s+SUCCESS\s+{OWNER}\s+{re.escape(REPO)}@main", listed.stdout)
    shown = engineer.run("status", "1", "--json", cwd=cwd)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["repo_url"] == REPO
    followed = engineer.run("follow", "1", cwd=cwd)
    assert (followed.returncode, followed.stdout) == (0, LOG), followed.stderr
    assert "Build #1 SUCCESS" in followed.stderr
    downloaded = engineer.run("artifacts", "1", "--download", "out", cwd=cwd)
    assert downloaded.returncode == 0, downloaded.stderr
    assert f"{IMAGE}: downloaded, sha256 OK" in downloaded.stderr
    assert (cwd / "out" / IMAGE).read_bytes() == IMAGE_BYTES


def test_without_the_ca_file_the_client_says_so_and_saves_nothing(engineer, service):
    line = _refused(engineer.login(service.url))
    assert "certificate" in line and "--ca-file" in line
    assert "unable to get local issuer certificate" in line  # what OpenSSL found
    assert not engineer.config.exists()

    # The same with the token from the environment (a CI job): the token never left.
    line = _refused(engineer.run("--url", service.url, "list", AUTOBUILD_TOKEN=engineer.token))
    assert "certificate" in line and "--ca-file" in line


def test_another_ca_is_refused_naming_the_ca_file(engineer, service, tmp_path):
    other_ca, _, _ = make_tls_files(tmp_path / "other")
    line = _refused(engineer.login(service.url, "--ca-file", str(other_ca)))
    assert str(other_ca) in line and "--ca-file" in line
    assert "certificate" in line
    assert not engineer.config.exists()


def test_a_certificate_for_another_name_is_refused(engineer, elsewhere):
    line = _refused(engineer.login(elsewhere.url, "--ca-file", str(elsewhere.ca_file)))
    assert "127.0.0.1" in line and "certificate" in line
    assert "not valid for" in line or "mismatch" in line
    assert "--url" in line  # the fix: the name the certificate was made for
    by_name = elsewhere.url.replace("127.0.0.1", "localhost")
    line = _refused(engineer.login(by_name, "--ca-file", str(elsewhere.ca_file)))
    assert "Hostname mismatch" in line and "another name than localhost" in line
    assert not engineer.config.exists()


def test_a_missing_or_unusable_ca_file_is_one_clear_line(engineer, service):
    line = _refused(engineer.login(service.url, "--ca-file", "nowhere.pem"))
    assert str(engineer.work / "nowhere.pem") in line and "does not exist" in line

    (engineer.work / "notes.txt").write_text("not a certificate\n")
    line = _refused(engineer.login(service.url, "--ca-file", "notes.txt"))
    assert "notes.txt" in line and "no PEM certificate" in line

    line = _refused(engineer.login(service.url, "--ca-file", str(engineer.work)))
    assert "is a directory" in line
    assert not engineer.config.exists()


def test_an_unreadable_ca_file_is_one_clear_line(engineer, service):
    if os.geteuid() != 0:
        (engineer.work / "ca.pem").chmod(0)
        line = _refused(engineer.login(service.url, "--ca-file", "ca.pem"))
    else:  # root reads any file: the engineer is nobody, and the CA file root's alone
        shared = Path(tempfile.mkdtemp(prefix="cli-tls-"))
        try:
            shared.chmod(0o755)
            shutil.copy(service.ca_file, shared / "ca.pem")
            (shared / "ca.pem").chmod(0o600)
            result = subprocess.run(
                [RUNUSER, "-u", "nobody", "--", PYTHON, str(CLI_FILE), "--url", service.url,
                 "--ca-file", str(shared / "ca.pem"), "list"],
                cwd="/", capture_output=True, text=True, timeout=60,
                env={"HOME": str(shared), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                     "AUTOBUILD_TOKEN": engineer.token})
        finally:
            shutil.rmtree(shared)
        assert "Traceback" not in result.stderr and engineer.token not in result.stderr
        line = _refused(result)
    assert "ca.pem" in line and "cannot be read (permission denied)" in line


def test_a_saved_ca_file_that_went_away_says_where_it_was_saved(engineer, service):
    assert engineer.login(service.url, "--ca-file", "ca.pem").returncode == 0
    (engineer.work / "ca.pem").unlink()
    line = _refused(engineer.run("list"))
    assert "does not exist" in line and "login" in line and "--ca-file" in line


def test_a_login_elsewhere_does_not_take_the_saved_ca_along(engineer, service, elsewhere):
    assert engineer.login(service.url, "--ca-file", "ca.pem").returncode == 0
    # The other service's CA is not the saved one: without --ca-file, the system's CAs apply.
    line = _refused(engineer.login(elsewhere.url))
    assert "--ca-file" in line and str(engineer.work / "ca.pem") not in line
    # The same service again keeps it.
    again = engineer.login(service.url)
    assert again.returncode == 0, again.stderr
    assert json.loads(engineer.config.read_text())["ca_file"] == str(engineer.work / "ca.pem")


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx not installed")
def test_behind_the_shipped_nginx_tls_site(tmp_path, engineer):
    """As install.sh --tls-cert sets a team's service up: the shipped HTTPS site of nginx in
    front of the app, with a certificate from the team's CA; plain HTTP redirects there."""
    directory = tmp_path / "nginx-service"
    directory.mkdir()
    ca_file, cert, key = make_tls_files(directory / "tls")
    shutil.copy(ca_file, engineer.work / "team-ca.pem")
    with serving(_app(directory), proxy_headers=True,
                 forwarded_allow_ips="127.0.0.1") as app_port:
        port, redirect_port = free_port(), free_port()
        site = tls_site_config(app_port, port, redirect_port, directory / "jobs", cert, key)
        nginx = Nginx(tmp_path / "nginx", site, port)
        try:
            url = f"https://127.0.0.1:{port}"
            behind = Engineer(engineer.home, engineer.work, _new_token(url, ca_file))
            logged_in = behind.login(url, "--ca-file", "team-ca.pem")
            assert logged_in.returncode == 0, logged_in.stderr
            _uses_the_saved_ca(behind, cwd=behind.home)

            line = _refused(behind.run("--url", f"http://127.0.0.1:{redirect_port}", "list"))
            assert "redirect to https://127.0.0.1/api/jobs" in line and "https://" in line
            # http:// to the HTTPS port itself: the same advice, not nginx's bare 400 page.
            line = _refused(behind.run("--url", f"http://127.0.0.1:{port}", "list"))
            assert f"redirect to https://127.0.0.1:{port}/api/jobs" in line
            browser = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            browser.request("GET", "/jobs?state=running")
            answer = browser.getresponse()
            assert (answer.status, answer.getheader("Location")) == (
                301, f"https://127.0.0.1:{port}/jobs?state=running")
        finally:
            nginx.stop()
