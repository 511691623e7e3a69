"""run_job.sh for real: HTTPS clone with the token, the stand-in bitbake, artifacts, status."""

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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autobuild.domain.requests import GitRef, Machine, RepoUrl, Target
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
    assert (build.job_dir / "exit_code").read_text() == f"{code}\n"
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
    assert "NOTE: Tasks Summary: Attempted 12 tasks" in log
    assert "skipped evil.bin: its link leads outside the build tree" in log
    assert "skipped outside-build.bin: its link leads outside the build tree" in log


def test_job_files_are_readable_by_the_service_group_only(runner, git):
    build = runner.build(1, git.url, "main")

    assert_finished(build, "SUCCESS", 0)
    for sub in ("logs", "artifacts", "work"):
        mode = (build.job_dir / sub).stat().st_mode
        assert stat.S_IMODE(mode) & 0o057 == 0o050, sub  # group r-x, others nothing
        assert mode & stat.S_ISGID, f"{sub} lost the job dir's setgid group"
    for name in ("status.json", "exit_code", "logs/build.log"):
        assert stat.S_IMODE((build.job_dir / name).stat().st_mode) == 0o640, name


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


def test_invalid_patterns_are_ignored_and_no_match_is_not_an_error(runner, git):
    build = runner.build(1, git.url, "main", patterns=["../*", "-rf", ".*", "*.wic"])

    assert_finished(build, "SUCCESS", 0)
    assert build.artifacts == {}
    assert "WARNING: ignoring the invalid artifact pattern ../\\*" in build.log
    assert "no artifacts matched *.wic" in build.log


def test_shared_caches_and_parallelism_reach_bitbake_through_auto_conf(runner, git, tmp_path):
    cache = tmp_path / "cache"
    (cache / "downloads").mkdir(parents=True)
    (cache / "sstate-cache").mkdir()
    settings = {"CACHE_DIR": str(cache), "HASHSERVE": "hashserv.example.com:8686",
                "BB_NUMBER_THREADS": "6", "PARALLEL_MAKE": "-j 12", "KEEP_WORKSPACE": "1",
                "SOMETHING_NEWER": "ignored"}
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
    assert "SOMETHING_NEWER" not in auto and "SOMETHING_NEWER" not in build.log


def test_what_a_build_adds_to_the_caches_is_group_writable(runner, git, tmp_path):
    # umask 002 in the build: files in the shared caches stay writable for the next user.
    build = runner.build(1, git.url, "main")

    assert_finished(build, "SUCCESS", 0)
    conf = build.job_dir / "work" / "src" / "build" / "conf" / "local.conf"
    assert stat.S_IMODE(conf.stat().st_mode) & 0o020


def test_missing_caches_are_not_used_and_bad_settings_are_ignored(runner, git, tmp_path):
    settings = {"CACHE_DIR": str(tmp_path / "absent"), "HASHSERVE": "$(touch /tmp/x):1",
                "BB_NUMBER_THREADS": "0", "PARALLEL_MAKE": "-j 8; rm -rf /",
                "KEEP_WORKSPACE": "1", "KAS_FILE": "../../etc/passwd.yml"}
    build = runner.build(1, git.url, "main", settings=settings)

    assert_finished(build, "SUCCESS", 0)
    for name in ("HASHSERVE", "BB_NUMBER_THREADS", "PARALLEL_MAKE", "KAS_FILE"):
        assert f"WARNING: ignoring the build setting {name}=" in build.log
    assert "DL_DIR" not in build.log and "BB_HASHSERVE" not in build.log
    assert "NOTE: no shared caches" in build.log
    assert not (build.job_dir / "work" / "src" / "build" / "conf" / "auto.conf").exists()


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

def _sample_session(sid: int, stop: threading.Event, seen: list[bytes]) -> None:
    """Collect the argv and environment of every process in the runner's session."""
    while not stop.is_set():
        for pid in session_members(sid):
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
    runner.job_dir(1)
    process = subprocess.Popen([str(RUNNER), "1", git.url, "main", MACHINE, TARGET],
                               env=runner.env(), start_new_session=True)
    seen: list[bytes] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_session, args=(process.pid, stop, seen))
    sampler.start()
    try:
        assert process.wait(timeout=60) == 0
    finally:
        stop.set()
        sampler.join()

    token = TOKEN.encode()
    assert any(b"git\x00clone" in blob for blob in seen), "the sampler never saw the clone"
    assert not [blob for blob in seen if token in blob]
    job_dir = runner.jobs_root / "1"
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


# --- argument validation ------------------------------------------------------------------

BAD_ARGS = {
    "job id option": (["-x"], "unknown option"),
    "job id letters": (["1a"], "invalid job id"),
    "job id too long": (["1234567890123"], "invalid job id"),
    "url option": ([None, "--upload-pack=touch /tmp/pwned"], "invalid repository URL"),
    "url short option": ([None, "-x"], "invalid repository URL"),
    "url http": ([None, "http://127.0.0.1/poky.git"], "invalid repository URL"),
    "url userinfo": ([None, "https://oauth2:glpat-x@127.0.0.1/poky.git"], "invalid repository URL"),
    "url query": ([None, "https://127.0.0.1/poky.git?a=1"], "invalid repository URL"),
    "url fragment": ([None, "https://127.0.0.1/poky.git#x"], "invalid repository URL"),
    "url ext": ([None, "ext::sh -c touch% /tmp/pwned"], "invalid repository URL"),
    "url file": ([None, "file:///etc"], "invalid repository URL"),
    "url dotdot": ([None, "https://127.0.0.1/a/../poky.git"], "invalid repository URL"),
    "ref option": ([None, None, "-x"], "invalid ref"),
    "ref upload-pack": ([None, None, "--upload-pack=touch /tmp/pwned"], "invalid ref"),
    "ref dotdot": ([None, None, "main..x"], "invalid ref"),
    "ref lock": ([None, None, "refs/x.lock"], "invalid ref"),
    "ref reflog": ([None, None, "@{-1}"], "invalid ref"),
    "ref space": ([None, None, "a b"], "invalid ref"),
    "ref colon": ([None, None, "HEAD:x"], "invalid ref"),
    "machine slash": ([None, None, None, "qemu/x86"], "invalid MACHINE"),
    "machine semicolon": ([None, None, None, "qemu;id"], "invalid MACHINE"),
    "machine option": ([None, None, None, "-x"], "invalid MACHINE"),
    "machine subst": ([None, None, None, "$(id)"], "invalid MACHINE"),
    "target option": ([None, None, None, None, "-c"], "invalid target"),
    "target long option": ([None, None, None, None, "--help"], "invalid target"),
    "target semicolon": ([None, None, None, None, "a;b"], "invalid target"),
    "target slash": ([None, None, None, None, "a/b"], "invalid target"),
}


@pytest.mark.parametrize("override,message", list(BAD_ARGS.values()), ids=list(BAD_ARGS))
def test_bad_arguments_are_refused_before_anything_runs(runner, git, override, message):
    job_dir = runner.job_dir(1)
    args = ["1", git.url, "main", MACHINE, TARGET]
    for position, value in enumerate(override):
        if value is not None:
            args[position] = value
    before = len(git.server.requests)

    result = runner.run(*args)

    assert result.returncode == 2
    assert message in result.stderr
    assert len(git.server.requests) == before
    assert [p.name for p in job_dir.iterdir()] == ["build-settings"]  # nothing written


@pytest.mark.parametrize("args", [["1", "https://127.0.0.1/x.git", "main", MACHINE],
                                  ["1", "https://127.0.0.1/x.git", "main", MACHINE, TARGET, "x"],
                                  []])
def test_wrong_number_of_arguments_is_a_usage_error(runner, args):
    result = runner.run(*args)
    assert result.returncode == 2
    assert "usage: run_job.sh" in result.stderr


def test_missing_symlinked_or_used_job_dir_is_refused(runner, git, tmp_path):
    args = [git.url, "main", MACHINE, TARGET]
    result = runner.run("7", *args)
    assert result.returncode == 2 and "does not exist" in result.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (runner.jobs_root / "8").symlink_to(elsewhere)
    result = runner.run("8", *args)
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert list(elsewhere.iterdir()) == []

    used = runner.job_dir(9)
    (used / "status.json").write_text('{"status": "SUCCESS"}\n')
    result = runner.run("9", *args)
    assert result.returncode == 2 and "has already run" in result.stderr
    assert not (used / "logs").exists()


def _runner_accepts(runner, field: int, value: str) -> bool:
    """True if run_job.sh accepts ``value`` in argument ``field`` (job dir 0 never exists)."""
    args = ["0", "https://example.com/poky.git", "main", MACHINE, TARGET]
    args[field] = value
    result = runner.run(*args)
    assert result.returncode == 2
    return "does not exist" in result.stderr


def _domain_accepts(parse, value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


_REF_CHARS = st.sampled_from(list("ab09./-_@{}~^:?*[\\ \t\x7f") + ["..", ".lock", "é"])
_NAME_CHARS = st.sampled_from(list("aZ09._+-:/;$ ()"))
_SETTINGS = settings(max_examples=120, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(st.lists(_REF_CHARS, min_size=1, max_size=12).map("".join))
def test_runner_and_domain_agree_on_refs(runner, ref):
    if ref != ref.strip():
        return  # the domain strips input; the runner only ever gets stripped values
    assert _runner_accepts(runner, 2, ref) == _domain_accepts(GitRef.parse, ref), ref


@_SETTINGS
@given(st.lists(_NAME_CHARS, min_size=1, max_size=10).map("".join))
def test_runner_and_domain_agree_on_machine_and_target(runner, name):
    if name != name.strip():
        return
    assert _runner_accepts(runner, 3, name) == _domain_accepts(Machine.parse, name), name
    assert _runner_accepts(runner, 4, name) == _domain_accepts(Target.parse, name), name


_HOSTS = st.sampled_from(["example.com", "127.0.0.1", "gitlab.example.com.", "a-b.c", "-a.com",
                          "a..b", "a_b.com", "", "x" * 64 + ".com", "user@host", "h:1", "h:"])
_PATHS = st.sampled_from(["/g/p.git", "/", "", "/g/../p", "/./p", "/p?x=1", "/p#f", "/g/p%20",
                          "/~user/p.git", "/a+b/c_d-e.git"])
_PORTS = st.sampled_from(["", ":443", ":0", ":65535", ":65536", ":08443"])
_SCHEMES = st.sampled_from(["https://", "http://", "ssh://", "git://", "file://", "-https://"])


@_SETTINGS
@given(_SCHEMES, _HOSTS, _PORTS, _PATHS)
def test_runner_and_domain_agree_on_urls(runner, scheme, host, port, path):
    url = f"{scheme}{host}{port}{path}"
    assert _runner_accepts(runner, 1, url) == _domain_accepts(RepoUrl.parse, url), url


# --- cancellation ----------------------------------------------------------------------------

def test_sigterm_mid_build_records_cancelled_and_leaves_no_process(runner, git):
    process = runner.start(1, git.url, "main", target="slow-image")
    runner.wait_for_log(1, "NOTE: Running task 1 of 12")
    job_dir = runner.jobs_root / "1"
    runner_pid, pgid = map(int, (job_dir / "runner.pid").read_text().split())
    assert runner_pid == process.pid and group_members(pgid)

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=30) == 143
    status = json.loads((job_dir / "status.json").read_text())
    assert (status["status"], status["exit_code"]) == ("CANCELLED", 143)
    log = (job_dir / "logs" / "build.log").read_text()
    assert "==> Cancelling: SIGTERM received, stopping the build" in log
    assert log.rstrip("\n").splitlines()[-1] == "==> Build finished: CANCELLED (exit 143)"
    assert group_members(pgid) == [] and session_members(process.pid) == []


def test_cancel_mode_interrupts_then_escalates_and_reports(runner, git):
    env = runner.env(AUTO_BUILD_CANCEL_GRACE="1")
    process = runner.start(1, git.url, "main", target="slow-image")
    runner.wait_for_log(1, "NOTE: Running task 1 of 12")
    job_dir = runner.jobs_root / "1"
    _, pgid = map(int, (job_dir / "runner.pid").read_text().split())

    result = runner.run("--cancel", "1", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    # The stand-in's worker ignores SIGINT, so the grace period ends in SIGTERM.
    assert "sending SIGINT" in result.stdout and "sending SIGTERM" in result.stdout
    assert process.wait(timeout=30) == 130
    status = json.loads((job_dir / "status.json").read_text())
    assert (status["status"], status["exit_code"]) == ("CANCELLED", 130)
    log = (job_dir / "logs" / "build.log").read_text()
    assert "Keyboard Interrupt, closing down..." in log  # bitbake got its SIGINT first
    assert group_members(pgid) == [] and session_members(process.pid) == []

    again = runner.run("--cancel", "1", env=env)
    assert again.returncode == 3 and "not running" in again.stdout


def test_cancel_before_the_build_starts_stops_it_at_once(runner, git):
    runner.job_dir(1)
    result = runner.run("--cancel", "1")
    assert result.returncode == 0

    build = runner.run("1", git.url, "main", MACHINE, TARGET)

    status = json.loads((runner.jobs_root / "1" / "status.json").read_text())
    assert build.returncode == 130 and status["status"] == "CANCELLED"
    assert "==> bitbake" not in (runner.jobs_root / "1" / "logs" / "build.log").read_text()


def test_cancel_of_an_unknown_or_finished_job_says_not_running(runner, git):
    assert runner.run("--cancel", "42").returncode == 3
    assert runner.run("--cancel", "-1").returncode == 2
    assert runner.run("--cancel").returncode == 2
    runner.build(1, git.url, "main")
    assert runner.run("--cancel", "1").returncode == 3


# --- token modes -----------------------------------------------------------------------------

def test_store_and_has_token_keep_the_token_private(runner, user_token):
    user_token(None)
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    directory, token_file = home / ".autobuild", home / ".autobuild" / "gitlab_token"
    assert runner.run("--has-token").stdout == "no\n"

    result = runner.run("--store-token", stdin="glpat-abcDEF_123-xyz")

    assert result.returncode == 0
    assert "glpat" not in result.stdout + result.stderr
    assert token_file.read_text() == "glpat-abcDEF_123-xyz\n"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert runner.run("--has-token").stdout == "yes\n"
    assert [p.name for p in directory.iterdir()] == ["gitlab_token"]  # no temp file left


@pytest.mark.parametrize("token", ["", "\n", "glpat abc", "glpat\tabc", "glpat\x01abc",
                                   "glpat-é", "x" * 513])
def test_store_token_refuses_bad_tokens_and_keeps_the_old_one(runner, user_token, token):
    user_token("glpat-old")
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)

    result = runner.run("--store-token", stdin=token)

    assert result.returncode == 2
    assert result.stderr.startswith("run_job.sh: the token")
    assert (home / ".autobuild" / "gitlab_token").read_text() == "glpat-old\n"


def test_store_token_accepts_512_characters_and_a_trailing_newline(runner, user_token):
    token = "g" * 512
    assert runner.run("--store-token", stdin=token + "\n").returncode == 0
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    assert (home / ".autobuild" / "gitlab_token").read_text() == token + "\n"


def test_store_token_fixes_a_too_open_token_directory(runner, user_token):
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    (home / ".autobuild").chmod(0o755)
    assert runner.run("--store-token", stdin="glpat-new").returncode == 0
    assert stat.S_IMODE((home / ".autobuild").stat().st_mode) == 0o700


# --- login check, as a real second user ------------------------------------------------------

def _sudo_runner(user, *args, stdin=""):
    return subprocess.run(["sudo", "-n", "-u", user.name, "--", str(RUNNER), *args],
                          input=stdin, capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"})


def test_check_login_runs_pam_as_the_user(throwaway_user):
    ok = _sudo_runner(throwaway_user, "--check-login", stdin=throwaway_user.password)
    assert ok.returncode == 0, ok.stderr
    wrong = _sudo_runner(throwaway_user, "--check-login", stdin=throwaway_user.password + "x")
    assert wrong.returncode == 1
    assert throwaway_user.password not in wrong.stdout + wrong.stderr
    assert _sudo_runner(throwaway_user, "--check-login", "extra").returncode == 2


def test_check_login_never_accepts_root(runner):
    if os.geteuid() != 0:
        pytest.skip("runs as root only")
    result = runner.run("--check-login", stdin="anything")
    assert result.returncode == 1 and "root may not log in" in result.stderr


# --- the script itself -----------------------------------------------------------------------

def test_runner_scripts_pass_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed")
    scripts = sorted(str(p) for p in RUNNER.parent.glob("*.sh"))
    assert len(scripts) >= 2
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
