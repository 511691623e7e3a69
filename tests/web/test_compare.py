"""Comparing two builds: /jobs/compare?a=&b=, GET /api/jobs/compare, and the job page's
"Compare with build" form."""

from __future__ import annotations

import html
import re

import pytest

from tests.web.helpers import submit
from tests.web.test_timing import TASKS, condensed

MANIFEST = "core-image-minimal-qemux86-64.rootfs.manifest"
SHA_A, SHA_B = "1" * 40, "2" * 40


def log(sha: str, version: str) -> bytes:
    return (f"==> Commit {sha}\nBuild Configuration:\nBB_VERSION           = \"2.8.0\"\n"
            f"DISTRO_VERSION       = \"{version}\"\nmeta-standin         = \"main:{sha}\"\n\n"
            ).encode()


@pytest.fixture
def two_builds(alice, fakes, supervisor):
    """Builds #1 and #2 of the same image, a package added and one upgraded between them."""
    for job_id, sha, version, packages, image in [
            (1, SHA_A, "1.0", b"busybox core2-64 1.36.1-r0\nlibc6 core2-64 2.39-r0\n", 1000),
            (2, SHA_B, "1.1", b"busybox core2-64 1.36.2-r0\nlibc6 core2-64 2.39-r0\n"
                              b"htop core2-64 3.3.0-r0\n", 1300)]:
        assert submit(alice).status_code == 303
        supervisor.tick()
        fakes.runner.finish(job_id, 0)
        supervisor.tick()
        fakes.files.logs[job_id] = log(sha, version)
        fakes.files.artifacts[job_id] = {
            MANIFEST: packages,
            f"core-image-minimal-qemux86-64-2026010{job_id}120000.rootfs.bin": b"x" * image,
            "core-image-minimal-qemux86-64.bin": b"x" * image}
    fakes.files.buildhistory[1] = {"installed-package-sizes.txt": b"600\tKiB\tbusybox\n",
                                   "image-info.txt": b"IMAGESIZE = 700\n"}
    fakes.files.buildhistory[2] = {
        "installed-package-sizes.txt": b"610\tKiB\tbusybox\n150\tKiB\thtop\n",
        "image-info.txt": b"IMAGESIZE = 870\n"}


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_the_compare_page_shows_what_changed(bob, two_builds):
    page = bob.get("/jobs/compare", params={"a": 1, "b": 2})  # a colleague's builds too

    assert page.status_code == 200
    text = text_of(page.text)
    assert f"Commit {SHA_A} {SHA_B}" in text
    assert "DISTRO_VERSION 1.0 1.1" in text
    assert f"Layer meta-standin main:{SHA_A} main:{SHA_B}" in text
    assert "core-image-minimal-qemux86-64.rootfs.bin 1000 B 1.3 KiB +300 B" in text
    assert "700.0 KiB → 870.0 KiB +170.0 KiB" in text
    assert "1 added, 0 removed, 1 changed" in text
    assert "htop added — 3.3.0-r0 +150.0 KiB" in text
    assert "busybox changed 1.36.1-r0 1.36.2-r0 +10.0 KiB" in text
    assert "different target" not in text
    assert ("In short: another commit, 1 layer revision changed, 1 package added, 1 changed, "
            "root filesystem +170.0 KiB.") in text


def test_the_api_gives_the_same_differences(alice, two_builds):
    body = alice.get("/api/jobs/compare", params={"a": 1, "b": 2}).json()

    assert (body["a"]["id"], body["b"]["id"]) == (1, 2) and not body["identical"]
    assert body["commit"] == {"name": "commit", "before": SHA_A, "after": SHA_B}
    assert body["image_size_kib"] == {"before": 700, "after": 870, "delta": 170}
    assert body["packages"]["added"] == [{"name": "htop", "before": None, "after": "3.3.0-r0",
                                          "before_kib": None, "after_kib": 150,
                                          "kib_delta": None}]
    assert [p["name"] for p in body["packages"]["changed"]] == ["busybox"]
    swapped = alice.get("/api/jobs/compare", params={"a": 2, "b": 1}).json()
    assert [p["name"] for p in swapped["packages"]["removed"]] == ["htop"]


def test_a_build_compared_with_itself_is_identical(alice, two_builds):
    body = alice.get("/api/jobs/compare", params={"a": 2, "b": 2}).json()
    assert body["identical"] and body["packages"]["added"] == []
    assert "compared with itself" in alice.get("/jobs/compare?a=2&b=2").text


def test_builds_of_different_targets_are_compared_with_a_warning(alice, fakes, supervisor,
                                                                 two_builds):
    assert submit(alice, target="core-image-base").status_code == 303

    page = text_of(alice.get("/jobs/compare?a=1&b=3").text)
    body = alice.get("/api/jobs/compare?a=1&b=3").json()

    assert "different target: core-image-minimal → core-image-base" in page
    assert body["different"] == [{"name": "target", "before": "core-image-minimal",
                                  "after": "core-image-base"}]


@pytest.mark.parametrize("query, status, message", [
    ("", 400, "Choose two builds to compare"),
    ("?a=1", 400, "Choose two builds to compare"),
    ("?a=x&b=1", 400, "&#39;x&#39; is not a build number."),
    ("?a=1&b=-2", 400, "is not a build number"),
    ("?a=0&b=1", 400, "is not a build number"),
    ("?a=1&b=" + "9" * 25, 400, "&#39;" + "9" * 20 + "&#39; is not a build number."),
    ("?a=1&b=" + "9" * 13, 400, "is not a build number."),
    ("?a=1&b=" + "9" * 12, 404, "does not exist."),
    ("?a=1&b=99", 404, "Build #99 does not exist."),
])
def test_bad_or_unknown_builds_get_a_clear_page_and_json(alice, two_builds, query, status,
                                                         message):
    page = alice.get("/jobs/compare" + query)
    api = alice.get("/api/jobs/compare" + query)

    assert page.status_code == status and "text/html" in page.headers["content-type"]
    assert message in page.text and "Traceback" not in page.text
    assert api.status_code == status and set(api.json()) == {"detail"}


def test_signed_out_the_page_asks_to_sign_in_and_the_api_says_401(client, two_builds):
    client.cookies.clear()
    page = client.get("/jobs/compare?a=1&b=2")
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert client.get("/api/jobs/compare?a=1&b=2").status_code == 401


def test_a_viewer_who_may_not_see_a_build_cannot_compare_it(app, alice, two_builds):
    perms = app.state.container.permissions()
    perms.may_read = lambda job, user: job.id != 2  # a rule that hides build #2

    assert alice.get("/jobs/compare?a=1&b=2").status_code == 403
    assert alice.get("/api/jobs/compare?a=2&b=1").json() == {
        "detail": "you may not see build #2"}


def test_the_job_page_offers_the_builds_of_the_same_image_the_previous_one_chosen(
        alice, fakes, supervisor, two_builds):
    assert submit(alice, target="core-image-base").status_code == 303  # #3: not offered
    assert submit(alice).status_code == 303  # #4
    for job_id in (3, 4):
        supervisor.tick()
        fakes.runner.finish(job_id, 1)
        supervisor.tick()
    assert fakes.jobs.get(4).is_terminal
    assert submit(alice).status_code == 303  # #5: pending, nothing to compare with yet

    page = alice.get("/jobs/2").text
    form = page[page.index('id="compare-form"'):page.index("</form>", page.index('id="compare-form"'))]

    assert 'action="/jobs/compare"' in page and 'method="get"' in page
    assert '<input type="hidden" name="b" value="2">' in form
    assert re.findall(r'<option value="(\d+)"', form) == ["4", "1"]  # ended ones, newest first
    assert re.search(r'<option value="1" selected>', form)  # the one before #2


def test_the_oldest_build_is_offered_an_ended_build_not_one_that_has_not_run(
        alice, fakes, supervisor, two_builds):
    """Nothing is older than #1: the default is the newest ended build, not pending #3."""
    assert submit(alice).status_code == 303  # #3

    page = alice.get("/jobs/1").text
    form = page[page.index('id="compare-form"'):page.index("</form>", page.index('id="compare-form"'))]

    assert re.findall(r'<option value="(\d+)"', form) == ["2"]
    assert re.search(r'<option value="2" selected>', form)


def test_a_comparison_with_a_build_that_has_not_run_says_its_commit_is_unknown(
        alice, fakes, supervisor, two_builds):
    assert submit(alice).status_code == 303  # #3, pending: a hand-made link can still name it

    text = text_of(alice.get("/jobs/compare", params={"a": 1, "b": 3}).text)
    assert "In short: commit unknown (#3 has not run yet)" in text
    assert "another commit" not in text
    fakes.files.logs[2] = b"fatal: repository not found\n"  # ended without a commit
    text = text_of(alice.get("/jobs/compare", params={"a": 2, "b": 1}).text)
    assert "In short: commit unknown (#2 recorded none)" in text


def test_a_build_with_no_other_of_its_image_has_no_compare_form(alice, fakes, supervisor):
    assert submit(alice).status_code == 303
    assert 'id="compare-form"' not in alice.get("/jobs/1").text


def test_the_comparison_says_which_tasks_took_longer(alice, fakes, two_builds):
    slower = [(r, v, t, s, e + 60 if t == "do_rootfs" else e, c) for r, v, t, s, e, c in TASKS]
    fakes.files.timings[1], fakes.files.timings[2] = condensed(), condensed(slower, 600.0)

    body = alice.get("/api/jobs/compare", params={"a": 1, "b": 2}).json()
    page = text_of(alice.get("/jobs/compare", params={"a": 1, "b": 2}).text)
    swapped = alice.get("/api/jobs/compare", params={"a": 2, "b": 1}).json()

    assert body["timing"][0] == {"recipe": "core-image-minimal", "task": "do_rootfs",
                                 "before": 39.7, "after": 99.7, "delta": 60.0}
    assert "Task timing" in page and "core-image-minimal:do_rootfs" in page
    assert swapped["timing"][0]["delta"] == -60.0
    # and the whole build, by bitbake's build_stats
    assert body["timing_elapsed"] == {"before": 540.0, "after": 600.0, "delta": 60.0}
    assert swapped["timing_elapsed"]["delta"] == -60.0
    assert "Elapsed by buildstats: 9m 00s → 10m 00s +1m 00s" in page


def test_without_buildstats_in_one_build_there_is_no_timing_to_compare(alice, fakes, two_builds):
    fakes.files.timings[1] = condensed()

    body = alice.get("/api/jobs/compare", params={"a": 1, "b": 2}).json()

    assert body["timing"] is None and body["timing_elapsed"] is None
    assert "Task timing" not in text_of(alice.get("/jobs/compare", params={"a": 1, "b": 2}).text)


def test_a_huge_package_change_lists_the_first_500_of_each_kind_and_counts_all(alice, fakes,
                                                                              two_builds):
    """A build's manifest is its owner's: 3000 made-up packages must not make a colleague's
    comparison a page of thousands of rows."""
    many = "".join(f"pkg{i} core2-64 1.0-r0\n" for i in range(3000)).encode()
    fakes.files.artifacts[2][MANIFEST] = many

    body = alice.get("/api/jobs/compare", params={"a": 1, "b": 2}).json()["packages"]
    page = alice.get("/jobs/compare", params={"a": 1, "b": 2}).text

    assert (len(body["added"]), body["added_total"]) == (500, 3000)
    assert body["removed_total"] == 2 and len(body["removed"]) == 2
    assert page.count('class="package-added"') == 500 and 'id="compare-packages-cut"' in page
    assert "3000 added, 2 removed, 0 changed" in text_of(page)
