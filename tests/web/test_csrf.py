"""Every POST needs the session's CSRF token: form field for pages, header for the API."""

import pytest

from autobuild.web.app import ROUTE_MODULES
from tests.web.helpers import VALID_JOB, page_csrf, submit

FORM_POSTS = ["/login", "/logout", "/new", "/settings", "/profile", "/jobs/1/cancel",
              "/jobs/1/rebuild", "/settings/api-tokens", "/settings/api-tokens/revoke",
              "/settings/api-tokens/all/find", "/settings/api-tokens/all/revoke",
              "/settings/api-tokens/all/revoke-owner"]
API_POSTS = ["/api/jobs", "/api/jobs/1/cancel", "/api/jobs/1/rebuild", "/api/admin/tokens/find",
             "/api/admin/tokens/1/revoke", "/api/admin/tokens/revoke-owner"]


def all_post_paths() -> set[str]:
    return {route.path.replace("{job_id:jobid}", "1").replace("{token_id}", "1")
            for module in ROUTE_MODULES for route in module.router.routes
            if "POST" in route.methods}


def test_the_lists_below_cover_every_post_route():
    assert all_post_paths() == set(FORM_POSTS) | set(API_POSTS)


@pytest.fixture
def queued_job(alice, fakes):
    assert submit(alice).status_code == 303
    return 1


FORM_FIELDS = {"username": "alice", "password": "alice-pw", "token": "glpat-abc",
               "name": "nightly", "owner": "alice", **VALID_JOB}


@pytest.mark.parametrize("path", FORM_POSTS)
@pytest.mark.parametrize("sent", [None, "", "wrong-token", "tökén-ü"], ids=["missing", "empty",
                                                                            "wrong", "non-ascii"])
def test_form_posts_without_the_right_token_get_403(app, alice, fakes, queued_job, path, sent):
    fakes.admins.admins.add("alice")  # who may revoke anyone's token, with the right token
    api_tokens = app.state.container.api_tokens()
    kept = api_tokens.create("alice", "kept")
    data = {**FORM_FIELDS, "id": kept.stored.id}
    if sent is not None:
        data["csrf_token"] = sent

    response = alice.post(path, data=data)

    assert response.status_code == 403
    assert "Form expired" in response.text
    assert "reload the page" in response.text
    # Nothing happened: still alice, no second job, no token stored, job not cancelled.
    assert alice.get("/").status_code == 200
    assert fakes.jobs.count() == 1
    assert fakes.jobs.get(1).status == "PENDING"
    assert fakes.tokens.tokens == {}
    assert [t.name for t in api_tokens.list("alice")] == ["kept"]  # none made, none revoked


def test_a_token_from_another_session_is_refused(alice, bob, fakes, queued_job):
    bobs_token = page_csrf(bob, "/")

    response = alice.post("/jobs/1/cancel", data={"csrf_token": bobs_token})

    assert response.status_code == 403
    assert fakes.jobs.get(1).status == "PENDING"


def test_login_without_a_session_token_is_refused(client):
    response = client.post("/login", data={"username": "alice", "password": "alice-pw"})

    assert response.status_code == 403
    assert client.get("/").status_code == 303


@pytest.mark.parametrize("path", API_POSTS)
@pytest.mark.parametrize("header", [None, "wrong-token"])
def test_api_posts_without_the_right_header_get_403_json(alice, fakes, queued_job, path, header):
    headers = {"X-CSRF-Token": header} if header else {}
    # The right token in a form field does not count for the API.
    response = alice.post(path, headers=headers, data={"csrf_token": page_csrf(alice, "/")})

    assert response.status_code == 403
    assert "detail" in response.json()
    assert fakes.jobs.count() == 1
    assert fakes.jobs.get(1).status == "PENDING"
