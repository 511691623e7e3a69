"""Personal API tokens through the app: Settings makes, lists and revokes them; the API takes
them in ``Authorization: Bearer`` as their owner (no CSRF), nowhere else."""

import logging
import re

import pytest
from starlette.testclient import TestClient

from tests.web.helpers import VALID_JOB, login, page_csrf, submit

PAGE = "/settings/api-tokens"
_SHOWN = re.compile(r'value="(abt_[A-Za-z0-9_-]{43})"')


def create(client, name="release script", expires_days=""):
    return client.post(PAGE, data={"name": name, "expires_days": expires_days,
                                   "csrf_token": page_csrf(client, PAGE)})


def new_token(client, **fields) -> str:
    """Made through the page; the token as the page shows it."""
    response = create(client, **fields)
    assert response.status_code == 201, response.text
    match = _SHOWN.search(response.text)
    assert match, "the new token is not on the page"
    return match.group(1)


@pytest.fixture
def script(app):
    """A client with no cookies at all, as curl in a CI job."""
    other = TestClient(app, follow_redirects=False)  # no lifespan: no scheduler picks jobs up
    yield other
    other.close()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


# --- Settings: create, list, revoke ------------------------------------------------------------

def test_settings_links_to_the_api_tokens_page(alice):
    page = alice.get("/settings")
    assert 'href="/settings/api-tokens"' in page.text


def test_a_new_token_is_shown_once_then_listed_by_name_and_id_only(alice, fakes):
    token = new_token(alice, name="release script", expires_days="30")

    [stored] = fakes.api_token_store.rows.values()
    assert stored.owner == "alice" and stored.name == "release script"
    assert token.startswith("abt_") and token[4:12] == stored.id
    listing = alice.get(PAGE)
    assert listing.status_code == 200
    assert "<td data-label=\"Name\">release script</td>" in listing.text and f"abt_{stored.id}" in listing.text
    assert token not in listing.text  # never again
    assert token not in alice.get("/settings").text
    assert "2026-01-31 12:00 UTC" in listing.text  # expires in 30 days (the fake clock)
    assert "never" in listing.text  # not used yet


def test_the_page_with_the_new_token_is_not_cached_and_the_token_is_not_in_the_cookie(alice):
    response = create(alice)
    token = _SHOWN.search(response.text).group(1)

    assert response.headers["cache-control"] == "no-store"
    assert token not in str(alice.cookies.get("autobuild_session"))
    assert "Copy it now" in response.text


def test_last_use_is_listed(alice, script, fakes):
    token = new_token(alice)
    fakes.clock.advance(3600)
    assert script.get("/api/jobs", headers=bearer(token)).status_code == 200

    assert "2026-01-01 13:00 UTC" in alice.get(PAGE).text


@pytest.mark.parametrize("name, days, message", [
    ("", "", "Give the token a name"), ("x" * 65, "", "at most 64"),
    ("ci", "0", "whole number of days"), ("ci", "ten", "whole number of days"),
])
def test_bad_names_and_lifetimes_are_refused_on_the_page(alice, fakes, name, days, message):
    response = create(alice, name=name, expires_days=days)

    assert response.status_code == 400
    assert message in response.text
    assert fakes.api_token_store.rows == {}


def test_at_most_twenty_live_tokens(alice, fakes):
    for number in range(20):
        new_token(alice, name=f"t{number}")
    response = create(alice, name="one too many")

    assert response.status_code == 400
    assert "already have 20 tokens" in response.text
    assert len(fakes.api_token_store.rows) == 20


def test_revoking_takes_effect_at_once_and_leaves_the_list(alice, script, fakes):
    token = new_token(alice)
    assert script.get("/api/jobs", headers=bearer(token)).status_code == 200
    [stored] = fakes.api_token_store.rows.values()

    response = alice.post(PAGE + "/revoke", data={"id": stored.id,
                                                  "csrf_token": page_csrf(alice, PAGE)})

    assert response.status_code == 303 and response.headers["location"] == PAGE
    page = alice.get(PAGE)
    assert "is revoked" in page.text and "<td data-label=\"Name\">release script</td>" not in page.text
    assert script.get("/api/jobs", headers=bearer(token)).status_code == 401


def test_nobody_lists_or_revokes_another_engineers_token(alice, bob, script):
    token = new_token(alice, name="alice's CI")
    token_id = token[4:12]

    assert "alice&#39;s CI" not in bob.get(PAGE).text and token_id not in bob.get(PAGE).text
    response = bob.post(PAGE + "/revoke", data={"id": token_id,
                                                "csrf_token": page_csrf(bob, PAGE)})
    assert response.status_code == 303
    assert "no such token" in bob.get(PAGE).text
    assert script.get("/api/jobs", headers=bearer(token)).status_code == 200


def test_the_token_pages_need_a_session(client):
    assert client.get(PAGE).headers["location"].startswith("/login")


# --- Bearer requests on the API ----------------------------------------------------------------

def test_a_token_reads_the_api_as_its_owner(alice, script):
    assert submit(alice).status_code == 303
    token = new_token(alice)

    listed = script.get("/api/jobs", headers=bearer(token))
    assert listed.status_code == 200
    [job] = listed.json()["items"]
    assert job["owner"] == "alice" and job["can_cancel"] is True
    assert script.get("/api/jobs/1", headers=bearer(token)).json()["id"] == 1
    assert script.get("/api/jobs/1/log", headers=bearer(token)).status_code in (200, 404)
    assert "set-cookie" not in listed.headers  # no session is made for a script


def test_the_bearer_scheme_is_case_insensitive(alice, script):
    token = new_token(alice)
    assert script.get("/api/jobs", headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_a_token_cancels_without_a_csrf_token(alice, script, fakes):
    assert submit(alice).status_code == 303
    token = new_token(alice)

    response = script.post("/api/jobs/1/cancel", headers=bearer(token))

    assert response.status_code == 200, response.text
    assert fakes.jobs.get(1).status == "CANCELLED"


def test_a_token_rebuilds_as_its_owner(alice, bob, script, fakes):
    assert submit(alice).status_code == 303
    token = new_token(alice)

    response = script.post("/api/jobs/1/rebuild", headers=bearer(token))

    assert response.status_code == 201
    assert fakes.jobs.get(2).owner == "alice"


def test_a_token_cannot_cancel_another_engineers_build(alice, bob, script, fakes):
    assert submit(bob).status_code == 303
    token = new_token(alice)

    assert script.post("/api/jobs/1/cancel", headers=bearer(token)).status_code == 403
    assert fakes.jobs.get(1).status == "PENDING"


def test_a_session_cookie_still_needs_csrf_on_the_api(alice, fakes):
    assert submit(alice).status_code == 303
    assert alice.post("/api/jobs/1/cancel").status_code == 403
    assert fakes.jobs.get(1).status == "PENDING"


def test_a_bad_token_is_refused_even_with_a_live_session(alice, fakes):
    """A request with a bearer token is judged by the token alone (and a wrong one gets no
    fallback to the cookie that came with it)."""
    assert submit(alice).status_code == 303
    response = alice.post("/api/jobs/1/cancel", headers=bearer("abt_" + "x" * 43))

    assert response.status_code == 401
    assert fakes.jobs.get(1).status == "PENDING"


def _unknown(token):
    return "abt_" + ("A" if token[4] != "A" else "B") + token[5:]


def _wrong_secret(token):
    return token[:-1] + ("A" if token[-1] != "A" else "B")


REFUSED = {
    "unknown id": _unknown,
    "known id, wrong secret": _wrong_secret,
    "malformed (short)": lambda token: token[:-1],
    "malformed (no prefix)": lambda token: token[4:],
    "empty": lambda token: "",
    "someone's session id": lambda token: "x" * 43,
}


@pytest.mark.parametrize("label", REFUSED)
def test_unknown_and_malformed_tokens_get_the_same_401(alice, script, fakes, label):
    token = new_token(alice)
    assert submit(alice).status_code == 303

    for method, path in (("GET", "/api/jobs"), ("GET", "/api/jobs/1"),
                         ("POST", "/api/jobs/1/cancel")):
        response = script.request(method, path, headers=bearer(REFUSED[label](token)))
        assert response.status_code == 401
        assert response.json() == {"detail": "Sign in first."}
        assert response.headers["www-authenticate"] == "Bearer"
    assert fakes.jobs.get(1).status == "PENDING"


def test_an_expired_token_gets_401_the_moment_it_expires(alice, script, fakes):
    token = new_token(alice, expires_days="1")
    fakes.clock.advance(86400 - 1)
    assert script.get("/api/jobs", headers=bearer(token)).status_code == 200
    fakes.clock.advance(1)

    response = script.get("/api/jobs", headers=bearer(token))
    assert response.status_code == 401 and response.json() == {"detail": "Sign in first."}
    login(alice, "alice")  # the session of a day ago has ended meanwhile
    assert "expired" in alice.get(PAGE).text


def test_a_removed_member_is_refused_at_once(alice, script, fakes):
    token = new_token(alice)
    fakes.members.members.discard("alice")

    assert script.get("/api/jobs", headers=bearer(token)).status_code == 401
    assert script.post("/api/jobs/1/cancel", headers=bearer(token)).status_code == 401


@pytest.mark.parametrize("query", ["token", "access_token", "private_token", "api_token"])
def test_a_token_in_the_query_string_is_not_accepted(alice, script, query):
    token = new_token(alice)

    assert script.get(f"/api/jobs?{query}={token}").status_code == 401
    assert script.get(f"/api/jobs/1?{query}={token}").status_code == 401


def test_the_html_pages_do_not_take_tokens(alice, script):
    token = new_token(alice)
    for path in ("/", "/new", "/settings", PAGE):
        response = script.get(path, headers=bearer(token))
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
    response = script.post("/new", headers=bearer(token), data=VALID_JOB)
    assert response.status_code == 403  # no session: no CSRF token to match


def test_another_authorization_scheme_falls_back_to_the_session(alice):
    """A proxy in front may add Basic authentication: it does not sign the browser out."""
    response = alice.get("/api/jobs", headers={"Authorization": "Basic YWxpY2U6eA=="})
    assert response.status_code == 200


def test_the_token_is_never_logged(alice, script, caplog):
    token = new_token(alice)
    with caplog.at_level(logging.DEBUG):
        script.get("/api/jobs", headers=bearer(token))
        script.get("/api/jobs", headers=bearer(_wrong_secret(token)))
        script.get("/api/jobs/999", headers=bearer(token))

    assert token not in caplog.text and token[12:] not in caplog.text
    assert f"API token refused ({token[4:12]})" in caplog.text


def test_the_live_log_stream_takes_a_token(alice, script):
    assert submit(alice).status_code == 303
    token = new_token(alice)

    with script.stream("GET", "/api/jobs/1/log/stream", headers=bearer(token)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
    assert script.get("/api/jobs/1/log/stream").status_code == 401


def test_an_open_stream_ends_soon_after_its_token_is_revoked(app, alice, script, fakes,
                                                            monkeypatch):
    from autobuild.web.routes import stream
    from tests.web.helpers import parse_sse

    monkeypatch.setattr(stream, "POLL_SECONDS", 0.02)
    monkeypatch.setattr(stream, "SESSION_RECHECK_SECONDS", 0.05)
    assert submit(alice).status_code == 303  # a build that goes on
    token = new_token(alice)
    with script.stream("GET", "/api/jobs/1/log/stream", headers=bearer(token)) as response:
        assert response.status_code == 200
        events = parse_sse(response.iter_lines())
        next(events)
        app.state.container.api_tokens().revoke("alice", token[4:12])
        rest = list(events)  # ends instead of waiting for the build

    assert all(event.get("event") != "end" for event in rest)
