"""The command-line client end to end: downloaded from the installed service through nginx and
run as an engineer's own Linux user (config in their home), driving real builds."""

from __future__ import annotations

import hashlib
import json
import os
import re
import selectors
import shlex
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from playwright.sync_api import expect

from tests.support.standin import create_kas_repo
from tests.system.browsing import SCREENSHOTS, shot, sign_in
from tests.system.helpers import BASE_URL, MACHINE, Account, job, wait_for_end
from tests.web.helpers import csrf_from

TOKENS_PAGE = "/settings/api-tokens"
_SHOWN = re.compile(r'value="(abt_[A-Za-z0-9_-]{43})"')
_QUEUED = re.compile(r"Build #(\d+) is queued")
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"
# The terminal session of the closing note (copied to docs/cli-session.txt): what an engineer
# typed and saw, stdout and stderr in the order they came.
TRANSCRIPT = Path(__file__).resolve().parents[2] / "test-output" / "cli-session.txt"


@dataclass(frozen=True)
class Cli:
    account: Account
    program: Path
    token: str

    def run(self, *args: str, timeout: float = 300, input: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        """``python3 autobuild-cli args...`` as the engineer, HOME theirs, nothing else set."""
        return subprocess.run(self._argv(args), env=self._env(), capture_output=True, text=True,
                              timeout=timeout, input=input, cwd=str(self.account.home))

    def session(self, *args: str, timeout: float = 300
                ) -> tuple[subprocess.CompletedProcess[str], str]:
        """As ``run``, and the terminal session: the command as typed, then stdout and stderr
        interleaved in the order they were written, then the exit code."""
        process = subprocess.Popen(self._argv(args), env=self._env(), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   cwd=str(self.account.home))
        assert process.stdout is not None and process.stderr is not None
        streams = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
        both = bytearray()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            for fd in streams:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                assert time.monotonic() < deadline, "the client did not finish"
                for key, _ in selector.select(timeout=1):
                    data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(key.fd)
                    streams[key.fd] += data
                    both += data
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        out, err = (bytes(streams[fd]).decode("utf-8", "replace")
                    for fd in (process.stdout.fileno(), process.stderr.fileno()))
        process.stdout.close()
        process.stderr.close()
        typed = shlex.join(["autobuild-cli", *args])
        text = f"$ {typed}\n{both.decode('utf-8', 'replace')}$ echo $?\n{code}\n"
        return subprocess.CompletedProcess(self._argv(args), code, out, err), text

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        return [RUNUSER, "-u", self.account.name, "--", "/usr/bin/python3", str(self.program),
                *args]

    def _env(self) -> dict[str, str]:
        return {"HOME": str(self.account.home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


_TOKEN_NAME = "cli system test"
# A row of the tokens table: its name, then the id its revoke form posts.
_TOKEN_ROW = re.compile(r'<td>([^<]*)</td>\s*<td><code>abt_[^<]*</code></td>.*?'
                        r'name="id" value="([A-Za-z0-9_-]+)"', re.S)


def _revoke_test_tokens(web: httpx.Client) -> None:
    """Revokes the tokens this module made, so that runs on the same install (each makes one)
    never reach the per-engineer limit of tokens."""
    page = web.get(TOKENS_PAGE)
    assert page.status_code == 200, page.text
    for name, token_id in _TOKEN_ROW.findall(page.text):
        if name == _TOKEN_NAME:
            revoked = web.post(TOKENS_PAGE + "/revoke",
                               data={"id": token_id, "csrf_token": csrf_from(page.text)})
            assert revoked.status_code in (200, 303), revoked.text


def _new_token(web: httpx.Client) -> str:
    _revoke_test_tokens(web)
    page = web.get(TOKENS_PAGE)
    assert page.status_code == 200, page.text
    made = web.post(TOKENS_PAGE, data={"name": _TOKEN_NAME, "expires_days": "1",
                                       "csrf_token": csrf_from(page.text)})
    assert made.status_code == 201, made.text
    return _SHOWN.search(made.text).group(1)


@pytest.fixture(scope="module")
def cli(alice, accounts) -> Cli:
    """The client as downloaded from the service (no sign-in), in alice's home, logged in."""
    account = accounts.alice
    downloaded = httpx.get(f"{BASE_URL}/cli/autobuild-cli", timeout=30)
    assert downloaded.status_code == 200
    assert downloaded.headers["content-disposition"].startswith("attachment")
    program = account.home / "autobuild-cli"
    program.write_bytes(downloaded.content)
    shutil.chown(program, account.name, account.name)
    program.chmod(0o755)
    shutil.rmtree(account.home / ".config" / "autobuild", ignore_errors=True)
    made = Cli(account, program, _new_token(alice))
    logged_in = made.run("login", "--url", BASE_URL, input=made.token + "\n")
    assert logged_in.returncode == 0, logged_in.stderr
    yield made
    _revoke_test_tokens(alice)
    shutil.rmtree(account.home / ".config" / "autobuild", ignore_errors=True)
    shutil.rmtree(account.home / "cli-out", ignore_errors=True)
    program.unlink(missing_ok=True)


def _no_secret(cli: Cli, result: subprocess.CompletedProcess[str]) -> None:
    assert cli.token not in result.stdout and cli.token not in result.stderr
    assert "Traceback" not in result.stderr


def test_login_keeps_url_and_token_in_the_engineers_home_0600(cli):
    config = cli.account.home / ".config" / "autobuild" / "config.json"
    info = config.stat()
    assert info.st_uid == cli.account.uid
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert cli.token in config.read_text() and BASE_URL in config.read_text()


def test_a_wrong_token_is_refused_at_login_in_one_line(cli):
    result = cli.run("login", "--url", BASE_URL, input="abt_" + "x" * 43 + "\n")
    assert result.returncode == 1
    assert "refused the API token" in result.stderr and result.stderr.count("\n") == 1
    assert cli.token in (cli.account.home / ".config/autobuild/config.json").read_text()


@pytest.fixture(scope="module")
def success(cli, git) -> tuple[int, subprocess.CompletedProcess[str]]:
    result, session = cli.session("submit", "--repo", git.url, "--ref", "main", "--machine",
                                  MACHINE, "--target", "core-image-minimal", "--follow")
    queued = _QUEUED.search(result.stderr)
    assert queued, result.stderr
    job_id = int(queued.group(1))
    if result.returncode == 0:  # the closing note's terminal session: what was built, too
        status, more = cli.session("status", str(job_id))
        assert status.returncode == 0, status.stderr
        commit = re.search(r"commit: ([0-9a-f]{40})", status.stdout)
        assert commit, status.stdout
        listed, listing = cli.session("list", "--commit", commit.group(1)[:7])
        assert listed.returncode == 0, listed.stderr
        TRANSCRIPT.parent.mkdir(parents=True, exist_ok=True)
        TRANSCRIPT.write_text(session + more + listing)
    return job_id, result


def test_submit_follow_of_a_success_prints_the_log_and_exits_0(cli, success, alice):
    job_id, result = success
    assert result.returncode == 0, result.stderr[-3000:]
    transcript = TRANSCRIPT.read_text()
    assert transcript.startswith("$ autobuild-cli submit --repo ")
    assert "NOTE: Running task" in transcript and f"Build #{job_id} SUCCESS" in transcript
    assert cli.token not in transcript and "abt_" not in transcript
    assert "NOTE: Running task" in result.stdout  # the live log, on stdout
    assert f"Build #{job_id} SUCCESS" in result.stderr
    assert f"[#{job_id}] RUNNING" in result.stderr
    assert re.search(rf"\[#{job_id}\] .*\d+%", result.stderr), "no progress line"
    assert job(alice, job_id)["status"] == "SUCCESS"
    _no_secret(cli, result)


def test_submit_follow_of_a_failure_exits_with_the_builds_code(cli, git, alice):
    result = cli.run("submit", "--repo", git.url, "--machine", MACHINE, "--target", "fail-image",
                     "--follow")
    job_id = int(_QUEUED.search(result.stderr).group(1))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "ERROR: fail-image-1.0-r0 do_compile" in result.stdout
    assert f"Build #{job_id} FAILED" in result.stderr
    assert job(alice, job_id)["status"] == "FAILED"
    _no_secret(cli, result)


def test_status_list_and_log(cli, success):
    job_id, _ = success
    status = cli.run("status", str(job_id))
    assert status.returncode == 0 and f"#{job_id}" in status.stdout and "SUCCESS" in status.stdout
    listed = cli.run("list", "--limit", "50")
    assert listed.returncode == 0 and f"#{job_id} " in listed.stdout
    log = cli.run("log", str(job_id))
    assert log.returncode == 0 and "NOTE: Running task" in log.stdout
    missing = cli.run("status", "999999999")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    for result in (status, listed, log, missing):
        _no_secret(cli, result)


def test_artifacts_download_verifies_and_resumes(cli, success, alice):
    job_id, _ = success
    listed = alice.get(f"/api/jobs/{job_id}/artifacts").json()
    assert listed, "the build has no artifacts"
    out = cli.account.home / "cli-out"
    result = cli.run("artifacts", str(job_id), "--download", str(out))
    assert result.returncode == 0, result.stderr
    for artifact in listed:
        path = out / artifact["name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == artifact["sha256"]
        assert path.stat().st_uid == cli.account.uid
        assert f"{artifact['name']}: downloaded, sha256 OK" in result.stderr

    # Interrupted halfway: the next run continues the file with Range.
    biggest = max(listed, key=lambda artifact: artifact["size"])
    path = out / biggest["name"]
    half = biggest["size"] // 2
    with open(path, "r+b") as handle:
        handle.truncate(half)
    again = cli.run("artifacts", str(job_id), "--download", str(out))
    assert again.returncode == 0, again.stderr
    assert f"{biggest['name']}: resumed at byte {half}, sha256 OK" in again.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == biggest["sha256"]

    # A file that is not what the build made fails loudly.
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    bad = cli.run("artifacts", str(job_id), "--download", str(out), "--name", biggest["name"])
    assert bad.returncode == 1 and "sha256 MISMATCH" in bad.stderr
    _no_secret(cli, bad)


def test_cancel_of_a_running_build(cli, git, alice):
    queued = cli.run("submit", "--repo", git.url, "--machine", MACHINE, "--target", "slow-image")
    assert queued.returncode == 0, queued.stderr
    job_id = int(_QUEUED.search(queued.stdout).group(1))
    deadline = time.monotonic() + 120
    while job(alice, job_id)["status"] != "RUNNING":
        assert time.monotonic() < deadline, "slow-image did not start"
        time.sleep(0.3)

    cancelled = cli.run("cancel", str(job_id))
    assert cancelled.returncode == 0, cancelled.stderr
    followed = cli.run("follow", str(job_id))
    assert followed.returncode == 130, followed.stderr
    assert wait_for_end(alice, job_id)["status"] == "CANCELLED"
    assert f"Build #{job_id} CANCELLED" in followed.stderr


def test_list_by_commit_and_rebuild_of_the_exact_commit(cli, success, alice):
    job_id, _ = success
    built = job(alice, job_id)
    commit = built["commit"]
    assert commit and built["provenance"]["commit"] == commit
    listed = cli.run("list", "--commit", commit[:7], "--json")
    assert listed.returncode == 0, listed.stderr
    assert job_id in [item["id"] for item in json.loads(listed.stdout)["items"]]
    bad = cli.run("list", "--commit", "xyz")
    assert bad.returncode == 2 and "not a commit" in bad.stderr
    result = cli.run("rebuild", "--exact", str(job_id), "--follow")
    assert result.returncode == 0, result.stderr[-3000:]
    new_id = int(_QUEUED.search(result.stderr).group(1))
    assert f"a rebuild of commit {commit} of #{job_id}" in result.stderr
    again = job(alice, new_id)
    assert (again["ref"], again["commit"], again["status"]) == (commit, commit, "SUCCESS")
    _no_secret(cli, result)


def test_rebuild_follow_of_a_success_exits_0(cli, success, alice):
    job_id, _ = success
    result = cli.run("rebuild", str(job_id), "--follow")
    assert result.returncode == 0, result.stderr[-3000:]
    new_id = int(_QUEUED.search(result.stderr).group(1))
    assert new_id != job_id and f"a rebuild of #{job_id}" in result.stderr
    assert job(alice, new_id)["status"] == "SUCCESS"
    _no_secret(cli, result)


def test_a_kas_build_says_what_it_built_on_its_page(cli, git, alice, accounts, page):
    bare = git.server.root / "kas-project.git"
    if not bare.exists():
        create_kas_repo(bare)
    result = cli.run("submit", "--repo", git.server.url("kas-project.git"), "--machine", MACHINE,
                     "--target", "core-image-minimal", "--kas", "kas.yml", "--follow")
    assert result.returncode == 0, result.stderr[-3000:]
    job_id = int(_QUEUED.search(result.stderr).group(1))
    assert "==> Kas file kas.yml" in result.stdout
    built = job(alice, job_id)
    provenance = built["provenance"]
    assert provenance["kas_file"] == "kas.yml" and built["commit"] == provenance["commit"]
    assert provenance["kas_repos"] == [{"name": "standin", "commit": built["commit"],
                                        "url": None}]
    assert provenance["variables"]["DISTRO_VERSION"] == "2.0" and provenance["layers"]

    sign_in(page, accounts.alice)
    page.goto(f"/jobs/{job_id}")
    section = page.locator("#provenance")
    expect(section.locator("#kas-repos")).to_contain_text("this repository")
    expect(page.locator("#rebuild-exact-form button")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    section.screenshot(path=str(SCREENSHOTS / "provenance-kas.png"))
    shot(page, "job-provenance")
    page.goto(f"/?commit={built['commit'][:7]}")
    expect(page.locator(f"a.job-link:text-is('#{job_id}')")).to_be_visible()
    shot(page, "job-list-by-commit")
