"""Real PAM logins through nginx, and the GitLab token written into the engineer's own home."""

from __future__ import annotations

import re
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
        with client(source="127.0.0.9") as web:  # its own address: these failures are on purpose
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


def test_failed_sign_ins_are_throttled_per_real_client_address_through_nginx(installs, accounts):
    """Five failures a minute from one address, then 429 with Retry-After for that address
    only; each failure is one fail2ban line naming the real address nginx saw."""
    log = Path("/var/log/autobuild/service.log")
    offset = log.stat().st_size if log.exists() else 0

    def fail(n: int) -> int:
        with client(source="127.0.0.10") as web:
            return login(web, f"nobody-{n}", "wrong").status_code

    with ThreadPoolExecutor(max_workers=5) as pool:
        assert sorted(pool.map(fail, range(5))) == [401] * 5
    with client(source="127.0.0.10") as web:
        refused = login(web, accounts.alice.name, accounts.alice.password)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    with client() as web:  # another address is not held back
        assert login(web, accounts.alice.name, accounts.alice.password).status_code == 303
    with open(log, "rb") as handle:
        handle.seek(offset)
        lines = handle.read().decode(errors="replace").splitlines()
    failed = [line for line in lines if "login failed for user 'nobody-" in line]
    assert len(failed) == 5 and all("from 127.0.0.10" in line for line in failed), failed
