"""The runner (run_job.sh shim -> autobuild.runner) for real: HTTPS clone with the token, the
stand-in bitbake, artifacts, status, the job directory, cancel, token and login modes."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.support.standin import create_layer_repo, create_standin_repo

from .conftest import MACHINE, RUNNER, TARGET, TOKEN, group_members, session_members

LINK = f"{TARGET}-{MACHINE}"


def assert_finished(build, status: str, code: int) -> None:
    assert build.returncode == code, build.log
    assert build.status["status"] == status
    assert build.status["exit_code"] == code
    assert set(build.status) == {"status", "exit_code", "finished_at"}
    finished = datetime.strptime(build.status["finished_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(finished.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=2)
    assert not (build.job_dir / "runner.json").exists() or build.job_dir.joinpath(
        "runner.json").stat().st_mode & 0o777 == 0o640
    assert build.log.rstrip("\n").splitlines()[-1] == f"==> Build finished: {status} (exit {code})"


def by_suffix(names, suffix: str) -> list[str]:
    return sorted(n for n in names if n.endswith(suffix))


def assert_copies_of_deploy(build, machine: str = MACHINE) -> None:
    """Every artifact is a regular file, byte for byte the deployed image (links resolved)."""
    deploy = build.deploy_dir / machine
    for name, path in build.artifacts.items():
        mode = path.lstat().st_mode
        assert stat.S_ISREG(mode), f"{name} is not a regular file"
        assert stat.S_IMODE(mode) == 0o640
        assert path.read_bytes() == (deploy / name).resolve().read_bytes(), name


# --- successful builds -----------------------------------------------------------------------

def test_branch_build_succeeds_and_collects_the_default_images(runner, git):
    build = runner.build(1, git.url, "main")

    assert_finished(build, "SUCCESS", 0)
    names = set(build.artifacts)
    assert len(by_suffix(names, ".rootfs.bin")) == 1
    assert len(by_suffix(names, ".rootfs.mtd")) == 1
    assert len(by_suffix(names, ".rootfs.static.mtd")) == 1  # "*.mtd" matches it too
    assert f"{LINK}.bin" in names  # Yocto's link to the newest image, resolved
    assert f"u-boot-{MACHINE}.bin" in names  # a link to elsewhere in the build tree
    assert not {"evil.bin", "outside-build.bin", "dangling.bin"} & names
    assert not by_suffix(names, ".mtd.tar") and not by_suffix(names, ".txt")
    assert_copies_of_deploy(build)
    assert b"version=1.1" in build.artifacts[f"{LINK}.bin"].read_bytes()
    assert (build.artifacts[f"{LINK}.bin"].read_bytes()
            == build.artifacts[by_suffix(names, ".rootfs.bin")[0]].read_bytes())

    log = build.log
    headers = [f"==> Cloning {git.url}", "==> Checking out main",
               f"==> bitbake {TARGET} (MACHINE={MACHINE})", "==> Collecting artifacts",
               "==> Build finished: SUCCESS (exit 0)"]
    positions = [log.index(h) for h in headers]
    assert positions == sorted(positions)
    assert f"HEAD is now at {git.main_sha[:7]}" in log
    # 16 sstate tasks of the image's dependencies (no SSTATE_DIR: all missed) and its 12 own
    assert "NOTE: Tasks Summary: Attempted 28 tasks of which 0 didn't need" in log
    assert "skipped evil.bin: its link leads outside the build tree" in log
    assert "skipped outside-build.bin: its link leads outside the build tree" in log


def test_job_files_are_readable_by_the_service_group_only_and_work_is_private(runner, git):
    build = runner.build(1, git.url, "main")

    assert_finished(build, "SUCCESS", 0)
    owner_dir = build.job_dir.parent
    for path in (owner_dir, build.job_dir, build.job_dir / "logs", build.job_dir / "artifacts"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o2750, path
    assert stat.S_IMODE((build.job_dir / "work").stat().st_mode) == 0o700
    for name in ("status.json", "runner.json", "artifacts.sha256", "logs/build.log"):
        assert stat.S_IMODE((build.job_dir / name).stat().st_mode) == 0o640, name
    for path in build.artifacts.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    for path in build.job_dir.rglob("*"):
        if "work" not in path.relative_to(build.job_dir).parts:
            assert path.lstat().st_uid == os.getuid() and not path.is_symlink(), path
    record = runner.record(1)
    assert set(record) == {"job_id", "pid", "pgid", "start_time"} and record["job_id"] == 1


def test_tag_build_with_plugin_patterns_collects_the_extra_images(runner, git):
    patterns = ["*.bin", "*.mtd", "*.mtd.tar", "*.static.mtd*"]
    build = runner.build(1, git.url, "v1.0", machine="raspberrypi4-64", patterns=patterns)

    assert_finished(build, "SUCCESS", 0)
    names = set(build.artifacts)
    assert len(by_suffix(names, ".rootfs.mtd.tar")) == 1
    assert len(by_suffix(names, ".rootfs.static.mtd")) == 1
    assert f"{TARGET}-raspberrypi4-64.bin" in names
    assert "evil.bin" not in names
    assert_copies_of_deploy(build, "raspberrypi4-64")
    assert b"version=1.0" in build.artifacts[f"{TARGET}-raspberrypi4-64.bin"].read_bytes()
    assert 'MACHINE              = "raspberrypi4-64"' in build.log


@pytest.mark.parametrize("length", [7, 40])
def test_commit_build_checks_out_that_commit(runner, git, length):
    build = runner.build(1, git.url, git.tag_sha[:length])

    assert_finished(build, "SUCCESS", 0)
    assert f"HEAD is now at {git.tag_sha[:7]}" in build.log
    assert b"version=1.0" in build.artifacts[f"{LINK}.bin"].read_bytes()


@pytest.mark.parametrize("pattern", ["../*", "-rf", ".*", "a/b", ""])
def test_an_order_with_an_invalid_pattern_is_refused_before_anything_runs(runner, git, pattern):
    before = len(git.server.requests)
    build = runner.build(1, git.url, "main", patterns=["*.bin", pattern])

    assert build.returncode == 2
    assert build.stderr.startswith("run_job.sh: invalid build order: ")
    assert not build.job_dir.exists() and len(git.server.requests) == before


def test_no_match_is_not_an_error(runner, git):
    build = runner.build(1, git.url, "main", patterns=["*.wic"])

    assert_finished(build, "SUCCESS", 0)
    assert build.artifacts == {}
    assert "no artifacts matched *.wic" in build.log


def test_shared_caches_and_parallelism_reach_bitbake_through_auto_conf(runner, git, tmp_path):
    cache = tmp_path / "cache"
    (cache / "downloads").mkdir(parents=True)
    (cache / "sstate-cache").mkdir()
    settings = {"cache_dir": str(cache), "hashserve": "hashserv.example.com:8686",
                "bb_number_threads": 6, "parallel_make": 12, "keep_workspace": True}
    build = runner.build(1, git.url, "main", settings=settings)

    assert_finished(build, "SUCCESS", 0)
    assert f'DL_DIR               = "{cache}/downloads"' in build.log
    assert f'SSTATE_DIR           = "{cache}/sstate-cache"' in build.log
    assert 'BB_HASHSERVE         = "hashserv.example.com:8686"' in build.log
    assert 'BB_NUMBER_THREADS    = "6"' in build.log
    assert 'PARALLEL_MAKE        = "-j 12"' in build.log
    conf = build.job_dir / "work" / "src" / "build" / "conf"
    auto = (conf / "auto.conf").read_text()
    assert f'DL_DIR = "{cache}/downloads"\n' in auto and 'PARALLEL_MAKE = "-j 12"\n' in auto
    assert "DL_DIR" not in (conf / "local.conf").read_text()  # the user's file is untouched
    assert stat.S_IMODE((build.job_dir / "work").stat().st_mode) == 0o700


def test_what_a_build_adds_to_the_caches_is_group_writable(runner, git, tmp_path):
    # umask 002 in the build: files in the shared caches stay writable for the next user.
    build = runner.build(1, git.url, "main")

    assert_finished(build, "SUCCESS", 0)
    conf = build.job_dir / "work" / "src" / "build" / "conf" / "local.conf"
    assert stat.S_IMODE(conf.stat().st_mode) & 0o020


def test_missing_caches_are_not_used(runner, git, tmp_path):
    build = runner.build(1, git.url, "main",
                         settings={"cache_dir": str(tmp_path / "absent"), "keep_workspace": True})

    assert_finished(build, "SUCCESS", 0)
    assert "DL_DIR" not in build.log and "BB_HASHSERVE" not in build.log
    assert "NOTE: no shared caches" in build.log
    assert not (build.job_dir / "work" / "src" / "build" / "conf" / "auto.conf").exists()


BAD_SETTINGS = {
    "hashserve subst": ({"hashserve": "$(touch /tmp/x):1"}, None),
    "threads zero": ({"bb_number_threads": 0}, None),
    "threads text": ({"bb_number_threads": "6"}, None),
    "parallel make shell": ({"parallel_make": "-j 8; rm -rf /"}, None),
    "cache dir relative": ({"cache_dir": "cache"}, None),
    "cache dir dotdot": ({"cache_dir": "/srv/../etc"}, None),
    "keep workspace text": ({"keep_workspace": "1"}, None),
    "cancel grace text": ({"cancel_grace": "20"}, None),
    "unknown setting": ({"something_newer": 1}, None),
    "kas file escape": ({}, "../../etc/passwd.yml"),
    "kas file absolute": ({}, "/etc/kas.yml"),
}


@pytest.mark.parametrize("settings,kas_file", list(BAD_SETTINGS.values()), ids=list(BAD_SETTINGS))
def test_bad_settings_refuse_the_order(runner, git, settings, kas_file):
    build = runner.build(1, git.url, "main", settings=settings, kas_file=kas_file)

    assert build.returncode == 2
    assert build.stderr.startswith("run_job.sh: invalid build order: ")
    assert not build.job_dir.exists()


def test_submodules_are_cloned_with_the_token(runner, git):
    root = git.bare.parent
    layer_sha = create_layer_repo(root / "meta-extra.git")
    create_standin_repo(root / "poky-sub.git", {"meta-extra": ("../meta-extra.git", layer_sha)})

    build = runner.build(1, git.server.url("poky-sub.git"), "main")

    assert_finished(build, "SUCCESS", 0)
    assert "==> Updating submodules" in build.log
    layer = build.job_dir / "work" / "src" / "meta-extra" / "conf" / "layer.conf"
    assert layer.read_text() == 'BBFILE_COLLECTIONS += "meta-extra"\n'


def test_token_is_not_sent_to_a_submodule_on_another_host(runner, git):
    root = git.bare.parent
    layer_sha = create_layer_repo(root / "meta-foreign.git")
    foreign = f"https://localhost:{git.server.port}/meta-foreign.git"  # same server, other name
    create_standin_repo(root / "poky-foreign.git", {"meta-foreign": (foreign, layer_sha)})
    before = len(git.server.requests)

    build = runner.build(1, git.server.url("poky-foreign.git"), "main")

    assert build.returncode != 0 and build.status["status"] == "FAILED"
    assert "git-askpass: not sending the GitLab token to https://localhost:" in build.log
    foreign_requests = [r for r in git.server.requests[before:] if "meta-foreign" in r.target]
    assert foreign_requests and not any(r.authorized for r in foreign_requests)


# --- failures --------------------------------------------------------------------------------

def test_failing_target_ends_failed_with_bitbake_errors(runner, git):
    build = runner.build(1, git.url, "main", target="fail-image")

    assert_finished(build, "FAILED", 1)
    log = build.log
    assert "ERROR: fail-image-1.0-r0 do_compile: oe_runmake failed" in log
    match = re.search(r"ERROR: Logfile of failure stored in: (\S+)", log)
    assert match and "oe_runmake failed" in Path(match.group(1)).read_text()
    assert "Summary: 1 task failed:" in log
    assert "ERROR: bitbake fail-image failed (exit 1)" in log
    assert "==> Collecting artifacts" not in log
    assert build.artifacts == {}


def test_wrong_token_fails_with_a_clear_message(runner, git, user_token):
    user_token("glpat-not-the-right-one")
    before = len(git.server.requests)

    build = runner.build(1, git.url, "main")

    assert_finished(build, "FAILED", 128)
    assert "Authentication failed" in build.log
    assert (f"ERROR: could not clone {git.url}: check the URL, and that the GitLab token saved "
            "in Settings can read this repository") in build.log
    sent = git.server.requests[before:]
    assert any(dict(r.headers).get("Authorization") for r in sent)  # it did try a token
    assert not any(r.authorized for r in sent)


def test_missing_token_is_reported_and_the_clone_still_tried(runner, git, user_token):
    user_token(None)
    before = len(git.server.requests)

    build = runner.build(1, git.url, "main")

    assert_finished(build, "FAILED", 128)
    home = pwd.getpwuid(os.getuid()).pw_dir
    assert (f"NOTE: no GitLab token on file ({home}/.autobuild/gitlab_token): cloning without "
            "one works only for public repositories") in build.log
    assert len(git.server.requests) > before


@pytest.mark.parametrize("ref", ["no-such-branch", "deadbeef"])
def test_unknown_ref_fails_with_one_clear_line(runner, git, ref):
    build = runner.build(1, git.url, ref)

    assert_finished(build, "FAILED", 1)
    assert f"ERROR: '{ref}' is not a branch, tag or commit of {git.url}\n" in build.log
    assert "==> bitbake" not in build.log


# --- the token stays secret ------------------------------------------------------------------

def _sample_session(sid: int, stop: threading.Event, seen: list[bytes],
                    record: Path | None = None) -> None:
    """Collect the argv and environment of every process in the runner's session and in the
    build's own session (named in the runner's record)."""
    build_sid = None
    while not stop.is_set():
        if build_sid is None and record is not None and record.exists():
            try:
                build_sid = json.loads(record.read_text())["pgid"]
            except ValueError:
                pass
        pids = session_members(sid) + (session_members(build_sid) if build_sid else [])
        for pid in pids:
            for name in ("cmdline", "environ"):
                try:
                    seen.append(Path(f"/proc/{pid}/{name}").read_bytes())
                except OSError:
                    pass
        time.sleep(0.002)


def test_token_never_appears_in_argv_env_urls_config_or_log(runner, git):
    credentials = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".git-credentials"
    credentials_before = credentials.read_bytes() if credentials.exists() else None
    before = len(git.server.requests)
    process = subprocess.Popen([str(RUNNER), "build", "1"], env=runner.env(),
                               stdin=subprocess.PIPE, start_new_session=True)
    process.stdin.write(runner.order(1, git.url, "main").encode())
    process.stdin.close()
    seen: list[bytes] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_session, args=(
        process.pid, stop, seen, runner.job_path(1) / "runner.json"))
    sampler.start()
    try:
        assert process.wait(timeout=60) == 0
    finally:
        stop.set()
        sampler.join()

    token = TOKEN.encode()
    assert any(b"git\x00clone" in blob for blob in seen), "the sampler never saw the clone"
    assert not [blob for blob in seen if token in blob]
    job_dir = runner.job_path(1)
    assert TOKEN not in (job_dir / "logs" / "build.log").read_text()
    git_dir = job_dir / "work" / "src" / ".git"
    for path in git_dir.rglob("*"):
        if path.is_file() and "objects" not in path.relative_to(git_dir).parts:
            assert token not in path.read_bytes(), path
    assert (git_dir / "config").read_text().count(git.url) == 1  # the plain URL, no userinfo
    after = credentials.read_bytes() if credentials.exists() else None
    assert after == credentials_before
    sent = git.server.requests[before:]
    assert any(r.authorized for r in sent)
    assert not [r for r in sent if TOKEN in r.request_line or TOKEN in r.target]


# --- the order and the arguments ---------------------------------------------------------------

BAD_ORDERS = {
    "url option": ({"repo_url": "--upload-pack=touch /tmp/pwned"}, "repo_url"),
    "url http": ({"repo_url": "http://127.0.0.1/poky.git"}, "https"),
    "url userinfo": ({"repo_url": "https://oauth2:glpat-x@127.0.0.1/poky.git"}, "user name"),
    "url query": ({"repo_url": "https://127.0.0.1/poky.git?a=1"}, "query"),
    "url ext": ({"repo_url": "ext::sh -c touch% /tmp/pwned"}, "repo_url"),
    "url file": ({"repo_url": "file:///etc"}, "https"),
    "url dotdot": ({"repo_url": "https://127.0.0.1/a/../poky.git"}, ". or .."),
    "url spaces around": ({"repo_url": " https://127.0.0.1/poky.git"}, "spaces"),
    "ref option": ({"ref": "-x"}, "ref"),
    "ref upload-pack": ({"ref": "--upload-pack=touch /tmp/pwned"}, "ref"),
    "ref dotdot": ({"ref": "main..x"}, "ref"),
    "ref lock": ({"ref": "refs/x.lock"}, "ref"),
    "ref reflog": ({"ref": "@{-1}"}, "ref"),
    "ref space": ({"ref": "a b"}, "ref"),
    "machine slash": ({"machine": "qemu/x86"}, "machine"),
    "machine subst": ({"machine": "$(id)"}, "machine"),
    "target option": ({"target": "-c"}, "target"),
    "target semicolon": ({"target": "a;b"}, "target"),
    "job id mismatch": ({"job_id": 2}, "does not match"),
    "job id text": ({"job_id": "1"}, "job_id"),
    "other owner": ({"owner": "someone-else"}, "belongs to someone-else"),
    "owner not a name": ({"owner": "../etc"}, "owner"),
    "jobs root relative": ({"jobs_root": "jobs"}, "jobs_root"),
    "jobs root dotdot": ({"jobs_root": "/tmp/../etc"}, "jobs_root"),
    "unknown field": ({"hook": "touch /tmp/pwned"}, "unknown fields"),
    "not json": (None, "not JSON"),
}


@pytest.mark.parametrize("change,message", list(BAD_ORDERS.values()), ids=list(BAD_ORDERS))
def test_bad_orders_are_refused_before_anything_runs(runner, git, change, message):
    order = json.loads(runner.order(1, git.url, "main"))
    before = len(git.server.requests)

    if change is None:
        stdin = "{not json"
    else:
        order.update(change)
        stdin = json.dumps(order)
    result = runner.run("build", "1", stdin=stdin)

    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("run_job.sh: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert len(git.server.requests) == before
    assert list(runner.jobs_root.iterdir()) == []  # nothing written, not even <owner>/


def test_an_order_larger_than_64_kib_is_refused(runner, git):
    order = json.loads(runner.order(1, git.url, "main"))
    order["artifact_patterns"] = ["*.bin"] * 8000
    result = runner.run("build", "1", stdin=json.dumps(order))
    assert result.returncode == 2 and "more than 65536 bytes" in result.stderr
    assert list(runner.jobs_root.iterdir()) == []


@pytest.mark.parametrize("args", [
    ["1", "https://127.0.0.1/x.git", "main", MACHINE, TARGET],  # the old form
    ["build"], ["build", "1", "2"], ["build", "-1"], ["build", "1a"], ["build", "0"],
    ["build", "1234567890123"], ["cancel"], ["purge", "x"], ["has-token", "1"],
    ["check-login", "extra"], ["--check-login"], ["-x"], [],
])
def test_wrong_arguments_are_a_usage_error(runner, args):
    result = runner.run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("run_job.sh: ")
    assert "usage: run_job.sh build <job_id>" in result.stderr
    assert list(runner.jobs_root.iterdir()) == []


def test_refuses_root_through_sudo_and_the_service_user_itself(runner, git):
    me = pwd.getpwuid(os.getuid()).pw_name
    order = runner.order(1, git.url, "main")
    as_caller = runner.run("build", "1", stdin=order, env=runner.env(SUDO_USER=me))
    assert as_caller.returncode == 2 and "the user who called sudo" in as_caller.stderr
    if os.getuid() == 0:
        as_root = runner.run("build", "1", stdin=order, env=runner.env(SUDO_UID="1000"))
        assert as_root.returncode == 2 and "as root through sudo" in as_root.stderr
    assert list(runner.jobs_root.iterdir()) == []


# --- the job directory: made by the runner, exclusively -------------------------------------

def test_a_job_that_already_ran_is_refused_and_left_alone(runner, git):
    first = runner.build(1, git.url, "main")
    assert_finished(first, "SUCCESS", 0)
    status = (first.job_dir / "status.json").read_bytes()

    again = runner.build(1, git.url, "main")

    assert again.returncode == 2 and "job 1 has already run" in again.stderr
    assert (first.job_dir / "status.json").read_bytes() == status


@pytest.mark.parametrize("kind", ["dir", "file", "symlink", "fifo"])
def test_a_pre_existing_job_name_is_refused(runner, git, tmp_path, kind):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    owner_dir = runner.jobs_root / runner.owner
    owner_dir.mkdir(mode=0o2750)
    planted = owner_dir / "1"
    if kind == "dir":
        planted.mkdir()
    elif kind == "file":
        planted.write_text("x")
    elif kind == "symlink":
        planted.symlink_to(elsewhere)
    else:
        os.mkfifo(planted)

    result = runner.run("build", "1", stdin=runner.order(1, git.url, "main"))

    assert result.returncode == 2 and "job 1 has already run" in result.stderr
    assert list(elsewhere.iterdir()) == []
    if kind == "dir":
        assert list(planted.iterdir()) == []


def test_an_owner_directory_squatted_by_another_user_is_refused(runner, git):
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory to another user")
    squatted = runner.jobs_root / runner.owner
    squatted.mkdir(mode=0o777)
    os.chown(squatted, 65534, 65534)
    before = len(git.server.requests)

    result = runner.run("build", "1", stdin=runner.order(1, git.url, "main"))

    assert result.returncode == 2
    assert f"{squatted} belongs to " in result.stderr and "ask an admin to remove it" in result.stderr
    assert list(squatted.iterdir()) == [] and len(git.server.requests) == before


@pytest.mark.parametrize("kind", ["symlink", "file", "fifo"])
def test_an_owner_name_that_is_not_a_directory_is_refused(runner, git, tmp_path, kind):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    planted = runner.jobs_root / runner.owner
    if kind == "symlink":
        planted.symlink_to(elsewhere)
    elif kind == "file":
        planted.write_text("x")
    else:
        os.mkfifo(planted)

    result = runner.run("build", "1", stdin=runner.order(1, git.url, "main"), timeout=20)

    assert result.returncode == 2 and "ask an admin to remove it" in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_a_loose_owner_directory_is_tightened(runner, git):
    owner_dir = runner.jobs_root / runner.owner
    owner_dir.mkdir()
    owner_dir.chmod(0o777)

    build = runner.build(1, git.url, "main")

    assert_finished(build, "SUCCESS", 0)
    assert stat.S_IMODE(owner_dir.stat().st_mode) == 0o2750


def test_a_jobs_root_anyone_may_write_without_the_sticky_bit_is_refused(runner, git):
    runner.jobs_root.chmod(0o777)
    try:
        result = runner.run("build", "1", stdin=runner.order(1, git.url, "main"))
    finally:
        runner.jobs_root.chmod(0o755)
    assert result.returncode == 2 and "without the sticky bit" in result.stderr
    assert list(runner.jobs_root.iterdir()) == []


# --- cancellation ----------------------------------------------------------------------------

def test_sigterm_mid_build_records_cancelled_and_leaves_no_process(runner, git):
    process = runner.start(1, git.url, "main", target="slow-image")
    runner.wait_for_log(1, "NOTE: Running task 1 of 12")
    job_dir = runner.job_path(1)
    record = runner.record(1)
    pgid = record["pgid"]
    assert record["pid"] == process.pid and group_members(pgid)

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=30) == 143
    status = json.loads((job_dir / "status.json").read_text())
    assert (status["status"], status["exit_code"]) == ("CANCELLED", 143)
    log = (job_dir / "logs" / "build.log").read_text()
    assert "==> Cancelling: SIGTERM received, stopping the build" in log
    assert log.rstrip("\n").splitlines()[-1] == "==> Build finished: CANCELLED (exit 143)"
    assert group_members(pgid) == [] and session_members(process.pid) == []


def test_cancel_mode_returns_at_once_and_the_runner_escalates(runner, git):
    process = runner.start(1, git.url, "main", target="slow-image",
                           settings={"cache_dir": str(runner.jobs_root.parent / "no-cache"),
                                     "keep_workspace": True, "cancel_grace": 1})
    runner.wait_for_log(1, "NOTE: Running task 1 of 12")
    job_dir = runner.job_path(1)
    pgid = runner.record(1)["pgid"]

    started = time.monotonic()
    result = runner.cancel(1)

    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 5
    assert process.wait(timeout=30) == 130
    status = json.loads((job_dir / "status.json").read_text())
    assert (status["status"], status["exit_code"]) == ("CANCELLED", 130)
    log = (job_dir / "logs" / "build.log").read_text()
    assert "==> Cancelling: SIGINT received, stopping the build" in log
    assert "Keyboard Interrupt, closing down..." in log  # bitbake got its SIGINT first
    # The stand-in's worker ignores SIGINT, so the grace period ends in SIGTERM.
    assert "==> Cancelling: still running after 1s, sending SIGTERM" in log
    assert group_members(pgid) == [] and session_members(process.pid) == []

    again = runner.cancel(1)
    assert again.returncode == 3 and "not running" in again.stdout


def test_cancel_before_the_build_starts_stops_it_at_once(runner, git):
    owner_dir = runner.jobs_root / runner.owner
    owner_dir.mkdir(mode=0o2750)
    (owner_dir / "1").mkdir(mode=0o2750)  # the runner is making it right now
    result = runner.cancel(1)
    assert result.returncode == 0 and "will stop as soon as it starts" in result.stdout
    assert (owner_dir / "1" / "cancel-requested").is_file()
    shutil.rmtree(owner_dir / "1")

    # A cancel-requested note in a job directory the runner made itself counts too.
    process = runner.start(1, git.url, "main", target="slow-image")
    deadline = time.monotonic() + 10
    while not (runner.job_path(1) / "runner.json").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.cancel(1).returncode == 0
    assert process.wait(timeout=30) == 130
    assert runner.job_path(1).joinpath("status.json").read_text().count('"CANCELLED"') == 1


def test_a_signal_before_the_build_starts_stops_it(runner, git):
    build = runner.build(1, git.url, "main")  # a finished one, for comparison
    assert_finished(build, "SUCCESS", 0)
    process = runner.start(2, git.url, "main")
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=30)
    job_dir = runner.job_path(2)
    if job_dir.exists():  # the signal came after the job directory was made
        status = json.loads((job_dir / "status.json").read_text())
        assert (status["status"], code) in (("CANCELLED", 130), ("SUCCESS", 0))


def test_cancel_of_an_unknown_or_finished_job_says_not_running(runner, git):
    started = time.monotonic()
    assert runner.cancel(42).returncode == 3  # waits up to 5 s for the job dir
    assert time.monotonic() - started < 10
    assert runner.run("cancel", "-1").returncode == 2
    assert runner.run("cancel").returncode == 2
    runner.build(1, git.url, "main")
    result = runner.cancel(1)
    assert result.returncode == 3 and "job 1 is not running" in result.stdout


def test_cancel_kills_what_is_left_when_the_runner_was_killed(runner, git):
    process = runner.start(1, git.url, "main", target="slow-image")
    runner.wait_for_log(1, "NOTE: Running task 1 of 12")
    pgid = runner.record(1)["pgid"]
    process.kill()
    process.wait(timeout=10)
    assert group_members(pgid)

    result = runner.cancel(1)

    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 10
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_members(pgid) == []
    assert runner.cancel(1).returncode == 3


def test_cancel_does_not_trust_a_record_naming_someone_elses_process(runner, git):
    if os.geteuid() != 0:
        pytest.skip("needs root to start a process as another user")
    process = runner.start(1, git.url, "main", target="slow-image")
    runner.wait_for_log(1, "NOTE: Running task 1 of 12")
    job_dir = runner.job_path(1)
    record = runner.record(1)
    process.kill()
    process.wait(timeout=10)
    os.killpg(record["pgid"], signal.SIGKILL)
    victim = subprocess.Popen(["sleep", "60"], start_new_session=True,
                              user=65534, group=65534, extra_groups=[])
    try:
        for forged in ({**record, "pid": victim.pid, "pgid": victim.pid},
                       {**record, "pgid": victim.pid}):
            (job_dir / "runner.json").write_text(json.dumps(forged))
            assert runner.cancel(1).returncode == 3
        (job_dir / "runner.json").unlink()
        (job_dir / "runner.json").symlink_to(job_dir / "logs" / "build.log")
        refused = runner.cancel(1)
        assert refused.returncode not in (0, 3) and "runner.json" in refused.stderr
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


# --- purge -----------------------------------------------------------------------------------

def test_purge_removes_the_whole_job_directory(runner, git):
    build = runner.build(1, git.url, "main")
    read_only = build.job_dir / "work" / "gomod"
    read_only.mkdir()
    (read_only / "x.go").write_text("package x\n")
    read_only.chmod(0o555)

    result = runner.purge(1)

    assert result.returncode == 0, result.stderr
    assert not build.job_dir.exists() and build.job_dir.parent.exists()
    assert runner.purge(1).returncode == 0  # already gone
    assert runner.purge(99).returncode == 0


def test_purge_never_follows_links_and_refuses_a_running_build(runner, git, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("x")
    process = runner.start(1, git.url, "main", target="slow-image")
    runner.wait_for_log(1, "NOTE: Running task 1 of 12")

    result = runner.purge(1)
    assert result.returncode == 3 and "still running" in result.stderr

    (runner.job_path(1) / "artifacts" / "link").symlink_to(elsewhere)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert runner.purge(1).returncode == 0
    assert not runner.job_path(1).exists()
    assert (elsewhere / "keep").read_text() == "x"


# --- token modes -----------------------------------------------------------------------------

def test_store_and_has_token_keep_the_token_private(runner, user_token):
    user_token(None)
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    directory, token_file = home / ".autobuild", home / ".autobuild" / "gitlab_token"
    assert runner.run("has-token").stdout == "no\n"

    result = runner.run("store-token", stdin="glpat-abcDEF_123-xyz")

    assert result.returncode == 0
    assert "glpat" not in result.stdout + result.stderr
    assert token_file.read_text() == "glpat-abcDEF_123-xyz\n"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert runner.run("has-token").stdout == "yes\n"
    assert [p.name for p in directory.iterdir()] == ["gitlab_token"]  # no temp file left


@pytest.mark.parametrize("token", ["", "\n", "glpat abc", "glpat\tabc", "glpat\x01abc",
                                   "glpat-é", "x" * 513])
def test_store_token_refuses_bad_tokens_and_keeps_the_old_one(runner, user_token, token):
    user_token("glpat-old")
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)

    result = runner.run("store-token", stdin=token)

    assert result.returncode == 2
    assert result.stderr.startswith("run_job.sh: the token")
    assert (home / ".autobuild" / "gitlab_token").read_text() == "glpat-old\n"


def test_store_token_accepts_512_characters_and_a_trailing_newline(runner, user_token):
    token = "g" * 512
    assert runner.run("store-token", stdin=token + "\n").returncode == 0
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    assert (home / ".autobuild" / "gitlab_token").read_text() == token + "\n"


def test_store_token_fixes_a_too_open_token_directory(runner, user_token):
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    (home / ".autobuild").chmod(0o755)
    assert runner.run("store-token", stdin="glpat-new").returncode == 0
    assert stat.S_IMODE((home / ".autobuild").stat().st_mode) == 0o700


# --- login check, as a real second user ------------------------------------------------------

def _sudo_runner(user, *args, stdin=""):
    return subprocess.run(["sudo", "-n", "-u", user.name, "--", str(RUNNER), *args],
                          input=stdin, capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"})


def test_check_login_runs_pam_as_the_user(throwaway_user):
    ok = _sudo_runner(throwaway_user, "check-login", stdin=throwaway_user.password)
    assert ok.returncode == 0, ok.stderr
    wrong = _sudo_runner(throwaway_user, "check-login", stdin=throwaway_user.password + "x")
    assert wrong.returncode == 1
    assert throwaway_user.password not in wrong.stdout + wrong.stderr
    assert _sudo_runner(throwaway_user, "check-login", "extra").returncode == 2


def test_check_login_never_accepts_root(runner):
    if os.geteuid() != 0:
        pytest.skip("runs as root only")
    result = runner.run("check-login", stdin="anything")
    assert result.returncode == 1 and "root may not log in" in result.stderr


# --- the script itself -----------------------------------------------------------------------

def test_runner_scripts_pass_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed")
    scripts = sorted(str(p) for p in RUNNER.parent.glob("*.sh"))
    assert len(scripts) >= 2
    assert len((RUNNER).read_text().splitlines()) <= 40  # a shim, not a program
    result = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_runner_files_are_strict_lf_bash():
    for path in RUNNER.parent.iterdir():
        if not path.is_file():
            continue
        data = path.read_bytes()
        assert b"\r" not in data, path
        if path.suffix == ".sh":
            assert data.startswith(b"#!/usr/bin/env bash\n"), path
            assert b"\nset -euo pipefail\n" in data, path
            assert os.access(path, os.X_OK), path


# --- the launch log: held by the runner alone, until it has written the status ----------------

def test_only_the_runner_holds_its_stdout_and_lets_go_when_it_ends(runner, git, tmp_path):
    import fcntl

    launch_log = tmp_path / "launch.log"
    fd = os.open(launch_log, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    process = subprocess.Popen([str(RUNNER), "build", "1"], env=runner.env(),
                               stdin=subprocess.PIPE, stdout=fd, stderr=fd,
                               start_new_session=True)
    os.close(fd)  # the runner's copy keeps the lock, as in the service
    process.stdin.write(runner.order(1, git.url, "main", target="slow-image").encode())
    process.stdin.close()
    runner.wait_for_log(1, "NOTE: Running task 1 of 12")

    def locked() -> bool:
        probe = os.open(launch_log, os.O_RDWR)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(probe)
        return False

    assert locked()
    real = str(launch_log.resolve())
    holders = []
    for pid in group_members(runner.record(1)["pgid"]):
        for entry in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(entry) == real:
                    holders.append(pid)
            except OSError:
                pass
    assert holders == []  # no build process inherited it

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 143
    assert (runner.job_path(1) / "status.json").exists()
    assert not locked()
    assert launch_log.read_text() == ""  # the runner said nothing there: all went to build.log
