"""What the UX review found on the pages (uxpages): on a 390 px phone no table makes the page
scroll sideways; counts of one read in the singular; the Find page reopened from history is not
a 405; the same token and owner written the same way everywhere; no inline style for the CSP
to refuse; buttons that say which artifact or token they act on; no Python None on a page."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest

from autobuild.domain.artifacts import MAX_ARTIFACTS_LISTED
from tests.web.helpers import page_csrf
from tests.web.test_admin_tokens import admin, post  # noqa: F401 (a fixture)
from tests.web.test_api_tokens import new_token
from tests.web.test_artifacts_bounds import _ended_build
from tests.web.test_insights import KEY, build_log, ended, text_of  # noqa: F401 (a fixture)
from tests.web.test_progress_and_failure import BUILT
from tests.web.test_timing import condensed

pytestmark = pytest.mark.timeout(60)

WEB = Path(__file__).resolve().parents[2] / "src" / "autobuild" / "web"
ALL = "/settings/api-tokens/all"
# Tables that become a list of cards on a phone instead of scrolling.
STACKED = ("jobs-table", "artifacts")


def words(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def unwrapped_tables(page: str) -> list[str]:
    """The opening tags of the tables not directly inside a .table-scroll box."""
    bad = []
    for match in re.finditer(r"<table\b[^>]*>", page):
        before = page[:match.start()].rstrip()
        if before.endswith('<div class="table-scroll">'):
            continue
        if not any(name in match.group(0) for name in STACKED):
            bad.append(match.group(0))
    return bad


# --- 1. at 390 px, tables scroll in their own box ------------------------------------------------

def test_every_wide_table_scrolls_in_its_own_box_not_the_page(admin, bob, ended, fakes):
    new_token(bob, name="nightly CI")
    new_token(admin, name="mine")
    job = ended(BUILT.decode() + build_log(found=4),
                artifacts={"core-image-minimal-qemux86-64.rootfs.wic": b"x"})
    fakes.files.timings[job] = condensed()
    pages = {ALL: "admin-api-tokens", "/settings/api-tokens": "api-tokens",
             "/insights": 'id="team-table"', "/insights/trends?" + urlencode(KEY): 'id="trend-table"',
             f"/jobs/{job}": 'class="table layers"', f"/jobs/{job}#timing": "timing-tasks-table",
             f"/jobs/compare?a={job}&b={job}": "compare-builds", "/docs": '<table class="table">'}
    for path, table in pages.items():
        page = admin.get(path)
        assert page.status_code == 200, path
        assert table in page.text, path
        assert unwrapped_tables(page.text) == [], path


def test_every_template_table_is_in_a_scroll_box_or_stacks_on_a_phone():
    for template in sorted((WEB / "templates").glob("*.html")):
        assert unwrapped_tables(template.read_text()) == [], template.name


def test_the_stylesheet_scrolls_the_box_and_keeps_times_on_one_line_only_where_there_is_room():
    css = (WEB / "static" / "app.css").read_text()
    assert re.search(r"\.table-scroll \{[^}]*overflow-x: auto", css)
    for rule in re.finditer(r"[^{}]*admin-api-tokens[^{}]*\{[^}]*nowrap[^}]*\}", css):
        opened = css[:rule.start()].rfind("@media")
        assert opened != -1 and "min-width" in css[opened:opened + 40], rule.group(0)
    narrow = css[css.index("Narrow phones (uxpages)"):]
    assert ".artifacts td:first-child {" in narrow and "overflow-wrap: anywhere" in narrow


# --- 2. one is singular ---------------------------------------------------------------------------

def test_one_setscene_task_and_one_task_without_a_summary_are_singular(alice, ended):
    recipe = "/w/meta/recipes-core/busybox/busybox_1.36.1.bb"
    job = ended(f"NOTE: Running setscene task 1 of 1 ({recipe}:do_populate_sysroot_setscene)\n"
                f"NOTE: Running task 2 of 2 ({recipe}:do_compile)\n")
    summary = text_of(alice.get(f"/jobs/{job}").text, "cache-summary")
    assert summary == "No sstate summary in the log; 1 setscene task, 1 task run."


def test_one_file_more_than_listed_is_one_more_file(alice, fakes, supervisor):
    job = _ended_build(alice, fakes, supervisor,
                       {f"f-{i:05d}.bin": b"q" for i in range(MAX_ARTIFACTS_LISTED + 1)})
    page = alice.get(f"/jobs/{job}").text
    note = words(page[page.index('id="artifacts-more"'):page.index('id="artifacts-empty"')])
    assert "and 1 more file is not." in note
    # app.js writes the same words when it refreshes the list
    script = (WEB / "static" / "app.js").read_text()
    assert 'more === 1 ? "more file is" : "more files are"' in script
    assert 'id="artifacts-more-words"' in page

    compared = _ended_build(alice, fakes, supervisor, {"image.bin": b"x"})
    page = alice.get("/jobs/compare", params={"a": compared, "b": job}).text
    assert (f"Build #{job} left 1 more file than its first {MAX_ARTIFACTS_LISTED} by name"
            in words(page))


def test_one_build_is_the_last_build_and_an_empty_trend_does_not_count_zero(alice, ended):
    ended(build_log(found=4))
    insights = words(alice.get("/insights").text)
    assert "over the 1 build that had sstate objects" in insights
    assert "The last build that ran and ended" in insights and "last 1 builds" not in insights
    trend = words(alice.get("/insights/trends", params=KEY).text)
    assert "The last build that ran and ended" in trend

    empty = words(alice.get("/insights/trends", params={**KEY, "machine": "beaglebone"}).text)
    assert "No build of this repository, MACHINE and target has ended lately." in empty
    assert "The last 0 builds" not in empty and "Click a point" not in empty


def test_revoking_the_only_token_of_an_engineer_says_so(admin, bob):
    token = new_token(bob, name="nightly CI")
    response = post(admin, ALL + "/revoke-owner", owner="bob")
    page = words(admin.get(response.headers["location"]).text)
    assert f"Revoked bob’s only token (abt_{token[4:12]}…): scripts using it are refused" in page
    assert "all 1 of" not in page


# --- 3. the Find answer reopened ------------------------------------------------------------------

def test_the_find_address_reopened_goes_back_to_the_page(admin, bob):
    response = admin.get(ALL + "/find")
    assert response.status_code == 303 and response.headers["location"] == ALL
    assert bob.get(ALL + "/find").status_code == 403


# --- 4. the same token, the same apostrophe --------------------------------------------------------

def test_an_own_revoked_token_is_named_as_the_list_names_it(alice):
    token = new_token(alice, name="release script")
    listing = alice.get("/settings/api-tokens").text
    assert f"<code>abt_{token[4:12]}…</code>" in listing
    response = alice.post("/settings/api-tokens/revoke",
                          data={"id": token[4:12], "csrf_token": page_csrf(alice, "/settings")})
    page = words(alice.get(response.headers["location"]).text)
    assert f"Token abt_{token[4:12]}… is revoked" in page


def test_admin_flashes_write_the_owner_as_the_page_does(admin, bob):
    token = new_token(bob, name="nightly CI")
    response = post(admin, ALL + "/revoke", id=token[4:12], owner="")
    page = admin.get(response.headers["location"]).text
    assert f"Revoked bob’s token abt_{token[4:12]}…" in page
    assert "bob&#39;s" not in page and "bob's" not in page


# --- 5. no inline style -----------------------------------------------------------------------------

def test_no_template_has_an_inline_style_the_csp_would_refuse(alice):
    for template in sorted((WEB / "templates").glob("*.html")):
        assert not re.search(r"\sstyle=", template.read_text()), template.name
    page = alice.get("/")
    assert "style-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r"<[^>]+\sstyle=", page.text)


# --- 6. buttons named after what they act on --------------------------------------------------------

def test_copy_link_and_revoke_buttons_name_their_artifact_and_token(alice, fakes, supervisor):
    job = _ended_build(alice, fakes, supervisor, {"a.wic": b"x", "b.ext4": b"y"})
    page = alice.get(f"/jobs/{job}").text
    labels = re.findall(r'<button[^>]*copy-link[^>]*aria-label="([^"]+)"', page)
    assert labels == ["Copy the link to a.wic", "Copy the link to b.ext4"]
    assert 'copy.setAttribute("aria-label", "Copy the link to " + a.name)' in \
        (WEB / "static" / "app.js").read_text()

    one, two = new_token(alice, name="one"), new_token(alice, name="two")
    listing = html.unescape(alice.get("/settings/api-tokens").text)
    labels = re.findall(r'aria-label="(Revoke [^"]+)"', listing)
    assert sorted(labels) == sorted([f"Revoke your token abt_{one[4:12]}… “one”",
                                     f"Revoke your token abt_{two[4:12]}… “two”"])


# --- 7. no None on the page --------------------------------------------------------------------------

def test_settings_without_a_gitlab_token_say_not_set(alice):
    page = alice.get("/settings").text
    assert '<span class="badge badge-pending">Not set</span>' in page
    assert ">None<" not in page
