"""Logins through the app: the brake, the one message, the same time, the fail2ban line."""

import logging
import re
import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from autobuild.web import login_pacing
from autobuild.web.routes.auth import LOGIN_FAILED
from tests.fakes import TimedAuthenticator
from tests.web.helpers import page_csrf

FLOOR = 3.0  # Settings.login_failure_seconds
# The one line docs/fail2ban.md's filter matches (<HOST> there).
FAIL2BAN = re.compile(r"^autobuild: login failed for user '[^']*' from (\S+)( .*)?$")


@pytest.fixture
def fakes(fakes):
    """PAM as it behaves: alice and bob are members; carol has an account and a password but
    is not in the group (sudo refuses her at once); a member's wrong password costs 2 s."""
    fakes.auth = TimedAuthenticator(fakes.timer, members={"alice", "bob"},
                                    users={"alice": "alice-pw", "bob": "bob-pw",
                                           "carol": "carol-pw"})
    return fakes


def browser(app, address="203.0.113.5"):
    return TestClient(app, follow_redirects=False, client=(address, 40000))


def attempt(client, username, password):
    token = page_csrf(client, "/login")
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token})


FAILURES = {
    "member-wrong-password": ("alice", "wrong"),
    "non-member-right-password": ("carol", "carol-pw"),
    "non-member-wrong-password": ("carol", "wrong"),
    "unknown-user": ("mallory", "anything"),
    "empty-password": ("alice", ""),
    "overlong-name": ("a" * 300, "x"),
    "root": ("root", "x"),
}


def test_every_failure_takes_the_same_time_and_says_the_same_thing(app, fakes):
    answers = {}
    for n, (case, (username, password)) in enumerate(FAILURES.items()):
        client = browser(app, f"192.0.2.{n + 1}")  # the brake is not what this test is about
        page_csrf(client, "/login")
        began = fakes.timer.now
        response = attempt(client, username, password)
        body = response.text.replace(f'value="{username[:256]}"', 'value="NAME"')
        answers[case] = (response.status_code, fakes.timer.now - began,
                         re.sub(r'(csrf_token" value|csrf-token" content)="[^"]*"', "", body))

    statuses = {status for status, _, _ in answers.values()}
    durations = {case: round(took, 6) for case, (_, took, _) in answers.items()}
    assert statuses == {401}
    assert set(durations.values()) == {FLOOR}, durations  # PAM's 2 s and the 0.01 s alike
    bodies = {body for _, _, body in answers.values()}
    assert len(bodies) == 1 and LOGIN_FAILED in bodies.pop()


def test_the_padding_is_what_the_check_did_not_take(app, fakes):
    attempt(browser(app, "192.0.2.1"), "alice", "wrong")
    attempt(browser(app, "192.0.2.2"), "mallory", "wrong")

    assert [round(s, 6) for s in fakes.timer.slept] == [FLOOR - 2.0, FLOOR - 0.01]


def test_a_successful_login_is_not_padded(app, fakes):
    response = attempt(browser(app), "alice", "alice-pw")

    assert response.status_code == 303
    assert fakes.timer.slept == []


def test_five_failures_for_a_name_brake_it_from_every_address(app, fakes):
    for n in range(5):
        assert attempt(browser(app, f"198.51.100.{n}"), "alice", "wrong").status_code == 401

    response = attempt(browser(app, "192.0.2.200"), "alice", "alice-pw")  # even the right one

    assert response.status_code == 429
    assert response.headers["retry-after"] == "60"
    assert "Try again in 60 seconds" in response.text
    assert len(fakes.auth.calls) == 5  # the sixth was never checked
    assert attempt(browser(app, "192.0.2.200"), "bob", "bob-pw").status_code == 303
    fakes.clock.advance(60)
    assert attempt(browser(app, "192.0.2.200"), "alice", "alice-pw").status_code == 303


def test_five_failures_from_an_address_brake_it_for_every_name(app, fakes):
    client = browser(app, "203.0.113.9")
    for name in ("u1", "u2", "u3", "alice", "carol"):
        assert attempt(client, name, "wrong").status_code == 401

    response = attempt(client, "bob", "bob-pw")

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) == 60
    assert attempt(browser(app, "203.0.113.10"), "bob", "bob-pw").status_code == 303


def test_the_brake_applies_to_unknown_names_as_to_members(app, fakes):
    for name in ("alice", "nobody-here"):
        for n in range(5):
            attempt(browser(app, f"198.51.{len(name)}.{n}"), name, "wrong")
        response = attempt(browser(app, "192.0.2.50"), name, "x")
        assert (response.status_code, response.headers["retry-after"]) == (429, "60")


def test_each_failure_is_one_fail2ban_line_with_the_client_address(app, caplog):
    caplog.set_level(logging.WARNING)
    attempt(browser(app, "203.0.113.5"), "alice", "wrong")
    attempt(browser(app, "2001:db8::7"), "x' from 198.51.100.1\nforged", "wrong")

    lines = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    assert lines == ["autobuild: login failed for user 'alice' from 203.0.113.5",
                     "autobuild: login failed for user 'x??from?198.51.100.1?forged' "
                     "from 2001:db8::7"]
    assert [FAIL2BAN.match(line).group(1) for line in lines] == ["203.0.113.5", "2001:db8::7"]
    assert "wrong" not in caplog.text  # never the password


def test_throttled_attempts_are_logged_for_fail2ban_too(app, caplog):
    caplog.set_level(logging.WARNING)
    client = browser(app, "203.0.113.77")
    for _ in range(6):
        attempt(client, "alice", "wrong")

    lines = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    assert len(lines) == 6
    assert all(FAIL2BAN.match(line).group(1) == "203.0.113.77" for line in lines)
    assert lines[-1].endswith("(too many failures, not checked)")


def test_behind_nginx_the_address_is_the_forwarded_one_only_from_localhost(app, caplog):
    caplog.set_level(logging.WARNING)
    proxied = ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1")
    via_nginx = TestClient(proxied, follow_redirects=False, client=("127.0.0.1", 5000),
                           headers={"X-Forwarded-For": "203.0.113.44"})
    direct = TestClient(proxied, follow_redirects=False, client=("198.51.100.9", 5000),
                        headers={"X-Forwarded-For": "10.9.9.9"})
    attempt(via_nginx, "alice", "wrong")
    attempt(direct, "alice", "wrong")

    addresses = [FAIL2BAN.match(r.getMessage()).group(1) for r in caplog.records
                 if "login failed" in r.getMessage()]
    assert addresses == ["203.0.113.44", "198.51.100.9"]


class TestBoundedChecks:
    @pytest.fixture
    def settings(self, settings):
        from dataclasses import replace
        return replace(settings, max_login_checks=1)

    def test_checks_beyond_the_bound_wait_then_get_503(self, app, fakes, monkeypatch):
        monkeypatch.setattr(login_pacing, "QUEUE_WAIT_SECONDS", 0.3)
        release = threading.Event()
        started = threading.Event()
        plain = fakes.auth.authenticate

        def slow(username, password):
            started.set()
            release.wait(10)
            return plain(username, password)

        fakes.auth.authenticate = slow
        first = {}
        client = browser(app, "192.0.2.1")
        token = page_csrf(client, "/login")
        thread = threading.Thread(target=lambda: first.setdefault("r", client.post(
            "/login", data={"username": "alice", "password": "alice-pw", "csrf_token": token})))
        thread.start()
        assert started.wait(5)

        began = time.monotonic()
        response = attempt(browser(app, "192.0.2.2"), "bob", "bob-pw")
        waited = time.monotonic() - began
        release.set()
        thread.join(10)

        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "Try again in a few seconds" in response.text
        assert 0.3 <= waited < 3
        assert first["r"].status_code == 303
        assert attempt(browser(app, "192.0.2.2"), "bob", "bob-pw").status_code == 303


def test_the_documented_fail2ban_filter_matches_every_failure_line(app, caplog):
    doc = (Path(__file__).parents[2] / "docs" / "fail2ban.md").read_text()
    failregex = re.search(r"^failregex = (.+)$", doc, re.MULTILINE).group(1)
    # fail2ban's <HOST> (IPv4, IPv6 or a name), as its own configuration defines it.
    pattern = re.compile(failregex.replace("<HOST>", r"(?P<host>[\w.:-]+)"))
    caplog.set_level(logging.WARNING)
    attempt(browser(app, "203.0.113.5"), "alice", "wrong")
    attempt(browser(app, "2001:db8::7"), "x' from 10.0.0.1", "wrong")
    for _ in range(5):
        attempt(browser(app, "198.51.100.3"), "carol", "wrong")

    lines = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    hosts = [pattern.match(line).group("host") for line in lines]
    assert hosts == ["203.0.113.5", "2001:db8::7"] + ["198.51.100.3"] * 5
    for line in lines:  # the doc's examples are what the service writes
        assert re.sub(r"'[^']*'", "''", line).replace("2001:db8::7", "H").replace(
            "203.0.113.5", "H").replace("198.51.100.3", "H") in {
            "autobuild: login failed for user '' from H",
            "autobuild: login failed for user '' from H (too many failures, not checked)"}
