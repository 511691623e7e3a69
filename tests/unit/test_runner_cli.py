"""The runner's command line, the caller checks, the order on stdin, and the token rules."""

from __future__ import annotations

import io
import json
import os
import pwd
import stat
from pathlib import Path

import pytest

from autobuild.runner import account, cli
from autobuild.runner.fsops import Refused
from autobuild.runner.jobdir import Identity
from autobuild.runner.steps import auto_conf_lines, build_environment, pass_to_bitbake, repo_origin


@pytest.fixture(autouse=True)
def process_state_restored():
    """cli.main sets what the runner process needs (umask 027, not dumpable): in the test
    process it must not leak into later tests."""
    import ctypes

    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE, 1


@pytest.mark.parametrize("argv,expected", [
    (["build", "12"], ("build", 12)), (["cancel", "1"], ("cancel", 1)),
    (["purge", "999999999999"], ("purge", 999999999999)), (["has-token"], ("has-token", None)),
    (["check-login"], ("check-login", None)), (["store-token"], ("store-token", None)),
])
def test_modes_and_job_ids(argv, expected):
    assert cli.parse_args(argv) == expected


@pytest.mark.parametrize("argv", [
    [], ["build"], ["build", "0"], ["build", "01"], ["build", "-1"], ["build", "1a"],
    ["build", "1234567890123"], ["build", "1", "2"], ["--check-login"], ["has-token", "x"],
    ["1", "https://x/y.git", "main", "qemux86-64", "core-image-minimal"],
])
def test_everything_else_is_a_usage_error(argv, capsys):
    assert cli.main(argv, io.BytesIO(b"")) == 2
    err = capsys.readouterr().err
    assert err.startswith("run_job.sh: ") and "usage: run_job.sh build <job_id>" in err


def me_named(name: str, uid: int = 1000) -> Identity:
    return Identity(uid, name, "/home/" + name)


def test_the_caller_checks():
    cli.check_caller(me_named("alice"), {"SUDO_USER": "autobuild", "SUDO_UID": "999"})
    cli.check_caller(me_named("root", 0), {})
    with pytest.raises(Refused, match="as root through sudo"):
        cli.check_caller(me_named("root", 0), {"SUDO_UID": "999", "SUDO_USER": "autobuild"})
    with pytest.raises(Refused, match="the user who called sudo"):
        cli.check_caller(me_named("autobuild"), {"SUDO_USER": "autobuild", "SUDO_UID": "999"})


def order_json(**change) -> bytes:
    me = pwd.getpwuid(os.getuid()).pw_name
    order = {"job_id": 5, "owner": me, "jobs_root": "/nonexistent/jobs",
             "repo_url": "https://git.example.com/poky.git", "ref": "main",
             "machine": "qemux86-64", "target": "core-image-minimal"}
    order.update(change)
    return json.dumps(order).encode()


@pytest.mark.parametrize("stdin,message", [
    (order_json(job_id=6), "does not match"),
    (order_json(owner="somebody-else"), "belongs to somebody-else"),
    (order_json(ref="--upload-pack=x"), "invalid build order"),
    (order_json(settings={"hashserve": 5}), "invalid build order"),
    (order_json(settings=[]), "invalid build order"),
    (order_json(artifact_patterns="*.bin"), "invalid build order"),
    (b"x" * (64 * 1024 + 1), "more than 65536 bytes"),
    (b"", "invalid build order"),
    (order_json(), "cannot open the jobs root /nonexistent/jobs"),
])
def test_orders_are_checked_before_anything_is_made(stdin, message, capsys):
    assert cli.main(["build", "5"], io.BytesIO(stdin)) == 2
    err = capsys.readouterr().err
    assert err.startswith("run_job.sh: ") and message in err and err.count("\n") == 1


# --- token -----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,token", [(b"glpat-x", "glpat-x"), (b"glpat-x\n", "glpat-x"),
                                       (b"glpat-x\r\n", "glpat-x"), (b"g" * 512, "g" * 512)])
def test_tokens_accepted(raw, token):
    assert account.parse_token(raw) == token


@pytest.mark.parametrize("raw,message", [
    (b"", "empty"), (b"\n", "empty"), (b"g" * 513, "longer than 512"), (b"a b", "spaces"),
    (b"a\tb", "spaces"), (b"a\x01b", "control"), ("glpat-é".encode(), "non-ASCII"),
    (b"a\n\n", "control"),
])
def test_tokens_refused(raw, message):
    with pytest.raises(Refused, match=message) as caught:
        account.parse_token(raw)
    assert str(caught.value).startswith("the token")


@pytest.fixture
def home_me(tmp_path) -> Identity:
    return Identity(os.getuid(), pwd.getpwuid(os.getuid()).pw_name, str(tmp_path))


def test_store_token_writes_a_private_file_atomically(home_me, tmp_path, capsys):
    assert account.has_token(home_me) == 0 and capsys.readouterr().out == "no\n"
    assert account.store_token(home_me, io.BytesIO(b"glpat-1\n")) == 0
    token = tmp_path / ".autobuild" / "gitlab_token"
    assert token.read_text() == "glpat-1\n"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE(token.parent.stat().st_mode) == 0o700
    assert [p.name for p in token.parent.iterdir()] == ["gitlab_token"]
    capsys.readouterr()
    account.has_token(home_me)
    assert capsys.readouterr().out == "yes\n"


def test_store_token_refuses_a_linked_directory(home_me, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / ".autobuild").symlink_to(elsewhere)
    with pytest.raises(Refused, match="is a symbolic link; refusing to write the token"):
        account.store_token(home_me, io.BytesIO(b"glpat-1"))
    assert list(elsewhere.iterdir()) == []


def test_check_login_never_for_root(capsys):
    assert account.check_login(me_named("root", 0), io.BytesIO(b"pw")) == 1
    assert "root may not log in" in capsys.readouterr().err


@pytest.mark.parametrize("password", [b"", b"\n", b"a\0b", b"x" * 4097, b"\xff\xfe"])
def test_check_login_refuses_impossible_passwords_without_pam(password, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pam", None)  # PAM must not be reached
    assert account.check_login(me_named("alice"), io.BytesIO(password)) == 1


# --- the build's environment ------------------------------------------------------------------

def test_the_build_environment_is_scrubbed_and_https_only():
    me = me_named("alice")
    env = build_environment(me, "https://gitlab.example.com:8443/g/p.git", base={
        "PATH": "/usr/bin", "GIT_DIR": "/x", "GIT_SSL_CAINFO": "/ca.pem", "SUDO_USER": "svc",
        "AUTO_BUILD_CANCEL_GRACE": "1", "BB_ENV_PASSTHROUGH_ADDITIONS": "X", "SSH_ASKPASS": "/x",
        "STANDIN_BITBAKE_DELAY": "0", "HOME": "/root", "GIT_PASSWORD": "glpat-from-the-caller"})
    assert env["HOME"] == "/home/alice" and env["USER"] == "alice"
    assert "GIT_DIR" not in env and "SUDO_USER" not in env and "SSH_ASKPASS" not in env
    assert "AUTO_BUILD_CANCEL_GRACE" not in env and "BB_ENV_PASSTHROUGH_ADDITIONS" not in env
    assert env["GIT_SSL_CAINFO"] == "/ca.pem" and env["STANDIN_BITBAKE_DELAY"] == "0"
    assert env["AUTOBUILD_GIT_ORIGIN"] == "https://gitlab.example.com:8443"
    assert env["AUTOBUILD_TOKEN_FILE"] == "/home/alice/.autobuild/gitlab_token"
    assert env["GIT_ALLOW_PROTOCOL"] == "https" and env["GIT_TERMINAL_PROMPT"] == "0"
    pairs = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
             for i in range(int(env["GIT_CONFIG_COUNT"]))}
    assert pairs == {"credential.helper": "", "protocol.allow": "never",
                     "protocol.https.allow": "always"}
    assert Path(env["GIT_ASKPASS"]).name == "git-askpass.sh"
    assert not any("glpat" in value for value in env.values())


def test_repo_origin_is_what_git_prompts_with():
    assert repo_origin("https://Git.Example.com/a/b.git") == "https://Git.Example.com"
    assert repo_origin("https://127.0.0.1:8443/a.git") == "https://127.0.0.1:8443"


def test_machine_reaches_bitbake_through_the_right_list():
    modern = {"BB_ENV_PASSTHROUGH_ADDITIONS": "A B"}
    pass_to_bitbake(modern, "MACHINE")
    pass_to_bitbake(modern, "MACHINE")
    assert modern == {"BB_ENV_PASSTHROUGH_ADDITIONS": "A B MACHINE"}
    old = {"BB_ENV_EXTRAWHITE": "A"}
    pass_to_bitbake(old, "MACHINE")
    assert old == {"BB_ENV_EXTRAWHITE": "A MACHINE"}
    empty: dict[str, str] = {}
    pass_to_bitbake(empty, "MACHINE")
    assert empty == {"BB_ENV_PASSTHROUGH_ADDITIONS": "MACHINE"}


def test_auto_conf_lines():
    from autobuild.domain.orders import BuildOrder, BuildSettings, JobAddress
    from autobuild.domain.requests import BuildRequest
    order = BuildOrder(JobAddress(1, "alice", "/srv/jobs"),
                       BuildRequest.parse("https://g.example.com/p.git", "main", "m", "t"),
                       settings=BuildSettings(cache_dir="/c", hashserve="auto",
                                              bb_number_threads=4, parallel_make=8))
    assert auto_conf_lines(order, caches_usable=True) == [
        'DL_DIR = "/c/downloads"', 'SSTATE_DIR = "/c/sstate-cache"', 'BB_HASHSERVE = "auto"',
        'BB_NUMBER_THREADS = "4"', 'PARALLEL_MAKE = "-j 8"']
    assert auto_conf_lines(order, caches_usable=False)[0] == 'BB_HASHSERVE = "auto"'
