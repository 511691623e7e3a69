"""The account adapters (token store, PAM login) driving the real run_job.sh; the build runner
adapter has its own file (test_local_runner.py)."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from autobuild.adapters.pam_auth import PamAuthenticator
from autobuild.adapters.sudo_shim import runner_command
from autobuild.adapters.token_store import RunnerTokenStore
from autobuild.domain.ports import RunnerError

from .conftest import MACHINE, RUNNER, TARGET


def current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def test_runner_command_with_and_without_sudo():
    args = ["12", "https://gitlab.example.com/g/p.git", "main", MACHINE, TARGET]
    assert runner_command(Path("/opt/autobuild/runner/run_job.sh"), "alice", args, True) == [
        "sudo", "-n", "-u", "alice", "--", "/opt/autobuild/runner/run_job.sh", *args]
    assert runner_command(Path("/r/run_job.sh"), "alice", args, False) == ["/r/run_job.sh", *args]


# --- RunnerTokenStore -----------------------------------------------------------------------

def test_token_store_saves_and_reports_the_token(runner, user_token):
    user_token(None)
    store = RunnerTokenStore(RUNNER, use_sudo=False)
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)

    assert store.has_token(current_user()) is False
    store.store(current_user(), "glpat-from-the-adapter")

    assert store.has_token(current_user()) is True
    token_file = home / ".autobuild" / "gitlab_token"
    assert token_file.read_text() == "glpat-from-the-adapter\n"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_token_store_passes_on_the_runners_refusal(runner, user_token):
    store = RunnerTokenStore(RUNNER, use_sudo=False)
    with pytest.raises(RunnerError, match="must not contain spaces") as caught:
        store.store(current_user(), "glpat with space")
    assert "glpat with space" not in str(caught.value)


def test_token_store_without_a_runner_raises_runner_error(tmp_path):
    store = RunnerTokenStore(tmp_path / "missing.sh", use_sudo=False)
    with pytest.raises(RunnerError):
        store.has_token(current_user())
    with pytest.raises(RunnerError):
        store.store(current_user(), "glpat-x")


def test_token_store_refuses_bad_user_names(tmp_path):
    store = RunnerTokenStore(tmp_path / "missing.sh", use_sudo=True)
    for name in ("root", "-u", "a b", "Alice", ""):
        with pytest.raises(RunnerError, match="not a user name"):
            store.store(name, "glpat-x")


def test_token_store_writes_into_the_users_own_home_through_sudo(throwaway_user):
    store = RunnerTokenStore(RUNNER, use_sudo=True)
    assert store.has_token(throwaway_user.name) is False

    store.store(throwaway_user.name, "glpat-for-the-user")

    token_file = throwaway_user.home / ".autobuild" / "gitlab_token"
    info = pwd.getpwnam(throwaway_user.name)
    assert token_file.read_text() == "glpat-for-the-user\n"
    for path, mode in ((token_file.parent, 0o700), (token_file, 0o600)):
        assert path.stat().st_uid == info.pw_uid
        assert stat.S_IMODE(path.stat().st_mode) == mode
    assert store.has_token(throwaway_user.name) is True


# --- PamAuthenticator -----------------------------------------------------------------------

@pytest.fixture
def fake_runner():
    """A stand-in for run_job.sh that records each run and answers with the exit code asked.

    Returns (runner path, user name, use_sudo, marker file, set_exit_code). As root it is run
    through sudo as "nobody" (root itself may never log in); otherwise as the current user.
    """
    base = Path(tempfile.mkdtemp(prefix="fake-runner-"))
    base.chmod(0o777)
    marker, code_file = base / "ran", base / "exit-code"
    script = base / "run_job.sh"
    script.write_text(f'#!/bin/sh\nread -r password\necho "$*:$password" >> "{marker}"\n'
                      f'exit "$(cat "{code_file}")"\n')
    script.chmod(0o755)

    def set_exit_code(code: int) -> None:
        code_file.write_text(f"{code}\n")
        code_file.chmod(0o644)

    set_exit_code(1)
    if os.geteuid() == 0:
        if not shutil.which("sudo"):
            pytest.skip("needs sudo to run as another user")
        user, use_sudo = "nobody", True
    else:
        user, use_sudo = current_user(), False
    yield script, user, use_sudo, marker, set_exit_code
    shutil.rmtree(base, ignore_errors=True)


def test_pam_authenticator_maps_the_runners_answer(fake_runner):
    script, user, use_sudo, marker, set_exit_code = fake_runner
    auth = PamAuthenticator(script, use_sudo=use_sudo)

    assert auth.authenticate(user, "wrong") is False
    set_exit_code(0)
    assert auth.authenticate(user, "right") is True
    set_exit_code(3)  # the runner could not check: that is a "no" too
    assert auth.authenticate(user, "right") is False
    assert marker.read_text().splitlines() == [
        "check-login:wrong", "check-login:right", "check-login:right"]


@pytest.mark.parametrize("name", ["root", "-n", "a;b", "Alice", "", "x" * 33, "no-such-user-x"])
def test_pam_authenticator_refuses_without_running_anything(fake_runner, name):
    script, _, use_sudo, marker, set_exit_code = fake_runner
    set_exit_code(0)  # the fake would say yes to anyone it is asked about
    auth = PamAuthenticator(script, use_sudo=use_sudo)

    assert auth.authenticate(name, "password") is False
    assert not marker.exists()


def test_pam_authenticator_refuses_empty_passwords_without_running_anything(fake_runner):
    script, user, use_sudo, marker, set_exit_code = fake_runner
    set_exit_code(0)
    auth = PamAuthenticator(script, use_sudo=use_sudo)
    assert auth.authenticate(user, "") is False
    assert auth.authenticate(user, "a\0b") is False
    assert not marker.exists()


def test_pam_authenticator_without_sudo_only_checks_the_service_user(fake_runner):
    script, _, _, marker, set_exit_code = fake_runner
    set_exit_code(0)
    auth = PamAuthenticator(script, use_sudo=False)
    other = "nobody" if current_user() != "nobody" else "daemon"
    assert auth.authenticate(other, "password") is False
    assert not marker.exists()


def test_pam_authenticator_with_real_pam_through_sudo(throwaway_user):
    auth = PamAuthenticator(RUNNER, use_sudo=True)
    assert auth.authenticate(throwaway_user.name, throwaway_user.password) is True
    assert auth.authenticate(throwaway_user.name, throwaway_user.password + "x") is False
    assert auth.authenticate("root", throwaway_user.password) is False


def test_pam_authenticator_without_a_runner_says_no(fake_runner, tmp_path):
    _, user, use_sudo, _, _ = fake_runner
    auth = PamAuthenticator(tmp_path / "missing.sh", use_sudo=use_sudo)
    assert auth.authenticate(user, "password") is False
