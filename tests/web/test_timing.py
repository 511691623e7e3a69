"""'Where the time went' on the job page and GET /api/jobs/{id}/timing, from the runner's
condensed buildstats (layout.TIMING); a file a build wrote is hostile: never a 500."""

import html
import re

import pytest

from autobuild.domain.buildstats import CONDENSED_HEADER, MAX_CONDENSED_BYTES
from tests.web.helpers import submit

T0 = 1_700_000_000.0
TASKS = [  # recipe, version, task, start, end, cpu
    ("glibc", "2.39+git-r0", "do_fetch", 0, 5, 2),
    ("glibc", "2.39+git-r0", "do_compile", 5.1, 400, 1500),
    ("busybox", "1.36.1-r0", "do_fetch", 0, 3, 1),
    ("busybox", "1.36.1-r0", "do_compile", 400.2, 480, 250),
    ("core-image-minimal", "1.0-r0", "do_rootfs", 480.3, 520, 60),
]


def condensed(tasks=TASKS, build_elapsed=540.0) -> bytes:
    lines = [CONDENSED_HEADER, f"build\t{build_elapsed:.2f}"]
    for recipe, version, task, start, end, cpu in tasks:
        lines.append(f"task\t{recipe}\t{version}\t{task}\t{T0 + start:.2f}\t{T0 + end:.2f}\t"
                     f"{end - start:.2f}\t{cpu:.2f}\tP")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def finished(alice, fakes, supervisor):
    assert submit(alice).status_code == 303
    supervisor.tick()
    fakes.runner.finish(1, 0)
    supervisor.tick()
    return fakes.files.timings


def test_the_job_page_shows_totals_charts_and_their_text_alternative(alice, bob, finished):
    finished[1] = condensed()

    page = html.unescape(bob.get("/jobs/1").text)  # a colleague sees it too

    section = page[page.index('id="timing"'):page.index('class="log-section"')]
    assert "Where the time went" in section
    assert re.search(r'id="timing-wall">9m 00s<', section)  # bitbake's own 540 s
    assert re.search(r'id="timing-cpu">30m 13s ', section)  # 1813 s of CPU
    assert re.search(r'id="timing-tasks">5<', section)
    # two inline SVG charts with titles, no script, and the same numbers as tables
    assert section.count("<svg") == 2 and section.count("<title id=") == 2
    assert 'role="img"' in section and "<script" not in section
    recipes = section[section.index('id="timing-recipes-table"'):]
    assert recipes.index("glibc") < recipes.index("busybox")
    assert "<td>glibc</td><td>2</td><td>6m 39s</td><td>25m 02s</td>" in section
    path = section[section.index('id="timing-path"'):section.index("</ol>")]
    assert re.findall(r"<li>(\S+)", path) == [
        "glibc:do_fetch", "glibc:do_compile", "busybox:do_compile", "core-image-minimal:do_rootfs"]
    assert "derived from timing" in section


def test_the_api_gives_the_same_summary(alice, finished):
    finished[1] = condensed()

    body = alice.get("/api/jobs/1/timing").json()

    assert body["available"] is True and body["problem"] is None
    assert (body["wall_seconds"], body["cpu_seconds"], body["task_count"]) == (540, 1813, 5)
    assert body["slowest_recipes"][0] == {"recipe": "glibc", "elapsed": 399.9, "cpu": 1502,
                                          "tasks": 2}
    assert body["slowest_tasks"][0]["task"] == "do_compile"
    assert body["slowest_tasks"][0]["start"] == T0 + 5.1
    assert [t["recipe"] for t in body["critical_path"]] == [
        "glibc", "glibc", "busybox", "core-image-minimal"]
    assert alice.get("/api/jobs/1/timing?top=1").json()["slowest_tasks"][0]["recipe"] == "glibc"
    assert alice.get("/api/jobs/1/timing?top=0").status_code == 400
    assert alice.get("/api/jobs/99/timing").status_code == 404


def test_a_build_without_buildstats_has_no_section(alice, finished):
    assert 'id="timing"' not in alice.get("/jobs/1").text
    body = alice.get("/api/jobs/1/timing").json()
    assert body["available"] is False and body["problem"] is None


@pytest.mark.parametrize("content", [
    b"", b"\x00\xff\xfe garbage\n" * 100, CONDENSED_HEADER.encode() + b"\ntask\tx\n",
    b"autobuild-buildstats 1\ntask\t<img src=x>\t1\tdo_x\t1\t2\t1\t1\tP\n",
    CONDENSED_HEADER.encode() + b"\n" + b"x" * (MAX_CONDENSED_BYTES + 10),
])
def test_a_garbled_or_huge_file_says_timing_is_unavailable_never_a_500(alice, finished, content):
    finished[1] = content

    page = alice.get("/jobs/1")
    api = alice.get("/api/jobs/1/timing")

    assert page.status_code == 200 and api.status_code == 200
    assert 'id="timing-unavailable"' in page.text and "<img src=x>" not in page.text
    assert api.json()["available"] is False and api.json()["problem"]


def test_a_running_build_shows_no_timing_yet(alice, fakes, supervisor):
    assert submit(alice).status_code == 303
    supervisor.tick()
    fakes.files.timings[1] = condensed()
    assert 'id="timing"' not in alice.get("/jobs/1").text


def test_a_long_task_name_is_cut_in_the_chart_and_whole_in_the_table(alice, finished):
    long = "gcc-cross-canadian-x86-64-with-a-very-long-name"
    finished[1] = condensed([*TASKS, (long, "14.2-r0", "do_compile", 10, 300, 900)])

    page = html.unescape(alice.get("/jobs/1").text)

    assert f"<td>{long}:do_compile</td>" in page
    assert f"{long[:37]}…<title>{long}:do_compile</title>" in page


def test_two_builds_timing_can_be_compared(alice, fakes, supervisor, queries):
    from autobuild.domain.buildstats import timing_differences
    for _ in range(2):
        assert submit(alice).status_code == 303
    supervisor.tick()
    fakes.files.timings[1] = condensed()
    slower = [(r, v, t, s, e + 60 if t == "do_rootfs" else e, c) for r, v, t, s, e, c in TASKS]
    fakes.files.timings[2] = condensed(slower)

    a, b = queries.build_timing(1), queries.build_timing(2)

    assert a is not None and b is not None
    [diff] = timing_differences(a, b)
    assert (diff.recipe, diff.task, diff.delta) == ("core-image-minimal", "do_rootfs", 60)
    fakes.files.timings[2] = b"garbage"
    assert queries.build_timing(2) is None


def test_the_compare_page_partial_lists_the_changes_with_bars(app):
    """_compare_timing.html, which the compare page includes with c.timing set to
    timing_differences(a, b)."""
    from types import SimpleNamespace

    from autobuild.domain.buildstats import TimingDifference

    template = app.state.templates.get_template("_compare_timing.html")
    diffs = [TimingDifference("busybox", "do_compile", 50, 110),
             TimingDifference("zlib", "do_fetch", 30, None),
             TimingDifference("<b>x</b>", "do_install", 5, 2)]

    raw = template.render(c=SimpleNamespace(timing=diffs))
    page = html.unescape(raw)
    same = template.render(c=SimpleNamespace(timing=[]))

    assert re.findall(r"<code>([^<]*)</code>", raw) == [
        "busybox:do_compile", "zlib:do_fetch", "&lt;b&gt;x&lt;/b&gt;:do_install"]
    assert "+1m 00s" in page and "−30s" in page and "did not run" in page
    assert 'class="timing-slower" x="0" y="1" width="100.0"' in page
    assert 'class="timing-faster" x="-50.0" y="1" width="50.0"' in page
    assert "the same time in both builds" in same


def test_timing_differences_as_json():
    from autobuild.domain.buildstats import TimingDifference
    from autobuild.web.rendering import timing_differences_json

    assert timing_differences_json([TimingDifference("zlib", "do_fetch", 30, None)]) == [
        {"recipe": "zlib", "task": "do_fetch", "before": 30, "after": None, "delta": -30}]
