"""Upgrade in place (issue 7, point 7): a server installed from the commit before the new build
boundary, with builds in the old layout, upgraded with this checkout's install.sh.

The module installs commit 4208bcf (from `git archive`, with ITS install.sh), has two engineers
build through it (a success with images, a failure, and a slow build still running), plants a
file in a colleague's job directory as the old layout allowed, then runs this checkout's
install.sh and checks: every old job's page, log and artifacts are still served, byte for byte,
through nginx; no old job file is writable by the other engineer or the group; nothing of the
old layout is left in the jobs root but the link of the still-running build; the service user
left autobuild-users; the running build ends and is recorded SUCCESS with its whole log; and a
new build runs in the new layout. At the end the state from before the module is put back and
this checkout installed again (the other system tests expect it).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from autobuild.domain import layout
from tests.support import standin
from tests.system.conftest import INSTALL_TIMEOUT, REPO_ROOT, _allow_builds_on_a_small_disk, _install
from tests.system.helpers import (
    CTL,
    JOBS_ROOT,
    PREFIX,
    SERVICE_USER,
    USERS_GROUP,
    job,
    save_token,
    signed_in,
    submit,
    wait_for_end,
    wait_for_service,
)

OLD_COMMIT = "4208bcf"
SRV = JOBS_ROOT.parent
DATA = SRV / "data"
LAUNCH = DATA / "launch"
# The old version keeps its session key in autobuild.env; the current one in the key file.
ETC = Path("/etc/autobuild")
ETC_FILES = (ETC / "autobuild.env", ETC / "secret_key")


def run(*cmd: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def as_user(user: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    return run("runuser", "-u", user, "--", *cmd, check=False)


def old_job_dir(job_id: int) -> Path:
    return JOBS_ROOT / str(job_id)


def new_job_dir(owner: str, job_id: int) -> Path:
    return JOBS_ROOT / owner / str(job_id)


def _tail(path: Path) -> str:
    try:
        return f"{path}: ...{path.read_text(errors='replace')[-1500:]}"
    except OSError as exc:
        return f"{path}: {exc.strerror}"


def job_state_on_disk(old: OldJob) -> str | None:
    status = new_job_dir(old.owner, old.id) / "status.json"
    return status.read_text() if status.exists() else None


def whole_log(web: httpx.Client, job_id: int) -> str:
    """The job's log as the API serves it (chunked JSON by byte offset)."""
    text, offset = [], 0
    for _ in range(10_000):
        response = web.get(f"/api/jobs/{job_id}/log", params={"offset": offset})
        assert response.status_code == 200, response.text
        chunk = response.json()
        text.append(chunk["text"])
        if chunk["next_offset"] <= offset:
            break
        offset = chunk["next_offset"]
    return "".join(text)


def artifacts(web: httpx.Client, job_id: int) -> dict[str, bytes]:
    listing = web.get(f"/api/jobs/{job_id}/artifacts")
    assert listing.status_code == 200, listing.text
    out = {}
    for item in listing.json():
        name = item["name"]
        download = web.get(f"/api/jobs/{job_id}/artifacts/{name}")
        assert download.status_code == 200, (name, download.status_code)
        out[name] = download.content
    return out


def wait_for_file_text(path: Path, text: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not (path.is_file() and text in path.read_text(errors="replace")):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} did not appear in {path}")
        time.sleep(0.2)


@dataclass
class OldJob:
    id: int
    owner: str
    status: str  # as recorded by the old service ("RUNNING" for the slow one)
    page: int = 0
    log: str = ""
    artifacts: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Upgrade:
    alice: str
    bob: str
    jobs: list[OldJob]
    running: OldJob
    install: subprocess.CompletedProcess[str]
    planted: Path  # bob's file in alice's old job directory, before the upgrade
    gate: Path  # touch it and the running build goes on
    old_key: str  # AUTO_BUILD_SECRET_KEY the old install wrote into autobuild.env


def _move_aside(backup: Path) -> None:
    """Keep the current install's database and jobs out of the way of the old version."""
    backup.mkdir(mode=0o700, parents=True)
    for path in [*DATA.glob("jobs.db*"), LAUNCH, JOBS_ROOT]:
        if os.path.lexists(path):
            shutil.move(str(path), backup / path.name)
    # ... and its configuration: the old install.sh writes its own, key included.
    (backup / "etc").mkdir(mode=0o700)
    for path in ETC_FILES:
        if os.path.lexists(path):
            shutil.move(str(path), backup / "etc" / path.name)


def _put_back(backup: Path) -> None:
    for path in [*DATA.glob("jobs.db*"), LAUNCH]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
    if JOBS_ROOT.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(JOBS_ROOT)], check=True)
    for path in ETC_FILES:
        path.unlink(missing_ok=True)
    for path in (backup / "etc").iterdir():
        shutil.move(str(path), ETC / path.name)
    (backup / "etc").rmdir()
    for path in backup.iterdir():
        shutil.move(str(path), (SRV if path.name == JOBS_ROOT.name else DATA) / path.name)
    backup.rmdir()


def _old_source(into: Path) -> Path:
    """This repository at OLD_COMMIT, unpacked (CI clones with history)."""
    have = subprocess.run(["git", "-C", str(REPO_ROOT), "cat-file", "-e", f"{OLD_COMMIT}^{{commit}}"],
                          capture_output=True)
    if have.returncode != 0:
        pytest.skip(f"commit {OLD_COMMIT} is not in this clone (a shallow clone?)")
    archive = into / "old.tar"
    run("git", "-C", str(REPO_ROOT), "archive", "--format=tar", "-o", str(archive), OLD_COMMIT)
    source = into / "autobuild-old"
    source.mkdir()
    run("tar", "-x", "-f", str(archive), "-C", str(source))
    return source


def _gated_repo(git, work: Path) -> tuple[str, Path]:
    """The stand-in poky whose ``slow-image`` waits for a gate file after its first line, so
    the build is surely running while the upgrade happens; returns its URL and the gate."""
    gate = Path(f"/tmp/autobuild-upgrade-gate.{os.getpid()}")
    gate.unlink(missing_ok=True)
    fixture = work / "poky-gated"
    shutil.copytree(standin.FIXTURE, fixture, symlinks=True)
    bitbake = fixture / "bitbake" / "bin" / "bitbake"
    text = bitbake.read_text()
    hook = "    signal.signal(signal.SIGINT, interrupted)\n"
    assert hook in text
    bitbake.write_text(text.replace(hook, hook + (
        '    say("NOTE: waiting for the upgrade test")\n'
        f'    while not os.path.exists("{gate}"):\n'
        "        time.sleep(0.2)\n")).replace("SLOW_TASK_SECONDS = 2.5", "SLOW_TASK_SECONDS = 0.3"))
    original = standin.FIXTURE
    standin.FIXTURE = fixture
    try:
        standin.create_standin_repo(git.server.root / "poky-gated.git")
    finally:
        standin.FIXTURE = original
    return git.server.url("poky-gated.git"), gate


def _ctl(action: str) -> None:
    if CTL.exists():
        run(str(CTL), action, check=False)


def _install_old(source: Path, accounts) -> None:
    args = [str(source / "deploy" / "install.sh"), "--no-yocto-deps"]
    for account in accounts.in_group:
        args += ["--add-user", account.name]
    result = subprocess.run(args, capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"the old install.sh failed:\n{result.stdout}\n{result.stderr}"
    _allow_builds_on_a_small_disk()
    run(str(CTL), "restart")  # the old service, with the test's disk setting
    wait_for_service()


@pytest.fixture(scope="module")
def upgraded(accounts, git):
    alice, bob = accounts.alice, accounts.bob
    work = Path(tempfile.mkdtemp(prefix="autobuild-upgrade-test-"))
    backup = SRV / f"before-upgrade-test.{os.getpid()}"
    source = _old_source(work)
    gated_url, gate = _gated_repo(git, work)
    _ctl("stop")
    _move_aside(backup)
    slow = 0
    try:
        _install_old(source, accounts)
        assert USERS_GROUP in run("id", "-nG", SERVICE_USER).stdout.split()  # the old rules
        old_key = next(line.split("=", 1)[1] for line in (ETC / "autobuild.env").read_text().splitlines()
                       if line.startswith("AUTO_BUILD_SECRET_KEY="))

        # --- builds in the old layout ---
        web_a, web_b = signed_in(alice), signed_in(bob)
        for web in (web_a, web_b):
            assert save_token(web, git.token).status_code == 303
        ok = submit(web_a, git.url, "core-image-minimal")
        failed = submit(web_b, git.url, "fail-image")
        ended = {ok: wait_for_end(web_a, ok), failed: wait_for_end(web_b, failed)}
        assert (ended[ok]["status"], ended[failed]["status"]) == ("SUCCESS", "FAILED"), ended
        slow = submit(web_a, gated_url, "slow-image")
        wait_for_file_text(old_job_dir(slow) / "logs" / "build.log", "NOTE: waiting for the upgrade test")

        jobs = [OldJob(ok, alice.name, "SUCCESS"), OldJob(failed, bob.name, "FAILED")]
        for old in jobs:
            web = web_a if old.owner == alice.name else web_b
            old.page = web.get(f"/jobs/{old.id}").status_code
            old.log = whole_log(web, old.id)
            old.artifacts = artifacts(web, old.id)
        assert jobs[0].artifacts, "the successful build published no images"
        # What the old layout let a colleague do: bob drops a file into alice's job directory.
        planted = old_job_dir(ok) / "planted-by-bob.bin"
        assert as_user(bob.name, "sh", "-c", f"echo evil > {planted}").returncode == 0
        web_a.close()
        web_b.close()

        # --- the upgrade: this checkout's install.sh ---
        install = _install(accounts)
        assert install.returncode == 0, f"install.sh failed:\n{install.stdout}\n{install.stderr}"
        wait_for_service()
        yield Upgrade(alice.name, bob.name, jobs, OldJob(slow, alice.name, "RUNNING"), install,
                      planted, gate, old_key)
    finally:
        gate.touch()  # whatever happened, the gated build may end
        deadline = time.monotonic() + 30
        while slow and os.path.lexists(old_job_dir(slow)) and not (new_job_dir(alice.name, slow) / "status.json").exists() \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        gate.unlink(missing_ok=True)
        _ctl("stop")
        _put_back(backup)
        restored = _install(accounts)
        assert restored.returncode == 0, f"restoring the current install failed:\n{restored.stdout}\n{restored.stderr}"
        _ctl("start")
        shutil.rmtree(work, ignore_errors=True)


def test_install_reports_the_migration_and_keeps_the_running_build(upgraded):
    out = upgraded.install.stdout
    assert "brought the old job directories under the new rules" in out, out
    for old in upgraded.jobs:
        assert f"job {old.id}: {old.status} job of {old.owner}: moved to jobs/{old.owner}/{old.id}" in out, out
    slow = upgraded.running
    assert f"link jobs/{slow.id} -> {slow.owner}/{slow.id} kept until it ends" in out, out


def test_the_upgrade_moves_the_session_key_from_the_environment_into_the_key_file(upgraded):
    key_file = ETC / "secret_key"
    assert key_file.read_text() == upgraded.old_key + "\n"  # the same key: sessions go on
    st = key_file.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, grp.getgrnam(SERVICE_USER).gr_gid, 0o640)
    env = (ETC / "autobuild.env").read_text()
    assert not re.search(r"^\s*AUTO_BUILD_SECRET_KEY\s*=", env, re.M)  # only where the file is
    assert f"wrote {key_file}" in upgraded.install.stdout and "sessions go on" in upgraded.install.stdout


def test_the_service_user_left_the_engineers_group_and_sudo_refuses_root_and_itself(upgraded):
    assert USERS_GROUP not in run("id", "-nG", SERVICE_USER).stdout.split()
    listing = run("sudo", "-l", "-U", SERVICE_USER).stdout
    assert f"(%{USERS_GROUP}, !root, !{SERVICE_USER}) NOPASSWD: {PREFIX}/runner/run_job.sh" in listing
    def refused_as(runas: str) -> bool:
        tried = as_user(SERVICE_USER, "sudo", "-n", "-u", runas, "--", f"{PREFIX}/runner/run_job.sh", "has-token")
        return tried.returncode != 0 and tried.stdout == ""

    assert refused_as("root") and refused_as(SERVICE_USER)
    # Even if someone put the service back into the engineers' group (the issue's attack ran
    # builds as autobuild itself), sudo still refuses it as itself and as root.
    run("gpasswd", "-a", SERVICE_USER, USERS_GROUP)
    try:
        assert refused_as(SERVICE_USER) and refused_as("root")
        for runas in ("root", SERVICE_USER):
            listed = run("sudo", "-n", "-l", "-U", SERVICE_USER, "-u", runas, f"{PREFIX}/runner/run_job.sh",
                         check=False)
            assert listed.returncode != 0, runas
    finally:
        run("gpasswd", "-d", SERVICE_USER, USERS_GROUP)


def test_nothing_of_the_old_layout_is_left_but_the_running_builds_link(upgraded):
    slow = upgraded.running
    root = os.lstat(JOBS_ROOT)
    assert (pwd.getpwuid(root.st_uid).pw_name, grp.getgrgid(root.st_gid).gr_name,
            stat.S_IMODE(root.st_mode)) == (SERVICE_USER, SERVICE_USER, layout.JOBS_ROOT_MODE_SHOWN)
    for entry in os.scandir(JOBS_ROOT):
        if entry.name.isdigit():
            assert entry.is_symlink() and int(entry.name) == slow.id, entry.name
            assert os.readlink(entry.path) == f"{slow.owner}/{slow.id}"
        else:
            assert entry.is_dir(follow_symlinks=False), entry.name
            assert pwd.getpwuid(entry.stat(follow_symlinks=False).st_uid).pw_name == entry.name
    for old in [*upgraded.jobs, slow]:
        directory = new_job_dir(old.owner, old.id)
        assert directory.is_dir() and not directory.is_symlink()
        for name in ("job.json", "artifact-patterns", "build-settings", "launch.log"):
            assert not os.path.lexists(directory / name), name
        assert (LAUNCH / f"{old.id}.log").is_file()
    assert not os.path.lexists(new_job_dir(upgraded.alice, upgraded.jobs[0].id) / upgraded.planted.name)


def test_no_old_job_file_is_writable_by_the_colleague_or_the_group(upgraded):
    group = grp.getgrnam(SERVICE_USER).gr_gid
    for old in upgraded.jobs:
        owner_uid = pwd.getpwnam(old.owner).pw_uid
        top = new_job_dir(old.owner, old.id)
        for dirpath, dirnames, filenames in os.walk(top):
            for name in ["", *dirnames, *filenames]:
                path = Path(dirpath, name) if name else Path(dirpath)
                st = os.lstat(path)
                assert (st.st_uid, st.st_gid) == (owner_uid, group), path
                if not stat.S_ISLNK(st.st_mode):
                    assert not st.st_mode & 0o027, f"{path} is {stat.S_IMODE(st.st_mode):o}"
        colleague = upgraded.bob if old.owner == upgraded.alice else upgraded.alice
        for attempt in (["touch", str(top / "artifacts" / "x")], ["ls", str(top)],
                        ["mv", str(top), str(top.parent / "stolen")], ["ls", str(top.parent)]):
            assert as_user(colleague, *attempt).returncode != 0, attempt


def test_old_pages_logs_and_artifacts_are_still_served_byte_for_byte(upgraded, accounts):
    webs = {upgraded.alice: signed_in(accounts.alice), upgraded.bob: signed_in(accounts.bob)}
    try:
        for old in upgraded.jobs:
            web = webs[old.owner]
            assert old.page == 200 and web.get(f"/jobs/{old.id}").status_code == 200
            current = job(web, old.id)
            assert current["status"] == old.status
            assert whole_log(web, old.id) == old.log
            assert artifacts(web, old.id) == old.artifacts
            # ...and to the colleague too (every engineer may read every job).
            other = webs[upgraded.bob if old.owner == upgraded.alice else upgraded.alice]
            assert artifacts(other, old.id) == old.artifacts
    finally:
        for web in webs.values():
            web.close()


def test_the_running_build_ends_recorded_with_its_whole_log_then_its_link_goes(upgraded, accounts):
    slow = upgraded.running
    assert job_state_on_disk(slow) is None, "the gated build ended before the upgrade was checked"
    upgraded.gate.touch()
    web = signed_in(accounts.alice)
    try:
        ended = wait_for_end(web, slow.id, timeout=120)
        assert (ended["status"], ended["exit_code"]) == ("SUCCESS", 0), (ended, ended.get("reason"))
        log = whole_log(web, slow.id)
        assert all(f"NOTE: Running task {n} of 12 " in log for n in range(1, 13)), log[-2000:]
        assert log.rstrip("\n").endswith("==> Build finished: SUCCESS (exit 0)")
        assert artifacts(web, slow.id)
    finally:
        web.close()
    result = run(str(PREFIX / "venv" / "bin" / "autobuild"), "upgrade-layout")
    assert "link removed" in result.stdout, result.stdout
    assert not os.path.lexists(old_job_dir(slow.id))
    for dirpath, dirnames, filenames in os.walk(new_job_dir(slow.owner, slow.id)):
        for name in [*dirnames, *filenames]:
            st = os.lstat(Path(dirpath, name))
            assert stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o027, Path(dirpath, name)


def test_a_new_build_runs_in_the_new_layout(upgraded, accounts, git):
    web = signed_in(accounts.bob)
    try:
        job_id = submit(web, git.url, "core-image-minimal")
        ended = wait_for_end(web, job_id)
        assert ended["status"] == "SUCCESS", (ended, _tail(LAUNCH / f"{job_id}.log"),
                                              _tail(new_job_dir(upgraded.bob, job_id) / "logs" / "build.log"))
        assert new_job_dir(upgraded.bob, job_id).is_dir()
        assert not os.path.lexists(old_job_dir(job_id))
        assert artifacts(web, job_id)
    finally:
        web.close()
