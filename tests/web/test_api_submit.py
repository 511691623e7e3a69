"""POST /api/jobs: a build queued with JSON, by the same rules as the New build form."""

from dataclasses import replace

import pytest

from tests.web.helpers import VALID_JOB, page_csrf
from tests.web.test_api_tokens import bearer, new_token, script  # noqa: F401  (fixture)


def test_a_token_submits_a_build_as_its_owner_without_csrf(alice, script, fakes):  # noqa: F811
    token = new_token(alice)

    response = script.post("/api/jobs", json=VALID_JOB, headers=bearer(token))

    assert response.status_code == 201, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/jobs/{job['id']}"
    assert job["owner"] == "alice" and job["status"] == "PENDING"
    stored = fakes.jobs.get(job["id"])
    assert (stored.repo_url, stored.ref, stored.machine, stored.target) == (
        VALID_JOB["repo_url"], VALID_JOB["ref"], VALID_JOB["machine"], VALID_JOB["target"])


def test_a_kas_file_is_kept(alice, script, fakes):  # noqa: F811
    token = new_token(alice)
    body = {**VALID_JOB, "kas_file": "kas/qemu.yml"}

    response = script.post("/api/jobs", json=body, headers=bearer(token))

    assert response.status_code == 201, response.text
    assert response.json()["kas_file"] == "kas/qemu.yml"


def test_bad_fields_get_422_with_a_message_per_field(alice, script, fakes):  # noqa: F811
    token = new_token(alice)
    body = {**VALID_JOB, "repo_url": "http://example.com/x.git", "target": "-evil"}

    response = script.post("/api/jobs", json=body, headers=bearer(token))

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == {"repo_url", "target"}
    assert "https://" in errors["repo_url"]
    assert fakes.jobs.with_status("PENDING") == []


def test_unknown_or_missing_fields_are_refused(alice, script):  # noqa: F811
    token = new_token(alice)
    extra = script.post("/api/jobs", json={**VALID_JOB, "extra": "x"}, headers=bearer(token))
    missing = script.post("/api/jobs", json={"repo_url": VALID_JOB["repo_url"]},
                          headers=bearer(token))

    assert extra.status_code == missing.status_code == 400  # the app's answer to a bad request
    assert "extra" in extra.json()["detail"]
    assert "machine" in missing.json()["detail"] and "target" in missing.json()["detail"]


def test_without_credentials_it_is_401(script):  # noqa: F811
    assert script.post("/api/jobs", json=VALID_JOB).status_code == 401


def test_a_session_needs_the_csrf_header(alice, fakes):
    assert alice.post("/api/jobs", json=VALID_JOB).status_code == 403
    response = alice.post("/api/jobs", json=VALID_JOB,
                          headers={"X-CSRF-Token": page_csrf(alice, "/")})
    assert response.status_code == 201, response.text


@pytest.fixture
def settings(settings):
    return replace(settings, max_queued_per_user=2)


def test_the_queue_limit_applies(alice, script):  # noqa: F811
    token = new_token(alice)
    for _ in range(2):
        assert script.post("/api/jobs", json=VALID_JOB, headers=bearer(token)).status_code == 201

    refused = script.post("/api/jobs", json=VALID_JOB, headers=bearer(token))

    assert refused.status_code == 429
    assert "waiting in the queue" in refused.json()["detail"]
