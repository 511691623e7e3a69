"""The HTML pages: submitting builds, the job list, the job page, cancel and rebuild."""

import html
import re

import pytest

from autobuild.domain.jobs import JobStatus
from tests.web.helpers import VALID_JOB, page_csrf, submit


def run_to_end(supervisor, runner, job_id, exit_code=0):
    """Drive a job through the supervisor: start it, then let the runner end it."""
    supervisor.tick()
    runner.finish(job_id, exit_code)
    supervisor.tick()


def test_new_build_form_has_the_defaults(alice):
    page = alice.get("/new").text

    assert 'placeholder="https://gitlab.example.com/group/project.git"' in page
    assert 'name="ref" type="text" value="main"' in page
    assert 'name="target" type="text" value="core-image-minimal"' in page
    assert 'name="machine"' in page


def test_submitting_a_valid_build_queues_it_and_shows_its_page(alice, fakes, supervisor):
    response = submit(alice)

    assert response.status_code == 303
    assert response.headers["location"] == "/jobs/1"
    job = fakes.jobs.get(1)
    assert job.status is JobStatus.PENDING
    assert job.owner == "alice"
    assert (job.repo_url, job.ref, job.machine, job.target) == tuple(VALID_JOB.values())
    page = alice.get("/jobs/1").text
    assert "Build #1 is queued." in page
    assert "PENDING" in page
    supervisor.tick()
    assert fakes.runner.orders[1][0] == ("*.bin", "*.mtd")  # plugin patterns reached the runner


def test_submitted_values_are_stripped(alice, fakes):
    submit(alice, ref="  v1.2  ", machine=" qemuarm64 ")

    assert fakes.jobs.get(1).ref == "v1.2"
    assert fakes.jobs.get(1).machine == "qemuarm64"


def test_invalid_fields_come_back_with_a_message_each_and_the_values_kept(alice, fakes):
    bad = {"repo_url": "http://gitlab.example.com/x.git?a=1", "ref": "--upload-pack=evil",
           "machine": "qemu;rm -rf", "target": "-c bad"}

    response = submit(alice, **bad)

    assert response.status_code == 422
    page = html.unescape(response.text)
    errors = re.findall(r'class="field-error" id="e-(\w+)"', response.text)
    assert sorted(errors) == ["machine", "ref", "repo_url", "target"]
    assert "only https:// repository URLs are accepted" in page
    assert "a ref must not start with '-'" in page
    for value in bad.values():
        assert f'value="{value}"' in page
    assert fakes.jobs.count() == 0


def test_one_bad_field_marks_only_that_field(alice, fakes):
    response = submit(alice, machine="")

    assert response.status_code == 422
    assert re.findall(r'class="field-error" id="e-(\w+)"', response.text) == ["machine"]
    assert f'value="{VALID_JOB["repo_url"]}"' in response.text


def test_new_build_warns_when_no_token_is_on_file(alice, fakes):
    assert "no GitLab token on file" in alice.get("/new").text

    fakes.tokens.store("alice", "glpat-x")

    assert "no GitLab token on file" not in alice.get("/new").text


def test_new_build_can_start_from_an_earlier_build(alice, fakes):
    submit(alice, ref="release/2.0", machine="imx8mm-evk")

    page = alice.get("/new", params={"from": "1"}).text

    assert 'value="release/2.0"' in page
    assert 'value="imx8mm-evk"' in page
    assert alice.get("/new", params={"from": "99"}).status_code == 200
    assert alice.get("/new", params={"from": "x"}).status_code == 200
    assert alice.get("/new", params={"from": "\u00b2"}).status_code == 200  # a digit, not ASCII


def test_job_list_is_newest_first_and_paginated(alice, bob, fakes):
    for number in range(30):  # two users: one may queue only 20
        submit(bob if number % 2 else alice, target=f"image-{number}")

    first = alice.get("/").text
    ids = [int(x) for x in re.findall(r'href="/jobs/(\d+)"', first)]
    assert ids == list(range(30, 5, -1))  # 25 per page
    assert 'href="/?before=6"' in first and "Newer" not in first

    second = alice.get("/", params={"before": 6}).text
    assert [int(x) for x in re.findall(r'href="/jobs/(\d+)"', second)] == [5, 4, 3, 2, 1]
    assert 'href="/?after=5"' in second and "Older" not in second
    back = alice.get("/", params={"after": 5}).text
    assert [int(x) for x in re.findall(r'href="/jobs/(\d+)"', back)] == ids
    old_link = alice.get("/", params={"page": 2}).text  # old numbered links still work
    assert [int(x) for x in re.findall(r'href="/jobs/(\d+)"', old_link)] == [5, 4, 3, 2, 1]
    beyond = alice.get("/", params={"page": 99}).text  # past the end: the 25 oldest
    assert [int(x) for x in re.findall(r'href="/jobs/(\d+)"', beyond)] == list(range(25, 0, -1))


def test_job_list_filters_by_owner_status_and_text_and_keeps_them_across_pages(
        alice, bob, fakes):
    for number in range(30):
        submit(bob if number % 2 else alice, target=f"image-{number}")
    fakes.jobs.rows[1].status = JobStatus.FAILED

    mine = alice.get("/", params={"owner": "alice"}).text
    ids = [int(x) for x in re.findall(r'href="/jobs/(\d+)"', mine)]
    assert ids == list(range(29, 0, -2))
    assert 'value="alice"' in mine and "Older" not in mine

    failed = alice.get("/", params={"status": "FAILED"}).text
    assert re.findall(r'href="/jobs/(\d+)"', failed) == ["1"]
    text = alice.get("/", params={"q": "IMAGE-2"}).text  # image-2 and image-20..29
    assert len(re.findall(r'href="/jobs/(\d+)"', text)) == 11

    paged = alice.get("/", params={"q": "image", "status": "PENDING"}).text
    assert 'href="/?status=PENDING&amp;q=image&amp;before=' in paged
    none = alice.get("/", params={"owner": "carol"}).text
    assert "No builds match these filters" in none


@pytest.mark.parametrize("query", ["status=DONE", "status=pending", "before=0", "after=-1",
                                   f"before={2**63}", "page=0", "owner=" + "x" * 65,
                                   "q=" + "x" * 201, "q=ab%00cd", "q=a%0Ab", "owner=al%00ice"])
def test_job_list_refuses_invalid_parameters(alice, query):
    assert alice.get(f"/?{query}").status_code == 400
    assert alice.get(f"/api/jobs?{query}").status_code == 400


@pytest.mark.parametrize("query, message", [
    ("status=BOGUS", "status must be one of PENDING, RUNNING, SUCCESS, FAILED, CANCELLED"),
    ("status=pending", "status must be one of PENDING, RUNNING,"),
    ("before=abc", "'abc' is not a build number."),
    ("before=0", "'0' is not a build number."),
    (f"before={2**63}", f"'{2**63}' is not a build number."),
    ("after=-1", "'-1' is not a build number."),
    ("page=x", "'x' is not a page number (1 to 1,000,000)."),
])
def test_a_hand_edited_job_list_address_gets_a_clear_message(alice, query, message):
    """Not pydantic's "String should match pattern '^(|PENDING|...)$'" or "Input should be a
    valid integer": the page and the API say what is wrong with the value."""
    page = alice.get(f"/?{query}")
    api = alice.get(f"/api/jobs?{query}")

    assert page.status_code == 400 and message in html.unescape(page.text)
    assert "should" not in page.text and "Traceback" not in page.text
    assert api.status_code == 400 and api.json()["detail"].startswith(message)


def test_job_list_shows_status_owner_target_and_duration(alice, bob, fakes, supervisor):
    submit(alice)
    submit(bob, machine="raspberrypi4")
    supervisor.tick()  # job 1 starts
    fakes.clock.advance(125)
    fakes.runner.finish(1, 2)
    supervisor.tick()  # job 1 ends, job 2 starts
    fakes.clock.advance(7)

    page = alice.get("/").text

    rows = page.split('class="job-row"')[1:]
    assert len(rows) == 2
    assert "#2" in rows[0] and "RUNNING" in rows[0] and "bob" in rows[0]
    assert ">7s<" in rows[0]
    assert "raspberrypi4" in rows[0]
    assert "#1" in rows[1] and "FAILED" in rows[1] and "alice" in rows[1]
    assert "2m 05s" in rows[1]
    assert "bsp/yocto-image" in rows[1]


def test_job_list_says_when_there_are_no_builds(alice):
    assert "No builds yet" in alice.get("/").text


def test_job_page_shows_status_parameters_and_artifacts(alice, bob, fakes, supervisor):
    submit(alice)
    fakes.files.artifacts[1] = {"core-image.bin": b"x" * 2048}
    run_to_end(supervisor, fakes.runner, 1)

    page = bob.get("/jobs/1").text  # any signed-in user may look

    assert 'id="job-status">SUCCESS<' in page
    for value in VALID_JOB.values():
        assert value in page
    assert 'href="/api/jobs/1/artifacts/core-image.bin"' in page
    assert "2.0 KiB" in page
    assert 'data-job-id="1"' in page
    assert "/static/app.js" in page


def test_cancel_button_only_for_the_owner_of_an_unfinished_build(alice, bob, fakes, supervisor):
    submit(alice)

    assert 'id="cancel-form"' in alice.get("/jobs/1").text
    assert 'id="cancel-form"' not in bob.get("/jobs/1").text
    run_to_end(supervisor, fakes.runner, 1)
    assert 'id="cancel-form"' not in alice.get("/jobs/1").text


def test_owner_cancels_a_queued_build(alice, fakes):
    submit(alice)

    response = alice.post("/jobs/1/cancel", data={"csrf_token": page_csrf(alice, "/jobs/1")})

    assert response.status_code == 303
    assert response.headers["location"] == "/jobs/1"
    assert fakes.jobs.get(1).status is JobStatus.CANCELLED
    assert "cancelled before it started" in alice.get("/jobs/1").text


def test_owner_cancels_a_running_build_through_the_runner(alice, fakes, supervisor):
    submit(alice)
    supervisor.tick()

    alice.post("/jobs/1/cancel", data={"csrf_token": page_csrf(alice, "/jobs/1")})

    assert fakes.runner.cancelled == [1]
    assert fakes.jobs.get(1).cancel_requested_by == "alice"
    assert "asked to stop" in alice.get("/jobs/1").text


def test_someone_else_cannot_cancel(alice, bob, fakes):
    submit(alice)

    response = bob.post("/jobs/1/cancel", data={"csrf_token": page_csrf(bob, "/jobs/1")})

    assert response.status_code == 403
    assert "only the owner of a build can cancel it" in response.text
    assert fakes.jobs.get(1).status is JobStatus.PENDING


def test_rebuild_queues_a_new_build_with_the_same_parameters(alice, bob, fakes, supervisor):
    submit(alice, ref="v3.1")
    run_to_end(supervisor, fakes.runner, 1, exit_code=1)

    response = alice.post("/jobs/1/rebuild", data={"csrf_token": page_csrf(alice, "/jobs/1")})

    assert response.status_code == 303
    assert response.headers["location"] == "/jobs/2"
    new = fakes.jobs.get(2)
    assert new.owner == "alice"
    assert new.status is JobStatus.PENDING
    assert new.ref == "v3.1"
    assert fakes.jobs.get(1).status is JobStatus.FAILED
    assert "a rebuild of #1" in alice.get("/jobs/2").text
    forged = bob.post("/jobs/1/rebuild", data={"csrf_token": page_csrf(bob, "/jobs/1")})
    assert forged.status_code == 403 and "/new?from=1" in forged.text  # the form, not a click
    assert fakes.jobs.get(3) is None


@pytest.mark.parametrize("path", ["/jobs/abc", "/jobs/1.5", "/jobs/-1", "/jobs/99",
                                  "/jobs/9999999999999999999999", "/nowhere"])
def test_unknown_pages_are_404_pages_without_a_traceback(alice, path):
    response = alice.get(path)

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text
    assert "<h1>" in response.text


def test_cancel_of_an_unknown_build_is_404(alice):
    response = alice.post("/jobs/42/cancel", data={"csrf_token": page_csrf(alice, "/")})

    assert response.status_code == 404
    assert "Build #42 does not exist." in response.text


def test_bad_query_values_are_400_not_500(alice):
    response = alice.get("/", params={"page": "lots"})

    assert response.status_code == 400
    assert "page" in response.text


def test_wrong_method_is_a_page_not_a_crash(alice):
    response = alice.get("/jobs/1/cancel")

    assert response.status_code == 405
    assert "<h1>" in response.text


def test_the_header_shows_the_user_and_the_main_links(alice):
    page = alice.get("/").text

    assert 'class="whoami"' in page and ">alice<" in page
    assert 'href="/new"' in page
    assert 'href="/settings"' in page
    assert 'action="/logout"' in page


def test_user_input_is_escaped_in_pages(alice, fakes):
    submit(alice, target="x<script>")  # refused, and shown back escaped

    page = submit(alice, target="x<script>").text

    assert "x<script>" not in page
    assert "x&lt;script&gt;" in page


def test_a_colleagues_build_is_rebuilt_through_the_form_that_says_where_the_token_goes(
        alice, bob, fakes, supervisor):
    """A one-click rebuild of a colleague's job would clone THEIR URL with YOUR token: the
    page offers the filled-in form instead, which names the host the token goes to."""
    submit(alice, repo_url="https://git.alice-lab.example/bsp/poky.git")
    run_to_end(supervisor, fakes.runner, 1)

    own = alice.get("/jobs/1").text
    assert 'action="/jobs/1/rebuild"' in own
    page = bob.get("/jobs/1").text
    assert 'action="/jobs/1/rebuild"' not in page and 'href="/new?from=1"' in page
    form = bob.get("/new?from=1").text
    assert "alice's build #1" in form and "git.alice-lab.example" in form
    assert "https://git.alice-lab.example/bsp/poky.git" in form
    assert "alice's build" not in alice.get("/new?from=1").text
