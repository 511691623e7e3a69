"""Signing in and out, the session cookie, and what anonymous visitors get."""

import pytest

from autobuild.web.routes.auth import LOGIN_FAILED
from tests.web.helpers import csrf_from, login, page_csrf, session_of


def post_login(client, username, password, next_="/", token=None):
    token = token if token is not None else page_csrf(client, "/login")
    return client.post("/login", data={"username": username, "password": password,
                                       "next": next_, "csrf_token": token})


def test_login_with_the_right_password_signs_in(client, fakes):
    response = post_login(client, "alice", "alice-pw")

    assert response.status_code == 303
    assert response.headers["location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert "alice" in page.text
    # The cookie carries only the id of a session the service keeps.
    assert set(session_of(client)) == {"sid"}
    assert fakes.sessions.rows[session_of(client)["sid"]].user == "alice"


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong"), ("mallory", "anything"), ("alice", ""), ("", "alice-pw"),
     ("root", "alice-pw")],
    ids=["wrong-password", "unknown-user", "empty-password", "empty-user", "root"],
)
def test_failed_login_says_the_same_thing_for_every_cause(client, username, password):
    response = post_login(client, username, password)

    assert response.status_code == 401
    assert LOGIN_FAILED in response.text
    assert client.get("/").status_code == 303  # still not signed in


def test_failed_login_keeps_the_user_name_but_not_the_password(client):
    response = post_login(client, "alice", "secret-wrong-pw")

    assert 'value="alice"' in response.text
    assert "secret-wrong-pw" not in response.text


def test_login_starts_a_fresh_session_with_a_new_csrf_token(client, fakes):
    client.post("/logout", data={"csrf_token": page_csrf(client, "/login")})
    assert "flashes" in session_of(client)  # something from before sign-in is in the session
    before = page_csrf(client, "/login")

    post_login(client, "alice", "alice-pw", token=before)

    cookie = session_of(client)
    assert set(cookie) == {"sid"}
    session = fakes.sessions.rows[cookie["sid"]]
    assert session.user == "alice"
    assert session.csrf != before
    # The pre-login token no longer works for anything.
    response = client.post("/logout", data={"csrf_token": before})
    assert response.status_code == 403


def test_login_as_someone_else_replaces_the_previous_user(client, fakes):
    login(client, "alice")
    alice_sid = session_of(client)["sid"]
    post_login(client, "bob", "bob-pw", token=page_csrf(client, "/"))

    assert fakes.sessions.rows[session_of(client)["sid"]].user == "bob"
    assert alice_sid not in fakes.sessions.rows  # the replaced session ended


def test_signed_in_user_visiting_login_goes_to_next(alice):
    response = alice.get("/login", params={"next": "/settings"})

    assert response.status_code == 303
    assert response.headers["location"] == "/settings"


@pytest.mark.parametrize("path", ["/", "/new", "/settings", "/profile", "/jobs/1", "/?page=2"])
def test_pages_send_anonymous_visitors_to_login_and_back(client, path):
    response = client.get(path)

    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/login?next=")
    login_page = client.get(location)
    assert f'name="next" value="{path}"' in login_page.text.replace("&amp;", "&")


def test_login_returns_to_the_page_that_was_asked_for(client):
    location = client.get("/jobs/7?x=1").headers["location"]
    login_page = client.get(location)
    token = csrf_from(login_page.text)

    response = post_login(client, "alice", "alice-pw", next_="/jobs/7?x=1", token=token)

    assert response.headers["location"] == "/jobs/7?x=1"


@pytest.mark.parametrize(
    "target",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "\\\\evil.example",
     "javascript:alert(1)", "evil.example", "/ok\r\nSet-Cookie: x=1", "http:/evil.example"],
)
def test_next_never_leaves_the_site(client, target):
    response = post_login(client, "alice", "alice-pw", next_=target)

    assert response.status_code == 303
    assert response.headers["location"] == "/"


@pytest.mark.parametrize(
    "path",
    ["/api/jobs", "/api/jobs/1", "/api/jobs/1/log", "/api/jobs/1/log/stream",
     "/api/jobs/1/artifacts", "/api/jobs/1/artifacts/a.bin"],
)
def test_api_answers_401_json_to_anonymous_callers(client, path):
    response = client.get(path)

    assert response.status_code == 401
    assert response.json() == {"detail": "Sign in first."}


def test_logout_get_only_asks_for_confirmation(alice):
    response = alice.get("/logout")

    assert response.status_code == 200
    assert 'action="/logout"' in response.text
    assert alice.get("/").status_code == 200  # still signed in


def test_logout_post_ends_the_session(alice):
    token = page_csrf(alice, "/")

    response = alice.post("/logout", data={"csrf_token": token})

    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert "signed out" in alice.get("/login").text
    assert alice.get("/").status_code == 303


def test_session_cookie_is_http_only_and_same_site_lax(client):
    response = client.get("/login")

    cookie = response.headers["set-cookie"]
    assert cookie.startswith("autobuild_session=")
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()  # cookie_secure is off in these settings


def test_a_forged_session_cookie_is_ignored(client):
    client.cookies.set("autobuild_session", "eyJ1c2VyIjogImFsaWNlIn0=.forged.sig")

    assert client.get("/").status_code == 303
