"""The job page of a finished build shows where its time went (from the buildstats the
stand-in wrote and the runner condensed), in a real browser; screenshot ``timing``."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.system.browsing import assert_fits, shot, sign_in
from tests.system.helpers import fresh_machine, job_dir, submit, wait_for_end


def test_a_finished_build_shows_where_its_time_went(installs, accounts, git, alice, page):
    # from scratch: a MACHINE of its own has nothing in the installed sstate cache
    job_id = submit(alice, git.url, "core-image-minimal", machine=fresh_machine())
    assert wait_for_end(alice, job_id)["status"] == "SUCCESS"
    assert (job_dir(job_id, accounts.alice.name) / "buildstats.tsv").is_file()

    sign_in(page, accounts.alice)
    page.goto(f"/jobs/{job_id}")

    section = page.locator("#timing")
    expect(section.get_by_role("heading", name="Where the time went")).to_be_visible()
    expect(page.locator("#timing-tasks")).to_have_text("174")  # 13 recipes x 13 tasks + 5 of the image
    expect(page.locator("#timing-recipes-chart")).to_be_visible()
    expect(page.locator("#timing-timeline-chart")).to_be_visible()
    # the charts are images with a title, and their numbers are there as text
    expect(page.get_by_role("img", name="Slowest recipes by the elapsed time")).to_be_visible()
    assert page.locator("#timing-recipes-chart rect.timing-bar").count() == 10
    assert page.locator("#timing-timeline-chart rect.timing-critical").count() >= 5
    first = page.locator("#timing-recipes-table tbody tr").first.locator("td").first
    assert first.text_content() == "linux-yocto"  # the heaviest, whatever the times
    path = page.locator("#timing-path li")
    assert "core-image-minimal:do_build" in (path.last.text_content() or "")
    page.click("#timing-tables summary")  # the numbers, behind one click
    expect(page.locator("#timing-tasks-table")).to_be_visible()

    api = alice.get(f"/api/jobs/{job_id}/timing").json()
    assert api["available"] and api["task_count"] == 174 and api["cpu_seconds"] > 0

    section.evaluate("el => el.scrollIntoView({block: 'start'})")
    shot(page, "timing")
    assert_fits(page)  # at 800 px the charts shrink, nothing sticks out
