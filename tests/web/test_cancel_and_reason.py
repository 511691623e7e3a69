"""Cancel from the job list, administrators (AUTO_BUILD_ADMIN_GROUP), "Cancelling…" while a
build stops, and the reason of a FAILED or CANCELLED build shown on its page."""

from __future__ import annotations

import html
import re

from autobuild.domain.jobs import JobStatus
from tests.web.helpers import page_csrf, submit


def _row(page: str, job_id: int) -> str:
    match = re.search(rf'<tr class="job-row">\s*<td data-label="Build"><a class="job-link" '
                      rf'href="/jobs/{job_id}">.*?</tr>', page, re.S)
    assert match, f"no row for build #{job_id}"
    return match.group(0)


def _status_line(page: str) -> str:
    match = re.search(r'<p class="status-line" id="status-line"[^>]*>(.*?)</p>', page, re.S)
    assert match
    return html.unescape(match.group(1))


def test_job_list_has_a_cancel_button_only_for_unfinished_builds_of_the_user(alice, bob, fakes,
                                                                              supervisor):
    submit(alice)  # 1: will run
    submit(bob)  # 2: bob's, queued
    submit(alice)  # 3: queued
    submit(alice)  # 4: will end
    fakes.jobs.rows[4].status = JobStatus.SUCCESS
    supervisor.tick()
    assert fakes.jobs.get(1).status is JobStatus.RUNNING

    page = alice.get("/").text
    for job_id in (1, 3):
        assert f'action="/jobs/{job_id}/cancel"' in _row(page, job_id)
    for job_id in (2, 4):
        assert "/cancel" not in _row(page, job_id)
    assert 'name="csrf_token"' in _row(page, 1)


def test_cancel_from_the_list_takes_a_queued_build_out_and_comes_back_to_the_list(alice, fakes):
    submit(alice)
    response = alice.post("/jobs/1/cancel", data={"csrf_token": page_csrf(alice, "/"),
                                                  "back": "list"})
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert fakes.jobs.get(1).status is JobStatus.CANCELLED
    page = alice.get("/").text
    assert "Build #1 was cancelled before it started." in page
    assert "/cancel" not in _row(page, 1)


def test_only_the_list_is_a_place_to_go_back_to(alice, fakes):
    submit(alice)
    response = alice.post("/jobs/1/cancel", data={"csrf_token": page_csrf(alice, "/"),
                                                  "back": "https://evil.example.com/"})
    assert response.headers["location"] == "/jobs/1"


def test_a_running_build_shows_cancelling_until_it_has_stopped(alice, fakes, supervisor):
    submit(alice)
    supervisor.tick()
    alice.post("/jobs/1/cancel", data={"csrf_token": page_csrf(alice, "/"), "back": "list"})
    assert fakes.runner.cancelled == [1]

    listing = alice.get("/").text
    assert "Cancelling…" in _row(listing, 1) and "/cancel" not in _row(listing, 1)
    assert _status_line(alice.get("/jobs/1").text) == "Cancelling… (asked by alice)"

    fakes.runner.finish(1, 130, status="CANCELLED")
    supervisor.tick()
    assert "Cancelling…" not in _row(alice.get("/").text, 1)
    page = alice.get("/jobs/1").text
    assert _status_line(page) == "cancelled by alice"
    assert 'data-status="CANCELLED"' in page


def test_an_administrator_may_cancel_anyones_build(alice, bob, fakes, supervisor):
    submit(alice)
    supervisor.tick()
    assert 'id="cancel-form"' not in bob.get("/jobs/1").text
    assert bob.get("/api/jobs/1").json()["can_cancel"] is False
    refused = bob.post("/jobs/1/cancel", data={"csrf_token": page_csrf(bob, "/")})
    assert refused.status_code == 403 and fakes.runner.cancelled == []

    fakes.admins.admins.add("bob")

    assert 'id="cancel-form"' in bob.get("/jobs/1").text
    assert 'action="/jobs/1/cancel"' in _row(bob.get("/").text, 1)
    assert bob.get("/api/jobs").json()["items"][0]["can_cancel"] is True
    response = bob.post("/api/jobs/1/cancel", headers={"X-CSRF-Token": page_csrf(bob, "/")})
    assert response.status_code == 200
    assert response.json()["cancel_requested_by"] == "bob"
    assert fakes.runner.cancelled == [1]
    fakes.runner.finish(1, 130, status="CANCELLED")
    supervisor.tick()
    assert fakes.jobs.get(1).reason == "cancelled by bob"


def test_a_build_lost_while_the_service_was_down_shows_why_it_failed(alice, fakes, supervisor):
    submit(alice)
    supervisor.tick()  # RUNNING; then the service stops, and the runner is killed meanwhile
    fakes.runner.lose(1, "the runner stopped without saying how the build ended (it was "
                         "killed, or the machine restarted)", started=True)
    supervisor.reconcile()  # as the restarted service does first

    page = alice.get("/jobs/1").text
    assert 'data-status="FAILED"' in page
    assert _status_line(page).startswith("the runner stopped without saying how the build ended")
    assert alice.get("/api/jobs/1").json()["reason"].startswith("the runner stopped")


def test_a_build_that_never_started_says_so_on_its_page(alice, fakes, supervisor):
    submit(alice)
    supervisor.tick()
    fakes.runner.lose(1, "sudo: a password is required", started=False)
    supervisor.tick()
    page = alice.get("/jobs/1").text
    assert 'data-status="FAILED"' in page
    assert _status_line(page) == "the build never started: sudo: a password is required"


def test_a_cancel_the_runner_could_not_deliver_is_shown_and_the_build_goes_on(alice, fakes,
                                                                            supervisor):
    submit(alice)
    supervisor.tick()
    fakes.runner.refuse_cancel = "the runner did not answer within 15 s"

    response = alice.post("/jobs/1/cancel", data={"csrf_token": page_csrf(alice, "/"),
                                                  "back": "list"})

    assert response.status_code == 303 and response.headers["location"] == "/"
    page = alice.get("/").text
    assert "Build #1 goes on: the runner did not answer within 15 s" in page
    assert "Cancelling…" not in _row(page, 1)
    assert 'action="/jobs/1/cancel"' in _row(page, 1)  # it can be tried again
    stored = fakes.jobs.get(1)
    assert (stored.status, stored.cancel_requested_by) == (JobStatus.RUNNING, None)
    assert "Cancelling" not in _status_line(alice.get("/jobs/1").text)


def test_the_api_answers_a_cancel_the_runner_could_not_deliver_with_a_json_error(
        app, alice, fakes, supervisor):
    submit(alice)
    supervisor.tick()
    fakes.runner.refuse_cancel = "sudo: unable to resolve host buildhost"

    response = alice.post("/api/jobs/1/cancel", headers={"X-CSRF-Token": page_csrf(alice, "/")})

    assert 400 <= response.status_code < 600 and response.status_code != 500
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert "sudo: unable to resolve host buildhost" in detail
    assert "Traceback" not in response.text
    assert fakes.jobs.get(1).status is JobStatus.RUNNING
    assert fakes.jobs.get(1).cancel_requested_by is None
    assert alice.get("/api/jobs/1").json()["can_cancel"] is True


def test_a_build_that_failed_after_its_cancel_was_asked_shows_failed(alice, fakes, supervisor):
    submit(alice)
    supervisor.tick()
    alice.post("/jobs/1/cancel", data={"csrf_token": page_csrf(alice, "/")})
    fakes.runner.finish(1, 1)
    supervisor.tick()
    page = alice.get("/jobs/1").text
    assert 'data-status="FAILED"' in page
    assert _status_line(page) == "the build ended with exit code 1"
    assert alice.get("/api/jobs/1").json()["status"] == "FAILED"
