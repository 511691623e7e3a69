"""Per-user limits and request size limits through the app."""

import json
import time
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from autobuild.web.routes import stream
from tests.web.helpers import VALID_JOB, login, page_csrf, parse_sse, submit

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def settings(settings):
    return replace(settings, max_streams_per_user=3, max_queued_per_user=4)


@pytest.fixture(autouse=True)
def quick_polling(monkeypatch):
    monkeypatch.setattr(stream, "POLL_SECONDS", 0.02)


def test_the_stream_after_a_users_last_slot_gets_429_while_others_connect(app, alice, bob):
    assert submit(alice).status_code == 303  # a build that goes on: streams stay open
    url = "/api/jobs/1/log/stream"
    tabs = [TestClient(app, follow_redirects=False) for _ in range(3)]
    for tab in tabs:
        tab.cookies.set("autobuild_session", alice.cookies.get("autobuild_session"))
    opened = [tab.stream("GET", url) for tab in tabs]
    responses = [context.__enter__() for context in opened]
    try:
        for response in responses:
            assert response.status_code == 200
            next(parse_sse(response.iter_lines()))

        refused = alice.get(url)
        assert refused.status_code == 429
        assert refused.headers["retry-after"]
        assert "already have 3 live logs open" in refused.json()["detail"]

        with bob.stream("GET", url) as other:  # another user is not affected
            assert other.status_code == 200
    finally:
        opened[0].__exit__(None, None, None)

    try:
        deadline = time.monotonic() + 5  # a closed stream gives its slot back
        while True:
            with alice.stream("GET", url) as again:
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, "the closed stream kept its slot"
            time.sleep(0.05)
    finally:
        for context in opened[1:]:
            context.__exit__(None, None, None)


def test_the_queue_cap_answers_429_with_a_clear_page_and_stores_nothing(alice, fakes):
    for _ in range(4):
        assert submit(alice).status_code == 303

    response = submit(alice)

    assert response.status_code == 429
    assert "4 builds waiting in the queue" in response.text
    assert "cancel some" in response.text
    assert fakes.jobs.count() == 4


def test_the_queue_cap_answers_429_json_to_the_api(alice, bob, fakes):
    for _ in range(4):
        submit(alice)
    token = page_csrf(alice, "/")

    response = alice.post("/api/jobs/1/rebuild", headers={"X-CSRF-Token": token})

    assert response.status_code == 429
    assert "4 builds waiting" in response.json()["detail"]
    assert fakes.jobs.count() == 4
    assert submit(bob).status_code == 303


def test_the_defaults_leave_a_normal_engineer_far_from_any_limit():
    from autobuild.config import Settings

    defaults = Settings()
    assert defaults.max_streams_per_user >= 5 * 3  # a few windows, each with a few build tabs
    assert defaults.max_queued_per_user >= 10
    assert defaults.login_failures >= 5  # a few typos a minute


def test_a_form_body_over_64_kib_gets_413_and_stores_nothing(alice, fakes):
    token = page_csrf(alice, "/new")

    response = alice.post("/new", data={**VALID_JOB, "csrf_token": token,
                                        "target": "x" * (65 * 1024)})

    assert response.status_code == 413
    assert "too large" in response.text
    assert fakes.jobs.count() == 0
    assert alice.get("/").status_code == 200  # and the next request is served


def test_a_streamed_body_without_length_is_cut_at_64_kib(alice, fakes):
    token = page_csrf(alice, "/new")

    def chunks():
        yield f"csrf_token={token}&repo_url=https%3A%2F%2Fgitlab.example.com%2Fa%2Fb.git&".encode()
        for _ in range(100):
            yield b"x" * 1024

    response = alice.post("/new", content=chunks(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert response.status_code == 413
    assert fakes.jobs.count() == 0


def test_an_api_body_over_the_limit_gets_413_json(alice):
    token = page_csrf(alice, "/")

    response = alice.post("/api/jobs/1/cancel", headers={"X-CSRF-Token": token},
                          content=b"{}" + b" " * (70 * 1024))

    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


def test_the_login_form_is_size_limited_too(client):
    response = client.post("/login", data={"username": "a", "password": "p" * (70 * 1024)})
    assert response.status_code == 413


def test_too_many_headers_get_431(alice):
    headers = {f"X-Filler-{n}": "x" for n in range(120)}
    response = alice.get("/", headers=headers)
    assert response.status_code == 431


def test_an_overlong_header_gets_431(alice):
    response = alice.get("/api/jobs", headers={"X-Big": "x" * (9 * 1024)})
    assert response.status_code == 431
    assert json.loads(response.text)["detail"] == "The request headers are too large."


def test_ordinary_requests_pass_the_limits(client):
    login(client, "alice")
    assert client.get("/", headers={"X-Some": "y" * 4000}).status_code == 200
