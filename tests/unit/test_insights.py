"""Insights over recent builds (domain/insights.py) and the geometry of their charts
(web/insights_render.py), with the fakes at the ports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autobuild.domain import insights
from autobuild.domain.artifacts import ArtifactInfo
from autobuild.domain.insights import (
    BuildPoint, Insights, InvalidTarget, TargetKey, TeamReuse, largest_image,
)
from autobuild.domain.jobs import Job, JobStatus
from autobuild.domain.queries import JobQueries
from autobuild.domain.sstate import CacheReuse
from autobuild.web.insights_render import HEIGHT, LEFT, WIDTH, axis_end, chart, percent
from tests.fakes import FakeJobFiles, FakeJobRepository

REPO = "https://git.example.com/bsp/poky.git"
T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def summary(found: int, wanted: int = 16) -> bytes:
    return (f"Sstate summary: Wanted {wanted} Local {found} Mirrors 0 Missed {wanted - found} "
            f"Current 0 (0% match, 0% complete)\n").encode()


@pytest.fixture
def world():
    jobs, files = FakeJobRepository(), FakeJobFiles()

    def add(status=JobStatus.SUCCESS, target="core-image-minimal", machine="qemux86-64",
            found=4, seconds=100.0, artifacts=None, started=True) -> Job:
        job_id = len(jobs.rows) + 1
        job = Job(job_id, "alice", REPO, "main", machine, target, T0 + timedelta(hours=job_id),
                  status=status)
        if started:
            job.started_at = job.created_at
        if status.is_terminal:
            job.finished_at = job.created_at + timedelta(seconds=seconds)
        jobs.rows[job_id] = job
        files.logs[job_id] = summary(found)
        files.artifacts[job_id] = artifacts or {}
        return job

    return Insights(jobs, JobQueries(jobs, files)), add


def test_the_team_view_takes_the_newest_ended_builds_oldest_first(world):
    view, add = world
    add(found=0)
    add(status=JobStatus.RUNNING)  # not ended: not on the view
    add(status=JobStatus.CANCELLED, started=False)  # never ran: nothing to show
    add(found=8, target="other")
    add(status=JobStatus.FAILED, found=16)
    team = view.team_reuse()
    assert [p.job.id for p in team.points] == [1, 4, 5]
    assert [p.match_percent for p in team.points] == [0, 50, 100]
    assert team.average == 50.0 and team.objects == (24, 48)
    assert [p.job.id for p in view.team_reuse(limit=2).points] == [4, 5]


def test_the_rows_looked_through_are_bounded(world, monkeypatch):
    view, add = world
    monkeypatch.setattr(insights, "SCAN_ROWS", 5)
    monkeypatch.setattr(insights, "PAGE_ROWS", 2)
    for _ in range(3):
        add()
    for _ in range(6):
        add(status=JobStatus.RUNNING)
    assert view.team_reuse().points == []  # the 3 ended ones are older than the rows read
    assert view.seen_targets() == []


def test_a_trend_follows_one_repository_machine_and_target(world):
    view, add = world
    image = "core-image-minimal-qemux86-64.rootfs.ext4"
    add(found=0, seconds=600, artifacts={image: b"x" * 10, "a.rootfs.manifest": b"p a 1\n"})
    add(machine="qemuarm")
    add(target="core-image-minimal-dev")  # contains the target's text: not the same target
    add(found=16, seconds=60, artifacts={image: b"x" * 20})
    trend = view.trend(TargetKey(REPO, "qemux86-64", "core-image-minimal"))
    assert [(p.job.id, p.duration_seconds, p.match_percent) for p in trend.points] == [
        (1, 600.0, 0), (4, 60.0, 100)]
    assert [p.image.size if p.image else None for p in trend.points] == [10, 20]
    assert [p.packages for p in trend.points] == [1, None]
    seen = view.seen_targets()
    assert [(s.key.machine, s.key.target, s.builds, s.last_id) for s in seen] == [
        ("qemux86-64", "core-image-minimal", 2, 4), ("qemux86-64", "core-image-minimal-dev", 1, 3),
        ("qemuarm", "core-image-minimal", 1, 2)]


def test_a_purged_build_is_on_the_trend_without_its_files(world):
    view, add = world
    job = add(artifacts={"x.ext4": b"1"})
    job.purged_at = T0
    point = view.trend(TargetKey(REPO, "qemux86-64", "core-image-minimal")).points[0]
    assert point.reuse.is_empty and point.image is None and point.duration_seconds == 100.0


@pytest.mark.parametrize("repo, machine, target, why", [
    ("", "m", "t", "repo missing"), (" ", "", "t", "repo, machine missing"),
    ("r", "m", "x" * 5000, "at most 4096"), ("r", "m\x00", "t", "no control characters"),
    ("r\n", "m", "t", "no control characters")])
def test_an_incomplete_or_overlong_target_is_refused(repo, machine, target, why):
    with pytest.raises(InvalidTarget, match=why):
        TargetKey.parse(repo, machine, target)


def test_the_largest_image_is_an_image_not_its_sbom_or_manifest():
    def art(name, size):
        return ArtifactInfo(name, size, T0)
    found = largest_image([art("a.rootfs.manifest", 900), art("a.spdx.tar.zst", 800),
                           art("a.rootfs.ext4", 100), art("u-boot.bin", 50)])
    assert found is not None and found.name == "a.rootfs.ext4"
    assert largest_image([art("a.rootfs.manifest", 9)]) is None


# --- chart geometry ------------------------------------------------------------------------------

def points(values):
    return [BuildPoint(Job(i + 1, "a", REPO, "main", "m", "t", T0), v, CacheReuse())
            for i, v in enumerate(values)]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.none() | st.floats(0, 1e12, allow_nan=False), max_size=60))
def test_every_mark_lies_inside_the_chart_and_links_to_its_build(values):
    drawn = chart("c", "Duration", points(values), lambda p: p.duration_seconds, str)
    assert len(drawn.marks) == sum(v is not None for v in values)
    for mark in drawn.marks:
        assert LEFT <= mark.x <= WIDTH and 0 <= mark.y <= HEIGHT and mark.height >= 0
        assert mark.href.startswith("/jobs/")
    assert drawn.y_ticks and len(drawn.x_ticks) <= 8


def test_a_percent_chart_runs_from_0_to_100_and_says_where_it_goes():
    drawn = chart("c", "sstate match", points([0.0, None, 100.0]), lambda p: p.duration_seconds,
                  percent, scale="percent")
    assert [t.label for t in drawn.y_ticks] == ["0%", "25%", "50%", "75%", "100%"]
    assert [m.tip for m in drawn.marks] == ["Build #1 (PENDING): 0%", "Build #3 (PENDING): 100%"]
    assert drawn.marks[0].height == 0 and drawn.marks[1].y == drawn.top
    assert drawn.description == ("sstate match: 2 of 3 builds have a value, from 0% (oldest) "
                                 "to 100% (newest)")
    assert drawn.path.startswith("M") and drawn.path.count("L") == 1


@pytest.mark.parametrize("value, scale, end", [
    (5.5, "duration", 10), (61, "duration", 120), (2000, "duration", 3600),
    (200000, "duration", 5 * 86400), (61440, "size", 100 * 1024), (3 * 1024 ** 3, "size",
                                                                      5 * 1024 ** 3),
    (16, "count", 20), (3, "count", 5), (0.3, "count", 0.5), (40, "percent", 100),
    (0, "count", 0), (0, "percent", 100)])
def test_axes_end_at_round_numbers_of_their_unit(value, scale, end):
    assert axis_end(value, scale) == end


# --- the team's figure: one forged summary cannot make it --------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _point(job_id: int, owner: str, found: int, wanted: int) -> BuildPoint:
    job = Job(job_id, owner, "https://h/r.git", "main", "m", "t", T0)
    return BuildPoint(job, 60.0, CacheReuse(summaries=1, wanted=wanted, found=found))


def test_one_forged_sstate_summary_does_not_make_the_teams_reuse():
    """A build's log can say "Wanted 999999999 Local 999999999"; summed, the team read
    "1000000489 of 1000004899 objects reused" (99.99 %) while 49 of 50 builds reused 10 %."""
    points = [_point(i + 1, "alice", 10, 100) for i in range(49)]
    points.append(_point(50, "mallory", 999_999_999, 999_999_999))
    team = TeamReuse(points, 50)
    assert team.median == 10.0
    assert team.average is not None and team.average < 12


@given(st.lists(st.integers(0, 100), min_size=2, max_size=49), st.integers(0, 10**9 - 1))
def test_whatever_one_build_says_the_median_stays_within_what_the_others_reused(percents, forged):
    honest = [_point(i + 1, "alice", p, 100) for i, p in enumerate(percents)]
    team = TeamReuse([*honest, _point(99, "mallory", forged, 10**9 - 1)], 50)
    assert team.median is not None and min(percents) <= team.median <= max(percents)


def test_a_build_that_wanted_nothing_is_left_out_of_the_median_and_average():
    """A build with every task already current wanted 0 objects: not a 0 % build."""
    points = [_point(1, "alice", 10, 100), _point(2, "alice", 0, 0), _point(3, "bob", 30, 100)]
    team = TeamReuse(points, 50)
    assert (team.median, team.average) == (20.0, 20.0)
    assert [p.job.id for p in team.with_summary] == [1, 3]
    assert TeamReuse([_point(1, "alice", 0, 0)], 50).median is None


def test_without_a_summary_there_is_no_median():
    job = Job(1, "alice", "https://h/r.git", "main", "m", "t", T0)
    assert TeamReuse([BuildPoint(job, 60.0, CacheReuse())], 50).median is None
