"""One-shot messages ("Build #1 is queued."): shown once, never again on a reload, never from
the browser's cache, and not at all once the job has moved past what they say."""

from __future__ import annotations

import re
from types import SimpleNamespace

from autobuild.web.security import Flash, pop_flashes
from tests.web.helpers import page_csrf, submit

QUEUED = "Build #1 is queued."


def messages(page: str) -> list[str]:
    return re.findall(r'<div class="flash flash-\w+" role="status"[^>]*>([^<]*)</div>', page)


def test_the_queued_message_shows_once_tied_to_the_jobs_queued_state(alice):
    submit(alice)

    first = alice.get("/jobs/1")

    assert messages(first.text) == [QUEUED]
    assert 'data-job-id="1" data-while-status="PENDING">Build #1 is queued.' in first.text
    assert first.headers["cache-control"] == "no-store"  # Back does not bring it back
    again = alice.get("/jobs/1")
    assert messages(again.text) == []
    assert "no-store" not in again.headers.get("cache-control", "")


def test_a_build_that_started_before_its_page_opened_shows_no_queued_message(alice, supervisor):
    submit(alice)
    supervisor.tick()  # RUNNING already

    assert messages(alice.get("/jobs/1").text) == []
    assert messages(alice.get("/jobs/1").text) == []  # and it was used up all the same


def test_a_job_message_shows_on_other_pages_as_it_is(alice):
    submit(alice)

    assert messages(alice.get("/").text) == [QUEUED]  # the list has no job to outdate it


def test_a_rebuild_says_queued_while_it_is(alice, supervisor, fakes):
    submit(alice)
    supervisor.tick()
    fakes.runner.finish(1, 0)
    supervisor.tick()
    alice.get("/jobs/1")

    response = alice.post("/jobs/1/rebuild", data={"csrf_token": page_csrf(alice, "/jobs/1")})

    page = alice.get(response.headers["location"]).text
    assert messages(page) == ["Build #2 is queued: a rebuild of #1."]
    assert 'data-job-id="2" data-while-status="PENDING"' in page


def test_asked_to_stop_holds_while_the_build_still_runs(alice, supervisor):
    submit(alice)
    supervisor.tick()
    alice.get("/jobs/1")

    alice.post("/jobs/1/cancel", data={"csrf_token": page_csrf(alice, "/jobs/1")})

    page = alice.get("/jobs/1").text
    assert messages(page) == ["Build #1 has been asked to stop; it shows CANCELLED once it has."]
    assert 'data-job-id="1" data-while-status="RUNNING"' in page


def test_a_message_that_stays_true_is_not_tied_to_a_state(alice):
    submit(alice)
    alice.get("/jobs/1")

    alice.post("/jobs/1/cancel", data={"csrf_token": page_csrf(alice, "/jobs/1")})

    page = alice.get("/jobs/1").text
    assert messages(page) == ["Build #1 was cancelled before it started."]
    assert "data-while-status" not in page


def test_the_token_saved_message_shows_once(alice):
    token = page_csrf(alice, "/settings")
    alice.post("/settings", data={"token": "glpat-abc", "csrf_token": token})

    assert messages(alice.get("/settings").text) == [
        "Your GitLab token is saved. New builds clone with it."]
    assert messages(alice.get("/settings").text) == []


def test_messages_in_a_cookie_from_before_job_states_still_show():
    request = SimpleNamespace(session={"flashes": [["info", "You are signed out."],
                                                   ["info", QUEUED, 1, ["PENDING"]]]})

    assert pop_flashes(request) == [Flash("info", "You are signed out."),
                                    Flash("info", QUEUED, 1, ("PENDING",))]
    assert request.session == {}
