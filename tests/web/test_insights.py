"""Cache reuse on the job page and in the API; the Insights pages (team sstate reuse, trends of
one target) and their API, rendered from fakes."""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

import pytest

from autobuild.domain import insights
from autobuild.domain.digest import LogDigest
from tests.web.helpers import VALID_JOB, submit

pytestmark = pytest.mark.timeout(60)

RECIPE = "/w/src/meta/recipes-core/busybox/busybox_1.36.1.bb"
MANIFEST = "core-image-minimal-qemux86-64.rootfs.manifest"
KEY = {"repo": VALID_JOB["repo_url"], "machine": VALID_JOB["machine"],
       "target": VALID_JOB["target"]}


def build_log(found: int, wanted: int = 16, run: int = 12) -> str:
    """A bitbake log that reused ``found`` of ``wanted`` sstate objects and ran ``run`` tasks."""
    total = wanted + run
    lines = [f"Sstate summary: Wanted {wanted} Local {found} Mirrors 0 Missed {wanted - found} "
             f"Current 0 ({found * 100 // wanted}% match, 0% complete)", "NOTE: Executing Tasks"]
    lines += [f"NOTE: Running setscene task {wanted - found + i} of {wanted} "
              f"({RECIPE}:do_populate_sysroot_setscene)" for i in range(1, found + 1)]
    lines += [f"NOTE: Running task {found + i} of {total} ({RECIPE}:do_compile)"
              for i in range(1, total - found + 1)]
    lines.append(f"NOTE: Tasks Summary: Attempted {total} tasks of which {found} didn't need "
                 "to be rerun and all succeeded.")
    return "\n".join(lines) + "\n"


@pytest.fixture
def ended(alice, fakes, supervisor):
    """Ends a build of alice's (or ``who``'s) with ``log`` after ``seconds``; returns its id."""

    def end(log: str, seconds: float = 60, artifacts: dict[str, bytes] | None = None,
            code: int = 0, who=alice, digest: bool = True, **fields: str) -> int:
        assert submit(who, **fields).status_code == 303
        job_id = max(fakes.jobs.rows)
        supervisor.tick()
        fakes.clock.advance(seconds)
        fakes.files.append_log(job_id, log.encode())
        if digest:
            kept = LogDigest()
            kept.feed(log.encode())
            fakes.files.digests[job_id] = kept.to_json()
        fakes.files.artifacts[job_id] = artifacts or {}
        fakes.runner.finish(job_id, code)
        supervisor.tick()
        supervisor.tick()
        assert fakes.jobs.get(job_id).is_terminal
        return job_id

    return end


def text_of(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(p|section|table|figure)>', page, re.S)
    assert match, f"no #{element_id} on the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


# --- the job page and the API ------------------------------------------------------------------

@pytest.mark.parametrize("digest", [True, False])
def test_the_job_page_and_the_api_say_what_sstate_saved(alice, ended, digest):
    job_id = ended(build_log(found=4), digest=digest)

    page = alice.get(f"/jobs/{job_id}").text
    assert '<h2 id="cache-head">Cache reuse</h2>' in page
    assert text_of(page, "cache-summary") == (
        "4 of 16 sstate objects reused ( 25% match ); 4 setscene tasks, 24 tasks run.")
    assert f'href="/insights/trends?{html.escape(urlencode(KEY))}"' in page
    assert 'value="25"' in page  # the meter

    cache = alice.get(f"/api/jobs/{job_id}").json()["cache"]
    assert cache == {"summaries": 1, "wanted": 16, "found": 4, "local": 4, "mirrors": 0,
                     "missed": 12, "current": 0, "match_percent": 25, "complete_percent": 0,
                     "setscene_tasks": 4, "tasks_run": 24, "noexec_tasks": 0,
                     "tasks_attempted": 28, "tasks_not_rerun": 4, "tasks_failed": 0}


def test_a_build_that_wanted_nothing_says_there_was_nothing_to_restore(alice, ended):
    """Every task current: bitbake says "Wanted 0 ... (0% match)"; that is no cache miss."""
    job_id = ended("Sstate summary: Wanted 0 Local 0 Mirrors 0 Missed 0 Current 120 "
                   "(0% match, 100% complete)\nNOTE: Executing Tasks\n")

    page = alice.get(f"/jobs/{job_id}").text
    assert text_of(page, "cache-summary") == (
        "Nothing to restore from sstate (120 tasks already current).")
    assert "0 of 0" not in page and "cache-meter" not in page
    assert alice.get(f"/api/jobs/{job_id}").json()["cache"]["match_percent"] is None
    insights = alice.get("/insights").text
    assert "None of these builds had sstate objects to restore" in insights
    assert alice.get("/api/insights/reuse").json()["median_match_percent"] is None


def test_a_build_that_printed_no_summary_says_so_and_a_running_one_shows_nothing(
        alice, ended, fakes, supervisor):
    job_id = ended("==> Cloning x\nfatal: repository not found\n", code=1)
    page = alice.get(f"/jobs/{job_id}").text
    assert "The log has no sstate summary" in text_of(page, "cache-summary")
    assert alice.get(f"/api/jobs/{job_id}").json()["cache"] is None

    assert submit(alice).status_code == 303
    supervisor.tick()
    assert 'id="cache"' not in alice.get(f"/jobs/{max(fakes.jobs.rows)}").text


def test_a_forged_digest_does_not_break_the_page_the_log_is_read_instead(alice, ended, fakes):
    job_id = ended(build_log(found=16))
    fakes.files.digests[job_id] = fakes.files.digests[job_id].replace(b'"wanted":16',
                                                                      b'"wanted":-1')
    page = alice.get(f"/jobs/{job_id}")
    assert page.status_code == 200
    assert "16 of 16 sstate objects reused" in text_of(page.text, "cache-summary")


# --- the team view -------------------------------------------------------------------------------

def test_the_team_view_shows_everyones_reuse_with_a_chart_and_a_table(
        alice, bob, ended, fakes):
    first = ended(build_log(found=0))
    second = ended(build_log(found=12), who=bob, target="core-image-base")
    third = ended(build_log(found=16))

    page = alice.get("/insights")
    assert page.status_code == 200
    text = page.text
    assert '<a href="/insights">Insights</a>' in text  # in the navigation
    assert text_of(text, "team-average").startswith(
        "Median 75% match over the 3 builds that had sstate objects to restore (average 58%); "
        "each build counts once, however many objects its log says it wanted.")
    svg = text[text.index('<figure class="chart" id="reuse-chart"'):]
    svg = svg[:svg.index("</figure>")]
    assert 'role="img"' in svg and '<title id="reuse-chart-title">' in svg
    assert [int(n) for n in re.findall(r'<a href="/jobs/(\d+)" class="chart-mark">', svg)] == [
        first, second, third]  # oldest first, each bar a link to its build
    assert f"Build #{second} (SUCCESS): 75%" in svg
    rows = re.findall(r"<tr>(.*?)</tr>", text[text.index('id="team-table"'):], re.S)
    cells = [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows[1:4]]
    assert cells[0].startswith(f"#{third} alice core-image-minimal qemux86-64 SUCCESS "
                               "16 of 16 100% 16 12")
    assert cells[1].startswith(f"#{second} bob core-image-base")
    assert f'href="/insights/trends?{html.escape(urlencode(KEY))}"' in text


def test_the_team_view_reads_at_most_its_limit_of_builds_and_says_so(
        alice, ended, monkeypatch):
    monkeypatch.setattr(insights, "MAX_BUILDS", 2)
    ids = [ended(build_log(found=n)) for n in (0, 8, 16)]
    text = alice.get("/insights").text
    assert "(at most 2 are read)" in text
    assert f'href="/jobs/{ids[0]}" class="chart-mark"' not in text
    data = alice.get("/api/insights/reuse").json()
    assert data["limit"] == 2 and [b["id"] for b in data["builds"]] == ids[1:]
    assert data["average_match_percent"] == 75.0 and (data["found"], data["wanted"]) == (24, 32)
    assert data["median_match_percent"] == 75.0


def test_with_no_ended_build_the_pages_say_so(alice):
    assert "No build has ended yet." in alice.get("/insights").text
    page = alice.get("/insights/trends").text
    assert "No build has ended yet: trends appear once a target has been built." in page
    assert alice.get("/api/insights/reuse").json()["builds"] == []


# --- trends --------------------------------------------------------------------------------------

def test_the_trends_of_a_target_plot_duration_reuse_image_size_and_packages(
        alice, bob, ended):
    image = "core-image-minimal-qemux86-64.rootfs.wic"
    a = ended(build_log(found=0), seconds=600,
              artifacts={image: b"x" * 3000, MANIFEST: b"busybox core2-64 1.36.1-r0\n" * 3,
                         "core-image-minimal.spdx.tar.zst": b"s" * 9000})
    ended(build_log(found=16), target="other-image")  # another target: not on this trend
    b = ended(build_log(found=16), seconds=90, who=bob,
              artifacts={image: b"x" * 5000,
                         MANIFEST: b"busybox core2-64 1.36.1-r0\nbase-files q 3.0-r0\n"})

    page = alice.get("/insights/trends", params=KEY)
    assert page.status_code == 200
    text = page.text
    assert "<h1>Trends of core-image-minimal <span class=\"muted\">for qemux86-64</span></h1>" \
        in text
    for chart in ("duration-chart", "reuse-chart", "image-chart", "packages-chart"):
        figure = text[text.index(f'id="{chart}"'):]
        figure = figure[:figure.index("</figure>")]
        assert f'<title id="{chart}-title">' in figure
        assert [int(n) for n in re.findall(r'href="/jobs/(\d+)"', figure)] == [a, b]
    assert f"Build #{a} (SUCCESS): 10m 00s" in text and f"Build #{b} (SUCCESS): 1m 30s" in text
    assert f"Build #{b} (SUCCESS): 4.9 KiB" in text  # the image, not the bigger SBOM
    rows = re.findall(r"<tr>(.*?)</tr>", text[text.index('id="trend-table"'):], re.S)
    cells = [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows[1:3]]
    assert cells[0].startswith(f"#{b} bob SUCCESS 1m 30s 100% (16/16) 4.9 KiB 2")
    assert cells[1].startswith(f"#{a} alice SUCCESS 10m 00s 0% (0/16) 2.9 KiB 1")

    data = alice.get("/api/insights/trends", params=KEY).json()
    assert [(p["id"], p["match_percent"], p["image"]["size"], p["packages"])
            for p in data["builds"]] == [(a, 0, 3000, 1), (b, 100, 5000, 2)]


def test_the_trends_page_without_a_target_lists_the_recent_ones(alice, ended):
    ended(build_log(found=1))
    ended(build_log(found=1), target="other-image")
    text = alice.get("/insights/trends").text
    assert "Choose a repository, MACHINE and target built lately" in text
    assert f'href="/insights/trends?{html.escape(urlencode({**KEY, "target": "other-image"}))}"' \
        in text
    targets = alice.get("/api/insights/targets").json()
    assert [t["target"] for t in targets] == ["other-image", "core-image-minimal"]
    assert targets[1]["trends"] == "/api/insights/trends?" + urlencode(KEY)


def test_a_target_nobody_built_has_an_empty_trend(alice, ended):
    ended(build_log(found=1))
    text = alice.get("/insights/trends", params={**KEY, "machine": "beaglebone"}).text
    assert "No build of this repository, MACHINE and target has ended lately." in text


@pytest.mark.parametrize("params, why", [
    ({"machine": "qemux86-64"}, "repo, target missing"),
    ({**KEY, "target": "  "}, "target missing"),
])
def test_an_incomplete_target_is_a_clear_400(alice, params, why):
    page = alice.get("/insights/trends", params=params)
    assert page.status_code == 400 and why in page.text and "Traceback" not in page.text
    answer = alice.get("/api/insights/trends", params=params)
    assert answer.status_code == 400
    assert answer.json() == {"detail": f"No trends to show: choose a repository, MACHINE and "
                                       f"target ({why})."}


def test_a_control_character_is_a_400_not_a_database_error(alice):
    answer = alice.get("/api/insights/trends", params={**KEY, "target": "core\x00image"})
    assert answer.status_code == 400 and "control characters" in answer.json()["detail"]


def test_an_overlong_parameter_is_a_400(alice):
    answer = alice.get("/api/insights/trends", params={**KEY, "repo": "x" * 5000})
    assert answer.status_code == 400 and "repo" in answer.json()["detail"]
    assert alice.get("/insights/trends", params={**KEY, "repo": "x" * 5000}).status_code == 400


def test_the_insights_need_sign_in(client):
    for path in ("/insights", "/insights/trends"):
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    for path in ("/api/insights/reuse", "/api/insights/trends", "/api/insights/targets"):
        assert client.get(path).status_code == 401


def test_hostile_build_files_do_not_break_the_trends(alice, ended, fakes, monkeypatch):
    monkeypatch.setattr(insights, "MANIFEST_BYTES", 64)
    job_id = ended(build_log(found=3), artifacts={
        MANIFEST: b"busybox core2-64 1.36.1-r0\n" * 10,  # bigger than what a trend reads
        "core-image-minimal-qemux86-64.rootfs.ext4": b"\x00" * 100})
    fakes.files.digests[job_id] = b"{" * 100  # not a digest: the log is read
    data = alice.get("/api/insights/trends", params=KEY).json()["builds"][0]
    assert data["packages"] is None and data["image"]["size"] == 100
    assert data["match_percent"] == 18
    assert alice.get("/insights/trends", params=KEY).status_code == 200


def test_one_forged_sstate_summary_does_not_make_the_teams_figure(alice, bob, ended):
    """bob's build prints a summary of a billion objects, all found: the team's figure is what
    a typical build reused, on the page and in the API."""
    for _ in range(3):
        ended(build_log(found=4))  # 25 %
    ended("Sstate summary: Wanted 999999999 Local 999999999 Mirrors 0 Missed 0 Current 0 "
          "(100% match, 0% complete)\n", who=bob)
    lead = text_of(alice.get("/insights").text, "team-average")
    assert lead.startswith("Median 25% match over the 4 builds that had sstate objects to restore")
    assert "999999" not in lead
    data = alice.get("/api/insights/reuse").json()
    assert data["median_match_percent"] == 25.0
