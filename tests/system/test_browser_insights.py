"""Insights in a real browser against the installed service: three builds of one target share
the installed sstate cache, with packages added to the image between them; the job page says
what sstate saved, the trends page plots the builds (image size and package count grow), the
team view shows everyone's reuse. Screenshots: "trends" and "cache-reuse" (copied to
docs/screenshot-trends.png and docs/screenshot-cache-reuse.png)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.support.standin import commit_packages, create_standin_repo
from tests.system.browsing import assert_fits, shot, sign_in
from tests.system.helpers import BASE_URL, fresh_machine, submit, wait_for_end

BUILDS = 3
REPO = "poky-trends.git"
# What each build's image installs more than the one before (none for the first).
ADDED: list[dict[str, str | None]] = [
    {}, {"openssh": "core2-64 9.6p1-r0"},
    {"strace": "core2-64 6.7-r0", "gdb": "core2-64 14.2-r0"}]


def test_builds_of_one_target_reuse_sstate_and_their_trends_are_plotted(
        installs, accounts, git, alice, page):
    # A MACHINE of its own: the installed cache has no object of it yet, whatever ran before.
    machine = fresh_machine()
    bare = git.server.root / REPO
    create_standin_repo(bare)
    url = git.server.url(REPO)
    ids = []
    for added in ADDED:  # one after the other: each finds what the previous ones left
        if added:
            commit_packages(bare, added, f"image: add {', '.join(added)}")
        job_id = submit(alice, url, "core-image-minimal", machine=machine)
        assert wait_for_end(alice, job_id, timeout=90)["status"] == "SUCCESS"
        ids.append(job_id)
    caches = [alice.get(f"/api/jobs/{job_id}").json()["cache"] for job_id in ids]
    assert [(c["found"], c["wanted"], c["match_percent"]) for c in caches] == [
        (0, 16, 0), (16, 16, 100), (16, 16, 100)]
    assert [c["setscene_tasks"] for c in caches] == [0, 16, 16]

    sign_in(page, accounts.alice)

    page.goto(f"/jobs/{ids[-1]}")
    expect(page.locator("#cache-summary")).to_contain_text(
        "16 of 16 sstate objects reused (100% match); 16 setscene tasks, 12 tasks run.")
    page.locator("#cache").scroll_into_view_if_needed()
    shot(page, "cache-job")
    page.click("#trends-link")
    page.wait_for_url(re.compile(r"/insights/trends\?"))
    expect(page.get_by_role("heading", name=re.compile("Trends of core-image-minimal"))) \
        .to_be_visible()
    for chart in ("duration-chart", "reuse-chart", "image-chart", "packages-chart"):
        marks = page.locator(f"#{chart} a.chart-mark")
        expect(marks).to_have_count(BUILDS)
    expect(page.locator("#trend-table tbody tr")).to_have_count(BUILDS)
    expect(page.locator("#trend-table tbody tr").first).to_contain_text("100%")
    expect(page.locator("#trend-table tbody tr").last).to_contain_text("0% (0/16)")
    # newest first: each build installs what the one before did and more, so its image grows
    counts = [int(text) for text in page.locator("#trend-table tbody td.num:nth-child(7)")
              .all_text_contents()]
    assert counts == [counts[-1] + 3, counts[-1] + 1, counts[-1]], counts
    sizes = page.locator("#trend-table tbody td.num:nth-child(6) span")
    assert len(set(sizes.evaluate_all("spans => spans.map(s => s.title)"))) == BUILDS
    shot(page, "trends")
    assert_fits(page)  # at 800 px the charts stack and shrink, the table fits

    page.locator(f"#reuse-chart a.chart-mark[href='/jobs/{ids[0]}']").click()
    page.wait_for_url(f"{BASE_URL}/jobs/{ids[0]}")
    expect(page.locator("#cache-summary")).to_contain_text("0 of 16 sstate objects reused")

    page.click("nav >> text=Insights")
    page.wait_for_url(f"{BASE_URL}/insights")
    expect(page.locator("#team-average")).to_contain_text("% match over the")
    for job_id in ids:
        expect(page.locator(f"#reuse-chart a.chart-mark[href='/jobs/{job_id}']")).to_have_count(1)
        expect(page.locator(f"#team-table a[href='/jobs/{job_id}']")).to_have_count(1)
    expect(page.locator("#targets-table")).to_contain_text(machine)
    shot(page, "cache-reuse")
    assert_fits(page)
