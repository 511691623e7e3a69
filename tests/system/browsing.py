"""A real browser for the system tests: Playwright driving Debian's chromium against the
installed service through nginx. Screenshots go to test-output/screenshots/ in the checkout
(gitignored); pages the README or docs show are copied from there into docs/.

The fixtures ``browser`` (one chromium per module) and ``page`` (a fresh context per test) are
made available to every system test by conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.system.helpers import BASE_URL

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


NARROW = {"width": 800, "height": 900}
# The elements whose right edge passes the window's (outside any box that scrolls or clips
# itself), named tag#id.class, and how wide the page is: wider than the window scrolls sideways.
_OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const contained = (el) => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      const style = getComputedStyle(up);
      if (/(auto|scroll|hidden|clip)/.test(style.overflowX)) return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    const box = el.getBoundingClientRect();
    if (box.width && box.right > width + 1 && !contained(el)) {
      const cls = typeof el.className === "string" && el.className ? "." + el.className.split(" ")[0] : "";
      out.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${cls} (${Math.round(box.right)}px)`);
    }
  }
  return {page: document.documentElement.scrollWidth, window: width, offenders: out.slice(0, 12)};
}"""


def assert_fits(page: Page, viewport: dict[str, int] = NARROW) -> None:
    """The page at ``viewport`` (800 px wide by default) scrolls only downwards: no chart,
    table or text sticks out to the right. The viewport is put back afterwards."""
    before = page.viewport_size
    page.set_viewport_size(viewport)
    try:
        page.wait_for_timeout(100)  # a layout pass
        found = page.evaluate(_OVERFLOW)
        assert found["page"] <= found["window"] and not found["offenders"], (page.url, found)
    finally:
        if before:
            page.set_viewport_size(before)


def sign_in(page: Page, account) -> None:
    """Sign in through the login form as ``account`` (tests/system/helpers.Account)."""
    page.goto("/login")
    page.fill("#f-username", account.name)
    page.fill("#f-password", account.password)
    page.click("button[type=submit]:has-text('Sign in')")
    page.wait_for_url(f"{BASE_URL}/")
