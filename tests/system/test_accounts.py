"""Real PAM logins through nginx, and the GitLab token written into the engineer's own home."""

from __future__ import annotations

import re
import stat
import subprocess

import pytest

from tests.system.helpers import LOGIN_FAILED, RUNNER, SERVICE_USER, client, login


def _error_box(html: str) -> str:
    match = re.search(r'<div class="flash flash-error" role="alert">(.*?)</div>', html, re.S)
    assert match, "the login page shows no error"
    return match.group(1).strip()


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_an_engineer_signs_in_with_the_right_password(installs, accounts, who):
    account = getattr(accounts, who)
    with client() as web:
        response = login(web, account.name, account.password)
        assert response.status_code == 303 and response.headers["location"] == "/"
        page = web.get("/")
        assert page.status_code == 200 and account.name in page.text


def test_wrong_password_outsider_root_locked_and_expired_get_the_same_refusal(installs, accounts):
    attempts = {
        "wrong password": (accounts.alice.name, accounts.alice.password + "x"),
        "outsider": (accounts.outsider.name, accounts.outsider.password),
        "root": ("root", accounts.alice.password),
        "locked": (accounts.locked.name, accounts.locked.password),
        "expired": (accounts.expired.name, accounts.expired.password),
    }
    errors = {}
    for case, (user, password) in attempts.items():
        with client() as web:
            response = login(web, user, password)
            assert response.status_code == 401, (case, response.status_code)
            errors[case] = _error_box(response.text)
            assert web.get("/").status_code == 303, f"{case}: signed in after all"
    assert set(errors.values()) == {LOGIN_FAILED}, errors

    # The right passwords were given: PAM refused the locked and expired accounts for that.
    assert subprocess.run(["passwd", "-S", accounts.locked.name], capture_output=True,
                          text=True).stdout.split()[1] == "L"
    check = subprocess.run(["runuser", "-u", SERVICE_USER, "--", "sudo", "-n", "-u",
                            accounts.expired.name, "--", str(RUNNER), "check-login"],
                           input=accounts.expired.password, capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 1 and "expired" in check.stderr, check.stderr


def test_the_token_is_saved_in_the_engineers_home_where_the_service_cannot_read_it(alice, accounts, git):
    engineer = accounts.alice
    directory, token_file = engineer.token_file.parent, engineer.token_file
    info = directory.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (engineer.uid, 0o700)
    info = token_file.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (engineer.uid, 0o600)
    assert token_file.read_text().strip() == git.token

    page = alice.get("/settings")
    assert "A GitLab token is on file" in page.text and git.token not in page.text

    for path in (token_file, directory):
        read = subprocess.run(["runuser", "-u", SERVICE_USER, "--", "cat" if path == token_file else "ls", str(path)],
                              capture_output=True, text=True, timeout=30)
        assert read.returncode != 0 and "Permission denied" in read.stderr, path
        assert git.token not in read.stdout
