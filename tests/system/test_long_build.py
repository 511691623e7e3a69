"""One long build (the stand-in's ~30 s `slow-image`): the token stays secret throughout, and
restarting the service in the middle neither kills the build nor loses its result."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.system.helpers import (
    CTL,
    ProcScanner,
    alive,
    build_log,
    cmdline,
    job,
    job_dir,
    launch_log,
    runner_record,
    secret_forms,
    service_pid,
    stream_log,
    submit,
    wait_for_end,
    wait_for_log,
    wait_for_service,
)

ALICE = "abtest-alice"


@dataclass
class LongBuild:
    job_id: int
    scanner: ProcScanner
    result: dict | None = None
    git_config: bytes = b""  # the clone's .git/config, read while the build ran

    def finish(self, web) -> dict:
        """Wait for the end (once), then stop scanning /proc."""
        if self.result is None:
            self.result = wait_for_end(web, self.job_id, timeout=180)
            self.scanner.stop()
        return self.result


@pytest.fixture(scope="module")
def long_build(alice, accounts, git):
    """slow-image by abtest-alice, whose ~/.gitconfig asks git to store credentials, with every
    process's command line and environment scanned for the token from before it is submitted."""
    gitconfig = accounts.alice.home / ".gitconfig"
    gitconfig.write_text("[credential]\n\thelper = store\n")
    subprocess.run(["chown", f"{accounts.alice.name}:", str(gitconfig)], check=True)
    scanner = ProcScanner(secret_forms(git.token), accounts.alice.uid).start()
    build = LongBuild(submit(alice, git.url, "slow-image"), scanner)
    try:
        wait_for_log(build.job_id, ALICE, "NOTE: Running task 1 of 12")
        # Read now: the workspace (and the clone with it) is removed when the build ends.
        build.git_config = (job_dir(build.job_id, ALICE) / "work" / "src" / ".git" / "config").read_bytes()
        yield build
        build.finish(alice)
    finally:
        scanner.stop()
        gitconfig.unlink(missing_ok=True)


def test_restarting_the_service_mid_build_keeps_the_build_and_records_its_end(alice, long_build):
    job_id = long_build.job_id
    runner_pid = runner_record(job_id, ALICE)["pid"]
    old_service = service_pid()
    assert job(alice, job_id)["status"] == "RUNNING"

    restart = subprocess.run([str(CTL), "restart"], capture_output=True, text=True, timeout=60)
    assert restart.returncode == 0, restart.stdout + restart.stderr
    wait_for_service()
    new_service = service_pid()
    assert new_service != old_service and not alive(old_service)
    # Started from this test's environment, it still gets only the unit's (as systemd would do).
    environ = Path(f"/proc/{new_service}/environ").read_bytes().split(b"\0")
    assert not [v for v in environ if v.startswith(b"AUTOBUILD_SYSTEM_TESTS=")]

    assert alive(runner_pid) and "autobuild.runner" in " ".join(cmdline(runner_pid))
    assert not (job_dir(job_id, ALICE) / "status.json").exists(), "the build ended with the service"
    size = len(build_log(job_id, ALICE))
    time.sleep(3)
    assert len(build_log(job_id, ALICE)) > size, "the build stopped writing its log"
    assert job(alice, job_id)["status"] == "RUNNING"  # the new service took the job over

    ended = long_build.finish(alice)
    assert (ended["status"], ended["exit_code"], ended["reason"]) == ("SUCCESS", 0, None)
    log = build_log(job_id, ALICE)
    assert all(f"NOTE: Running task {n} of 12 " in log for n in range(1, 13))
    assert log.rstrip("\n").endswith("==> Build finished: SUCCESS (exit 0)")
    assert alice.get(f"/api/jobs/{job_id}/artifacts").json() != []
    # The whole log is still there for a reader who comes back after the restart.
    events = stream_log(alice, job_id, ALICE)
    assert "".join(e.data["text"] for e in events if e.kind == "log") == log


def test_the_token_appears_in_no_process_log_git_config_or_credential_store(alice, accounts, git, long_build):
    job_id = long_build.job_id
    ended = long_build.finish(alice)
    assert ended["status"] == "SUCCESS"
    scanner = long_build.scanner
    assert scanner.leaks == set()
    # The scan ran throughout: it saw her runner (the shim execs the venv's python), git's
    # HTTPS transport and the build.
    assert {"python", "git-remote-https", "bitbake"} <= scanner.seen, sorted(scanner.seen)
    assert any(r.authorized for r in git.server.requests), "the clone did not use the token"
    assert not any(git.token in r.target for r in git.server.requests)

    secrets = secret_forms(git.token)
    home = accounts.alice.home
    assert b"[remote \"origin\"]" in long_build.git_config
    assert not any(s in long_build.git_config for s in secrets), ".git/config holds the token"
    assert not (job_dir(job_id, ALICE) / "work").exists()  # the workspace was cleaned up afterwards
    for path in (job_dir(job_id, ALICE) / "logs" / "build.log", launch_log(job_id),
                 home / ".gitconfig"):
        data = path.read_bytes()
        assert not any(s in data for s in secrets), path
    credentials = home / ".git-credentials"
    assert not credentials.exists() or not any(s in credentials.read_bytes() for s in secrets)
    assert "helper = store" in (home / ".gitconfig").read_text()  # the trap was set
