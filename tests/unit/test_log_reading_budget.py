"""What one read of a build's log costs whatever the build wrote (domain/queries.py): a line
budget counted as the readers split lines (str.splitlines: \\n \\r \\v \\f \\x1c-\\x1e \\x85
\\u2028 \\u2029; domain/text.py), and a digest file parsed once per version, not per read.

Before, the budget counted b"\\n" only.

Measured with the fakes (tests/fakes.py) before, CPU time of one job page's four reads
(progress, failure summary, provenance, cache reuse) of a build whose digest its owner left
at the start of 8 MiB of form feeds: 4.4 s per view (of b"\\n": 0.15 s); without a digest
1.4-1.8 s on every view; the team's Insights over 50 such builds (256 KiB behind each):
12-13 s per answer. These tests count lines and parses, not time.
"""

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autobuild.domain import digest as digest_module
from autobuild.domain import queries
from autobuild.domain.digest import MAX_DIGEST_BYTES, LogDigest
from autobuild.domain.insights import GAP_BYTES, Insights
from autobuild.domain.jobs import JobStatus
from autobuild.domain.text import count_line_breaks
from tests.fakes import FakeWorld

URL = "https://git.example.com/yocto/poky.git"
HEAD = b"==> bitbake x (MACHINE=m)\n"
BREAKS = [b"\n", b"\r", b"\x0c", b"\x0b", b"\x1c", "\u2028".encode(), "\x85".encode()]


def _lines(data: bytes) -> int:
    """The lines the readers of the log see in ``data`` (FailureNotes and summarize split as
    str.splitlines does)."""
    return len(data.decode("utf-8", "replace").splitlines())


def _world(log: bytes, digest: bool):
    world = FakeWorld(max_running=100)
    job = world.commands.submit("mallory", URL, "main", "qemux86-64", "core-image-minimal")
    world.files.append_log(job.id, HEAD)
    if digest:  # the owner's digest, left at the start of what follows
        kept = LogDigest()
        kept.feed(HEAD)
        world.files.digests[job.id] = kept.to_json()
    world.files.append_log(job.id, log)
    return world, job


@pytest.mark.parametrize("unit", BREAKS, ids=repr)
def test_a_digest_left_behind_a_log_of_line_breaks_costs_one_call_its_line_budget(
        unit, monkeypatch):
    world, job = _world(unit * (4 * queries.REPLAY_BYTES // len(unit)), digest=True)
    fed = []
    feed = LogDigest.feed
    monkeypatch.setattr(LogDigest, "feed",
                        lambda self, data: fed.append(_lines(data)) or feed(self, data))

    world.queries.progress(job.id)

    assert 0 < sum(fed) <= queries.REPLAY_BYTES // queries.BYTES_PER_LINE


@pytest.mark.parametrize("unit", BREAKS, ids=repr)
def test_without_a_digest_a_log_of_line_breaks_is_read_by_its_line_budget(unit, monkeypatch):
    world, job = _world(unit * (2 * queries.FAILURE_SCAN_BYTES // len(unit)), digest=False)
    read = []
    summarize = queries.summarize
    monkeypatch.setattr(queries, "summarize", lambda text, logs=None: read.append(
        len(text.splitlines())) or summarize(text, logs))

    world.queries.failure_summary(job.id)

    assert read[0] <= queries.FAILURE_SCAN_BYTES // queries.BYTES_PER_LINE


@pytest.mark.parametrize("unit", [b"\n", b"\x0c"], ids=repr)
def test_insights_read_each_build_within_its_line_budget(unit, monkeypatch):
    """The team's sstate reuse reads 50 builds for everyone who opens Insights."""
    world = FakeWorld(max_running=100)
    for _ in range(3):
        job = world.commands.submit("mallory", URL, "main", "qemux86-64", "core-image-minimal")
        world.files.append_log(job.id, HEAD + unit * (GAP_BYTES - len(HEAD) - 1))
        kept = LogDigest()
        kept.feed(HEAD)
        world.files.digests[job.id] = kept.to_json()
        world.repo.rows[job.id] = replace(
            world.repo.rows[job.id], status=JobStatus.FAILED,
            started_at=datetime(2026, 1, 1, tzinfo=UTC),
            finished_at=datetime(2026, 1, 1, 1, tzinfo=UTC))
    fed = []
    feed = LogDigest.feed
    monkeypatch.setattr(LogDigest, "feed",
                        lambda self, data: fed.append(_lines(data)) or feed(self, data))

    Insights(world.repo, world.queries).team_reuse()

    assert sum(fed) <= 3 * max(1024, GAP_BYTES // queries.BYTES_PER_LINE)


def _junk_digest() -> bytes:
    kept = LogDigest()
    kept.feed(HEAD)
    good = kept.to_json().decode().rstrip()
    junk = "[" + "[]," * ((MAX_DIGEST_BYTES - len(good) - 100) // 3) + "[]]"
    raw = (good[:-1] + ',"junk":' + junk + "}").encode()
    assert len(raw) <= MAX_DIGEST_BYTES
    return raw


def test_a_digest_padded_with_junk_is_not_parsed_by_every_read_of_every_view(monkeypatch):
    """An extra key of millions of empty lists (the parser ignores it) in 8 MiB: each of a job
    page's four reads parsed it again, on every view (2 s and ~200 MB per view)."""
    world = FakeWorld()
    job = world.commands.submit("mallory", URL, "main", "qemux86-64", "core-image-minimal")
    world.files.append_log(job.id, HEAD)
    world.files.digests[job.id] = _junk_digest()
    parsed = []
    loads = json.loads
    monkeypatch.setattr(digest_module.json, "loads",
                        lambda text, *a, **kw: parsed.append(len(text)) or loads(text, *a, **kw))

    for _ in range(2):  # two views of the job page
        world.queries.progress(job.id)
        world.queries.failure_summary(job.id)
        world.queries.provenance(job.id)
        world.queries.cache_reuse(job.id)

    assert sum(parsed) <= MAX_DIGEST_BYTES, f"{len(parsed)} parses, {sum(parsed) >> 20} MiB"


chunks = st.lists(st.sampled_from([b"\n", b"a", b"bb\n", b"\r", b"\r\n", b"\x0c", b"x" * 50,
                                   "\u2028".encode()]), max_size=400).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(chunks, st.integers(min_value=1, max_value=500))
def test_a_piece_of_log_is_cut_after_a_line_break_within_the_budget(data, lines):
    kept, count = queries._within_lines(data, lines)

    assert data.startswith(kept) and count == count_line_breaks(kept)
    if count_line_breaks(data) <= lines:
        assert kept == data  # nothing is cut that fits
    else:
        assert 1 <= count <= lines
        assert kept.endswith((b"\n", b"\r", b"\x0c", "\u2028".encode()))
