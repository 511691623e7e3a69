"""A real browser (Playwright + Debian's chromium) against the installed service through nginx:
sign in, save a token, submit a build, watch it live, download an image.

Screenshots of every page go to test-output/screenshots/ in the checkout (gitignored).
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.system.browsing import SCREENSHOTS, shot, sign_in
from tests.system.helpers import BASE_URL, MACHINE, job_dir


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
    queued = page.locator(".flash", has_text=f"Build #{job_id} is queued.")
    page.wait_for_function("""() => {
        const badge = document.getElementById("job-status").textContent.trim();
        return badge === "RUNNING" && document.getElementById("log").textContent.includes("NOTE: Running task");
    }""", timeout=60_000)
    expect(queued).to_have_count(0)  # said while it was queued; the build has left the queue
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
    expect(queued).to_have_count(0)  # a one-shot message: not again on a new load
    shot(page, "06-job-finished")

    page.click("nav >> text=Builds")
    page.wait_for_url(f"{BASE_URL}/")
    row = page.locator("tr.job-row", has=page.locator(f"a.job-link:text-is('#{job_id}')"))
    expect(row.locator(".badge")).to_have_text("SUCCESS")
    shot(page, "07-job-list")

    # The next build starts from this one, and the lists offer bob's recent values first.
    page.click("nav >> text=New build")
    page.wait_for_url(f"{BASE_URL}/new")
    expect(page.locator("#f-repo_url")).to_have_value(git.url)
    expect(page.locator("#f-machine")).to_have_value(MACHINE)
    expect(page.locator("#f-target")).to_have_value("core-image-minimal")
    expect(page.locator("#prefilled")).to_contain_text(f"#{job_id}")
    assert _options(page, "repo_url")[0] == git.url
    assert _options(page, "machine")[0] == MACHINE
    assert _options(page, "target")[0] == "core-image-minimal"
    expect(page.locator("#f-machine")).to_have_attribute("list", "l-machine")
    shot(page, "10-new-build-suggested")


def _options(page: Page, field: str) -> list[str]:
    """The values the field's datalist offers, in order."""
    return page.locator(f"#l-{field} option").evaluate_all("options => options.map(o => o.value)")


README_VIEWPORT = {"width": 1280, "height": 1200}  # status, progress and a screenful of log


def _sign_in_with_token(page: Page, account, token: str) -> None:
    sign_in(page, account)
    page.goto("/settings")
    page.fill("#f-token", token)
    page.click("button:has-text('Save token')")
    expect(page.locator(".token-state")).to_contain_text("A GitLab token is on file")


def _start(page: Page, repo_url: str, target: str) -> int:
    page.goto("/new")
    page.fill("#f-repo_url", repo_url)
    page.fill("#f-ref", "main")
    page.fill("#f-machine", MACHINE)
    page.fill("#f-target", target)
    page.fill("#f-kas_file", "")
    page.click("button:has-text('Start build')")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def test_the_readme_screenshots_show_an_engineers_builds_with_their_logs(
        installs, accounts, git, page):
    """docs/screenshot-job.png and docs/screenshot-failure.png are copied from these."""
    bob = accounts.bob
    page.set_viewport_size(README_VIEWPORT)
    _sign_in_with_token(page, bob, git.token)
    expect(page.locator(".whoami")).to_have_text(bob.name)

    job_id = _start(page, git.url, "slow-image")  # ~30 s: long enough to be seen running
    page.wait_for_function("""() => document.getElementById("job-status").textContent.trim() === "RUNNING"
        && document.getElementById("log").textContent.includes("NOTE: Running task 4 of")""",
                           timeout=60_000)
    expect(page.locator("#progress-bar")).to_be_visible()
    expect(page.locator(".flash", has_text="is queued")).to_have_count(0)
    page.locator("#log").evaluate("log => { log.scrollTop = log.scrollHeight; }")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "readme-job")
    page.click("#cancel-form button")  # the rest of the build shows nothing new
    expect(page.locator("#job-status")).to_have_text("CANCELLED", timeout=60_000)

    failed = _start(page, git.url, "fail-image")
    expect(page.locator("#job-status")).to_have_text("FAILED", timeout=60_000)
    expect(page.locator("#failure")).to_contain_text("fail-image-1.0-r0 do_compile")
    expect(page.locator("#log")).to_contain_text("==> Build finished: FAILED")
    expect(page.locator(".flash", has_text=f"Build #{failed} is queued.")).to_have_count(0)
    page.locator("#log").evaluate("log => { log.scrollTop = log.scrollHeight; }")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "readme-failure")
    assert job_id != failed



LOG_LINE_CAP = 5000  # MAX_LOG_LINES in app.js, while the view follows the end


def _filler(first: int, count: int) -> bytes:
    return b"".join(f"{n:08d} NOTE: filler line {n} größe → {'x' * (n % 80)}\n".encode()
                    for n in range(first, first + count))


def _append(path: Path, data: bytes) -> None:
    """Append as one write each, so lines of the build running meanwhile stay whole."""
    with path.open("ab") as log:
        for start in range(0, len(data), 1 << 16):
            log.write(data[start:data.rfind(b"\n", start, start + (1 << 16)) + 1] or data[start:])
            log.flush()


def _assert_whole_lines_of(log: Path, shown: str) -> None:
    """``shown`` is a run of whole lines of ``log``, as they are in it."""
    data = log.read_bytes()
    assert shown.endswith("\n"), shown[-80:]
    at = data.find(b"\n" + shown.encode())
    assert at >= 0 or data.startswith(shown.encode()), f"not whole lines of the log: {shown[:80]!r}"


def _shown(page: Page) -> str:
    return page.locator("#log").evaluate("log => log.textContent")


def test_a_20_mb_log_opens_at_its_end_loads_earlier_and_keeps_the_page_bounded(
        installs, accounts, git, page):
    alice = accounts.alice
    _sign_in_with_token(page, alice, git.token)
    page.goto("/new")
    page.fill("#f-repo_url", git.url)
    page.fill("#f-ref", "main")
    page.fill("#f-machine", MACHINE)
    page.fill("#f-target", "slow-image")  # ~30 s: still running while the log grows
    page.click("button:has-text('Start build')")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    log = job_dir(job_id, alice.name) / "logs" / "build.log"
    page.wait_for_function("() => document.getElementById('log').textContent.includes('NOTE: Running task')",
                           timeout=60_000)
    _append(log, _filler(0, 260_000))  # ~22 MB
    assert log.stat().st_size > 20_000_000

    page.goto(f"/jobs/{job_id}")
    page.wait_for_function("() => document.getElementById('log').textContent.includes('filler line 259999')")
    expect(page.locator("#log-range")).to_contain_text(re.compile(r"Showing the last .* of 2\d\.\d MiB"))
    tail = _shown(page)
    assert len(tail.encode()) < 1_000_000, "more than the end of the log was loaded"
    assert "filler line 0 " not in tail
    _assert_whole_lines_of(log, tail)
    shot(page, "08-long-log-tail")

    page.click("#log-earlier-button")
    page.wait_for_function(f"() => document.getElementById('log').textContent.length > {len(tail)}")
    earlier = _shown(page)
    # The build goes on writing: live lines may follow by now; what was shown is still there,
    # after what was prepended.
    assert earlier.find(tail) > 0
    _assert_whole_lines_of(log, earlier)  # and nothing lost or repeated where they meet
    expect(page.locator("#log-earlier-button")).to_be_enabled()
    shot(page, "09-long-log-earlier")

    status = page.locator("#job-status").text_content().strip()
    assert status == "RUNNING", f"slow-image ended too soon for this test ({status})"
    page.click("#log-jump")  # following the end again: the view keeps LOG_LINE_CAP lines
    most = 0
    for batch in range(12):
        _append(log, _filler(300_000 + batch * 1000, 1000))
        page.wait_for_timeout(200)
        most = max(most, page.locator("#log").evaluate("log => log.textContent.split('\\n').length - 1"))
    page.wait_for_function("() => document.getElementById('log').textContent.includes('filler line 311999')")
    count = page.locator("#log").evaluate("log => log.textContent.split('\\n').length - 1")
    assert count <= LOG_LINE_CAP and most <= LOG_LINE_CAP, (count, most)
    expect(page.locator("#log-earlier")).to_be_visible()
    expect(page.locator("#log-raw")).to_have_attribute("href", f"/api/jobs/{job_id}/log/raw")
    page.click("#cancel-form button")  # no need to wait for the rest of the build
