"""Comparing two builds in the browser: two short builds of different commits of one
repository (buildhistory on, a package added and one upgraded between them), compared from
the job page's "Compare with build" form. The first builds everything, the second restores
the kernel and the C library from the sstate the first left, which the task timing shows.
The page is docs/screenshot-compare.png."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.support.standin import commit_packages, create_standin_repo, enable_buildhistory
from tests.system.browsing import assert_fits, shot, sign_in
from tests.system.helpers import fresh_machine, submit, wait_for_end

REPO = "poky-compare.git"


def test_two_builds_of_different_commits_are_compared_in_the_browser(
        installs, accounts, git, alice, page):
    bare = git.server.root / REPO
    create_standin_repo(bare)
    enable_buildhistory(bare)
    url = git.server.url(REPO)
    machine = fresh_machine()  # nothing in the installed sstate cache yet
    first = submit(alice, url, "core-image-minimal", machine=machine)
    assert wait_for_end(alice, first)["status"] == "SUCCESS"
    commit_packages(bare, {"htop": "core2-64 3.3.0-r0", "busybox": "core2-64 1.36.2-r0"},
                    "image: add htop, busybox 1.36.2")
    second = submit(alice, url, "core-image-minimal", machine=machine)
    assert wait_for_end(alice, second)["status"] == "SUCCESS"

    who = accounts.alice
    sign_in(page, who)
    page.goto(f"/jobs/{second}")
    chosen = page.locator("#compare-a")
    expect(chosen).to_have_value(str(first))  # the build before this one, chosen already
    page.click("#compare-form button:has-text('Compare')")
    page.wait_for_url(re.compile(rf"/jobs/compare\?b={second}&a={first}$"))

    expect(page.locator("h1")).to_contain_text(f"#{first}")
    expect(page.locator("#compare-commit")).to_be_visible()
    packages = page.locator("#compare-package-table")
    expect(packages.locator("tr.package-added")).to_contain_text("htop")
    expect(packages.locator("tr.package-changed")).to_contain_text("1.36.1-r0")
    expect(packages.locator("tr.package-changed")).to_contain_text("1.36.2-r0")
    expect(page.locator("#compare-imagesize")).to_contain_text("+")
    expect(page.locator("#compare-artifacts")).to_contain_text(
        f"core-image-minimal-{machine}.rootfs.bin")
    expect(page.locator("#compare-different")).to_have_count(0)
    expect(page.locator("#compare-summary")).to_contain_text("1 package added, 1 changed")
    # Task timing: the kernel came from sstate the second time, its compile did not run
    timing = page.locator("#compare-timing")
    expect(timing.get_by_role("heading", name="Task timing")).to_be_visible()
    expect(page.locator("#compare-timing-elapsed .delta-down")).to_be_visible()  # shorter
    kernel = page.locator("#compare-timing-table tbody tr",
                          has=page.locator("code", has_text=re.compile(r"^linux-yocto:do_compile$")))
    expect(kernel).to_have_count(1)
    expect(kernel.locator("td").nth(2)).to_have_text("did not run")
    expect(kernel.locator(".delta-down")).to_be_visible()
    page.set_viewport_size({"width": 1280, "height": 2000})  # the packages and task timing too
    shot(page, "compare")
    assert_fits(page)  # at 800 px the tables fit
