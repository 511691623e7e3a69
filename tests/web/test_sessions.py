"""Server-side sessions through the app: sign-out everywhere, limits, membership, HTTPS."""

from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from autobuild.web.routes.auth import LOGIN_FAILED
from tests.web.helpers import login, page_csrf, session_of

HOURS = 8


def copy_of(app, client):
    """Another holder of the same cookie (a stolen copy, a second script)."""
    other = TestClient(app, follow_redirects=False)
    other.cookies.set("autobuild_session", client.cookies.get("autobuild_session"))
    return other


def test_after_logout_the_old_cookie_no_longer_opens_anything(app, alice, fakes):
    copy = copy_of(app, alice)
    assert copy.get("/api/jobs").status_code == 200

    alice.post("/logout", data={"csrf_token": page_csrf(alice, "/")})

    assert copy.get("/api/jobs").status_code == 401
    assert copy.get("/").status_code == 303
    assert fakes.sessions.rows == {}


def test_a_session_ends_eight_hours_after_sign_in_however_much_it_is_used(alice, fakes):
    for _ in range(HOURS * 2 - 1):
        fakes.clock.advance(30 * 60)
        assert alice.get("/api/jobs").status_code == 200
    fakes.clock.advance(30 * 60)

    assert alice.get("/api/jobs").status_code == 401
    assert alice.get("/").headers["location"].startswith("/login")


def test_a_session_unused_for_eight_hours_has_ended(alice, fakes):
    fakes.clock.advance(HOURS * 3600 - 60)
    assert alice.get("/api/jobs").status_code == 200
    fakes.clock.advance(61)

    assert alice.get("/api/jobs").status_code == 401
    assert fakes.sessions.rows == {}


def test_the_cookie_lives_no_longer_than_the_session(client):
    login(client, "alice")
    response = client.post("/login", data={"username": "alice", "password": "alice-pw",
                                           "csrf_token": page_csrf(client, "/")})

    assert f"max-age={HOURS * 3600}" in response.headers["set-cookie"].lower()


def test_a_removed_member_loses_every_session_at_the_next_request(app, alice, fakes):
    second = TestClient(app, follow_redirects=False)
    login(second, "alice")
    assert len(fakes.sessions.of("alice")) == 2

    fakes.members.members.discard("alice")

    assert alice.get("/api/jobs").status_code == 401
    assert fakes.sessions.of("alice") == []
    assert second.get("/api/jobs").status_code == 401


def test_a_forged_or_unknown_session_id_is_nobody(app, alice):
    # Someone who knows the signing key still needs a live session id.
    other = TestClient(app, follow_redirects=False)
    other.cookies.set("autobuild_session", alice.cookies.get("autobuild_session"))
    sid = session_of(alice)["sid"]
    alice.post("/logout", data={"csrf_token": page_csrf(alice, "/")})
    assert sid and other.get("/api/jobs").status_code == 401


def test_a_revoked_session_cannot_post_either(app, alice, fakes):
    token = page_csrf(alice, "/new")
    copy = copy_of(app, alice)
    alice.post("/logout", data={"csrf_token": page_csrf(alice, "/")})

    response = copy.post("/new", data={"repo_url": "https://gitlab.example.com/a/b.git",
                                      "ref": "main", "machine": "qemux86-64",
                                      "target": "core-image-minimal", "csrf_token": token})
    assert response.status_code in (303, 403)
    assert response.headers.get("location", "/login").startswith("/login")
    assert fakes.jobs.count() == 0


def test_the_csrf_token_belongs_to_the_server_side_session(alice, fakes):
    token = page_csrf(alice, "/")
    assert token == fakes.sessions.rows[session_of(alice)["sid"]].csrf


def test_over_https_the_cookie_is_secure_and_hsts_is_sent(app):
    browser = TestClient(app, base_url="https://autobuild.example", follow_redirects=False)
    page = browser.get("/login")

    assert "; secure" in page.headers["set-cookie"].lower()
    assert page.headers["strict-transport-security"] == "max-age=31536000"
    token = page_csrf(browser, "/login")
    signed_in = browser.post("/login", data={"username": "alice", "password": "alice-pw",
                                             "csrf_token": token})
    assert signed_in.status_code == 303
    assert "; secure" in signed_in.headers["set-cookie"].lower()


def test_over_plain_http_neither(client):
    page = client.get("/login")
    assert "secure" not in page.headers["set-cookie"].lower()
    assert "strict-transport-security" not in page.headers


class TestCookieSecureForced:
    @pytest.fixture
    def settings(self, settings):
        return replace(settings, cookie_secure=True)

    def test_the_cookie_is_secure_even_over_http_but_hsts_only_over_https(self, client):
        page = client.get("/login")
        assert "; secure" in page.headers["set-cookie"].lower()
        assert "strict-transport-security" not in page.headers


def test_failed_login_after_logout_still_says_the_one_message(app, alice):
    alice.post("/logout", data={"csrf_token": page_csrf(alice, "/")})
    response = alice.post("/login", data={"username": "alice", "password": "nope",
                                          "csrf_token": page_csrf(alice, "/login")})
    assert response.status_code == 401 and LOGIN_FAILED in response.text


def test_an_open_live_log_ends_soon_after_its_session_does(app, alice, fakes, monkeypatch):
    from autobuild.web.routes import stream
    from tests.web.helpers import parse_sse, submit

    monkeypatch.setattr(stream, "POLL_SECONDS", 0.02)
    monkeypatch.setattr(stream, "SESSION_RECHECK_SECONDS", 0.05)
    assert submit(alice).status_code == 303  # a build that goes on
    copy = copy_of(app, alice)
    with copy.stream("GET", "/api/jobs/1/log/stream") as response:
        assert response.status_code == 200
        events = parse_sse(response.iter_lines())
        next(events)
        alice.post("/logout", data={"csrf_token": page_csrf(alice, "/")})
        rest = list(events)  # ends instead of waiting for the build

    assert all(event.get("event") != "end" for event in rest)
