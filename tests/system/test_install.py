"""The installation itself: install.sh is idempotent, `autobuild check` passes, the service
runs unprivileged, and sudo lets it run exactly one program as group members only."""

from __future__ import annotations

import grp
import pwd
import re
import subprocess
from pathlib import Path

from tests.system.helpers import (
    PREFIX,
    RUNNER,
    SERVICE_USER,
    USERS_GROUP,
    cmdline,
    listening_pids,
    proc_status,
    service_pid,
)


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_install_twice_in_a_row_succeeds_and_the_second_run_changes_nothing(installs):
    first, second = installs.first, installs.second
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Done:" in first.stdout
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Done: no changes" in second.stdout, second.stdout
    changed = [line for line in second.stdout.splitlines() if line.startswith("  * ")]
    assert changed == [], second.stdout


def test_autobuild_check_passes_on_the_installed_system(installs, accounts):
    result = run(str(PREFIX / "venv" / "bin" / "autobuild"), "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✗" not in result.stdout
    assert "all checks passed" in result.stdout
    engineers = next(line for line in result.stdout.splitlines() if "has engineers" in line)
    assert accounts.alice.name in engineers and accounts.bob.name in engineers
    assert accounts.outsider.name not in engineers


def _env_port(default: int = 8000) -> int:
    for line in open("/etc/autobuild/autobuild.env"):
        if line.startswith("AUTO_BUILD_PORT="):
            return int(line.split("=", 1)[1].strip() or default)
    return default


def test_the_service_runs_as_autobuild_never_root_and_cannot_read_shadow(installs):
    service = pwd.getpwnam(SERVICE_USER)
    pid = service_pid()
    assert listening_pids(_env_port()) == {pid}, "the process nginx proxies to is not the service"

    status = proc_status(pid)
    assert status["Uid"].split() == [str(service.pw_uid)] * 4
    assert status["Gid"].split() == [str(service.pw_gid)] * 4
    groups = {int(g) for g in status["Groups"].split()}
    assert groups == {service.pw_gid}  # not autobuild-users: it reads builds through its own group
    assert grp.getgrnam("shadow").gr_gid not in groups
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0

    serving = [p for p in _all_pids() if cmdline(p)[1:3] == [str(PREFIX / "venv/bin/autobuild"), "serve"]]
    assert serving == [pid]  # one service process, and it is the unprivileged one

    shadow = run("runuser", "-u", SERVICE_USER, "--", "cat", "/etc/shadow")
    assert shadow.returncode != 0 and "Permission denied" in shadow.stderr
    assert shadow.stdout == ""


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def test_sudo_lets_autobuild_run_only_the_runner_and_only_as_group_members(installs, accounts):
    listing = run("sudo", "-l", "-U", SERVICE_USER)
    assert listing.returncode == 0, listing.stderr
    rules = listing.stdout.split("may run the following commands on", 1)[1].splitlines()[1:]
    rules = [re.sub(r"\s+", " ", rule.strip()) for rule in rules if rule.strip()]
    assert rules == [f"(%{USERS_GROUP}, !root, !{SERVICE_USER}) NOPASSWD: {RUNNER}"]

    def as_service(*cmd: str) -> subprocess.CompletedProcess[str]:
        return run("runuser", "-u", SERVICE_USER, "--", "sudo", "-n", *cmd)

    allowed = as_service("-u", accounts.alice.name, "--", str(RUNNER), "has-token")
    assert allowed.returncode == 0 and allowed.stdout.strip() in ("yes", "no"), allowed.stderr
    for user in ("root", SERVICE_USER, accounts.outsider.name):
        refused = as_service("-u", user, "--", str(RUNNER), "has-token")
        assert refused.returncode != 0 and refused.stdout == "", (user, refused.stdout)
    for command in (["/bin/sh", "-c", "id"], ["/usr/bin/id"], ["/opt/autobuild/venv/bin/python", "-V"]):
        refused = as_service("-u", accounts.alice.name, "--", *command)
        assert refused.returncode != 0 and refused.stdout == "", (command, refused.stdout)


def test_only_engineers_may_create_in_the_jobs_root(installs, accounts):
    """AppArmor's bitbake profile (userns) attaches to workspaces below the jobs root: a local
    user outside the engineers' group must not be able to make a directory there."""
    from tests.system.helpers import JOBS_ROOT

    outsider = accounts.outsider.name
    name = JOBS_ROOT / f"{outsider}-squat"
    try:
        made = run("runuser", "-u", outsider, "--", "mkdir", str(name))
        assert made.returncode != 0 and "Permission denied" in made.stderr
        assert not name.exists()
        listed = run("runuser", "-u", outsider, "--", "ls", str(JOBS_ROOT))
        assert listed.returncode != 0  # nor list who builds
        engineer = accounts.in_group[0].name
        passed = run("runuser", "-u", engineer, "--", "stat", str(JOBS_ROOT / engineer))
        assert passed.returncode == 0, passed.stderr  # an engineer reaches their own directory
    finally:
        subprocess.run(["rm", "-rf", "--", str(name)], check=False)
