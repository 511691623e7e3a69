"""A real browser (Playwright + Debian's chromium) against the installed service through nginx:
sign in, save a token, submit a build, watch it live, download an image.

Screenshots of every page go to test-output/screenshots/ in the checkout (gitignored).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.system.helpers import BASE_URL, MACHINE, job_dir

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
VIEWPORT = {"width": 1280, "height": 900}

# Records, for every change to the log view, what the status badge said at that moment.
WATCH_LOG = """
window.__logChanges = [];
document.addEventListener("DOMContentLoaded", () => {
  const log = document.getElementById("log");
  if (!log) return;
  new MutationObserver(() => {
    const badge = document.getElementById("job-status");
    window.__logChanges.push({status: badge ? badge.textContent.trim() : "", chars: log.textContent.length});
  }).observe(log, {childList: true, characterData: true, subtree: true});
});
"""


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, base_url=BASE_URL,
                                  color_scheme="light")
    context.add_init_script(WATCH_LOG)
    context.set_default_timeout(30_000)
    opened = context.new_page()
    yield opened
    context.close()


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_an_engineer_builds_and_downloads_an_image_in_the_browser(installs, accounts, git, page):
    bob = accounts.bob
    page.goto("/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.fill("#f-username", bob.name)
    page.fill("#f-password", bob.password)
    shot(page, "01-login")
    page.click("button[type=submit]:has-text('Sign in')")
    page.wait_for_url(f"{BASE_URL}/")
    expect(page.locator(".whoami")).to_have_text(bob.name)

    page.click("nav >> text=Settings")
    page.wait_for_url(f"{BASE_URL}/settings")
    page.fill("#f-token", git.token)
    page.click("button:has-text('Save token')")
    expect(page.locator(".flash-info")).to_contain_text("Your GitLab token is saved")
    expect(page.locator(".token-state")).to_contain_text("A GitLab token is on file")
    shot(page, "02-settings")
    assert bob.token_file.read_text().strip() == git.token
    assert git.token not in page.content()

    page.click("nav >> text=New build")
    page.wait_for_url(f"{BASE_URL}/new")
    page.fill("#f-repo_url", git.url)
    page.fill("#f-ref", "main")
    page.fill("#f-machine", MACHINE)
    page.fill("#f-target", "core-image-minimal")
    shot(page, "03-new-build")
    page.click("button:has-text('Start build')")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    page.evaluate("window.__sameDocument = true")  # a reload or navigation would drop it

    badge = page.locator("#job-status")
    page.wait_for_function("""() => {
        const badge = document.getElementById("job-status").textContent.trim();
        return badge === "RUNNING" && document.getElementById("log").textContent.includes("NOTE: Running task");
    }""", timeout=60_000)
    shot(page, "04-job-running")

    expect(badge).to_have_text("SUCCESS", timeout=120_000)
    expect(page.locator("#log")).to_contain_text("==> Build finished: SUCCESS (exit 0)")
    links = page.locator("#artifacts-body a")
    expect(links.first).to_be_visible()
    expect(page.locator("#exit-code")).to_have_text("0")
    page.locator("#log").evaluate("log => { log.scrollTop = log.scrollHeight; }")
    shot(page, "05-job-success")
    page.screenshot(path=str(SCREENSHOTS / "05-job-success-full.png"), full_page=True)

    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    changes = page.evaluate("window.__logChanges")
    assert any(c["status"] == "RUNNING" and c["chars"] > 0 for c in changes), changes

    name = next(text for text in links.all_inner_texts() if text.endswith(".bin"))
    with page.expect_download() as download_info:
        page.click(f"#artifacts-body a:text-is('{name}')")
    download = download_info.value
    assert download.suggested_filename == name
    assert Path(download.path()).read_bytes() == (job_dir(job_id, bob.name) / "artifacts" / name).read_bytes()

    page.goto(f"/jobs/{job_id}")  # as someone opening the finished build later sees it
    expect(badge).to_have_text("SUCCESS")
    expect(links.first).to_be_visible()
    shot(page, "06-job-finished")

    page.click("nav >> text=Builds")
    page.wait_for_url(f"{BASE_URL}/")
    row = page.locator("tr.job-row", has=page.locator(f"a.job-link:text-is('#{job_id}')"))
    expect(row.locator(".badge")).to_have_text("SUCCESS")
    shot(page, "07-job-list")

