"""JobQueries.progress, track_progress and failure_summary, over the fake job files."""

import pytest

from autobuild.domain import queries
from autobuild.domain.digest import LogDigest
from autobuild.domain.failures import task_log_name
from autobuild.domain.progress import Phase
from autobuild.domain.queries import JobNotFound
from tests.fakes import FakeWorld

URL = "https://git.example.com/yocto/poky.git"
LOGFILE = "/j/1/work/src/build/tmp/work/qemux86-64-poky-linux/fail-image/1.0-r0/temp/log.do_compile.9"
FAILED_BUILD = f"""\
==> Cloning {URL}
==> bitbake fail-image (MACHINE=qemux86-64)
NOTE: Running task 5 of 12 (/j/1/work/src/meta/recipes-core/images/fail-image.bb:do_compile)
ERROR: fail-image-1.0-r0 do_compile: oe_runmake failed
ERROR: Logfile of failure stored in: {LOGFILE}
Summary: 1 task failed:
  /j/1/work/src/meta/recipes-core/images/fail-image.bb:do_compile
==> Build finished: FAILED (exit 1)
""".encode()


@pytest.fixture
def world():
    w = FakeWorld()
    w.job = w.commands.submit("alice", URL, "main", "qemux86-64", "fail-image")
    return w


def test_progress_of_a_job_without_a_log_is_starting(world):
    progress = world.queries.progress(world.job.id)
    assert progress.phase is Phase.STARTING
    assert progress.percent is None


def test_progress_follows_the_log(world):
    world.files.append_log(world.job.id, b"==> bitbake x (MACHINE=m)\n"
                           b"NOTE: Running task 30 of 120 (/a/b.bb:do_compile)\n")
    progress = world.queries.progress(world.job.id)
    assert (progress.phase, progress.tasks_done, progress.percent) == (Phase.TASKS, 30, 25)


def test_progress_of_a_huge_log_reads_only_its_end(world, monkeypatch):
    monkeypatch.setattr(queries, "PROGRESS_SCAN_BYTES", 1000)
    reads = []
    read_log = world.files.read_log

    def counting_read(job, offset, limit):
        reads.append(limit)
        return read_log(job, offset, limit)

    world.files.read_log = counting_read
    world.files.append_log(world.job.id, b"NOTE: Running task 1 of 2 (/a.bb:do_x)\n" * 5000
                           + b"NOTE: Running task 2 of 2 (/a.bb:do_y)\n")

    progress = world.queries.progress(world.job.id)

    assert reads == [1000]
    assert (progress.tasks_done, progress.percent, progress.current) == (2, 100, "a.bb:do_y")


def test_a_tracker_up_to_an_offset_continues_with_the_rest(world):
    log = b"NOTE: Running setscene task 3 of 4 (/a.bb:do_x_setscene)\nNOTE: Running task 7 of 9 (/a.bb:do_y)\n"
    world.files.append_log(world.job.id, log)
    cut = log.index(b"task 7")  # in the middle of a line

    tracker = world.queries.track_progress(world.job.id, cut)
    assert tracker.progress.phase is Phase.SETSCENE
    tracker.feed(log[cut:].decode())

    assert tracker.progress == world.queries.progress(world.job.id)
    assert tracker.progress.tasks_done == 7


def test_failure_summary_joins_the_log_and_the_saved_task_logs(world):
    world.files.append_log(world.job.id, FAILED_BUILD)
    world.files.task_logs[world.job.id] = {task_log_name(LOGFILE): "make: *** Error 1\n"}

    summary = world.queries.failure_summary(world.job.id)

    (task,) = summary.tasks
    assert task.label == "fail-image-1.0-r0 do_compile"
    assert task.log_tail == "make: *** Error 1\n"
    assert summary.git_problem is None


def test_failure_summary_of_a_clean_log_is_empty(world):
    world.files.append_log(world.job.id, b"==> Build finished: SUCCESS (exit 0)\n")
    assert world.queries.failure_summary(world.job.id).is_empty


def test_unknown_jobs_are_not_found(world):
    with pytest.raises(JobNotFound):
        world.queries.progress(999)
    with pytest.raises(JobNotFound):
        world.queries.failure_summary(999)


# --- the runner's digest of the whole log ---------------------------------------------------

EARLY_FAILURE_THEN_NOISE = FAILED_BUILD.replace(b"==> Build finished: FAILED (exit 1)\n", b"") \
    + b"NOTE: Running task 9 of 12 (/j/1/work/src/meta/recipes-core/x/x.bb:do_compile)\n" * 3000


def digested(world, data: bytes) -> LogDigest:
    """The log as the runner writes it, with its digest as the runner saves it."""
    digest = LogDigest()
    digest.feed(data)
    world.files.append_log(world.job.id, data)
    world.files.digests[world.job.id] = digest.to_json()
    return digest


def test_the_summary_of_a_digested_log_finds_an_error_long_before_its_end(world, monkeypatch):
    monkeypatch.setattr(queries, "FAILURE_SCAN_BYTES", 1000)  # a tail would miss it
    digested(world, EARLY_FAILURE_THEN_NOISE)
    reads = []
    read_log = world.files.read_log
    world.files.read_log = lambda job, offset, limit: reads.append(limit) or read_log(job, offset, limit)

    summary = world.queries.failure_summary(world.job.id)

    assert [t.label for t in summary.tasks] == ["fail-image-1.0-r0 do_compile"]
    assert summary.incomplete is None
    assert reads == []  # the digest covers the whole log: nothing of the log is read


def test_progress_continues_from_the_digest_with_only_the_bytes_written_after_it(world):
    digested(world, b"==> bitbake x (MACHINE=m)\nNOTE: Running task 30 of 120 (/a/b.bb:do_compile)\n")
    world.files.append_log(world.job.id, b"NOTE: Running task 60 of 120 (/a/b.bb:do_install)\n")
    reads = []
    read_log = world.files.read_log
    world.files.read_log = lambda job, offset, limit: reads.append(offset) or read_log(job, offset, limit)

    progress = world.queries.progress(world.job.id)

    assert (progress.tasks_done, progress.percent, progress.current) == (60, 50, "b.bb:do_install")
    assert len(reads) == 1 and reads[0] > 0  # from the digest's offset on


@pytest.mark.parametrize("digest", [b"{not json", b'{"version": 1, "offset": 99999999}',
                                    b'{"version": 9}'])
def test_a_broken_forged_or_stale_digest_falls_back_to_the_log(world, digest):
    world.files.append_log(world.job.id, FAILED_BUILD)
    world.files.digests[world.job.id] = digest
    summary = world.queries.failure_summary(world.job.id)
    assert [t.label for t in summary.tasks] == ["fail-image-1.0-r0 do_compile"]
    assert world.queries.progress(world.job.id).tasks_done == 5


def test_a_digest_far_behind_the_log_is_not_trusted(world, monkeypatch):
    monkeypatch.setattr(queries, "DIGEST_GAP_BYTES", 100)
    digested(world, b"==> bitbake x (MACHINE=m)\n")
    world.files.append_log(world.job.id, FAILED_BUILD)
    summary = world.queries.failure_summary(world.job.id)
    assert [t.label for t in summary.tasks] == ["fail-image-1.0-r0 do_compile"]


def test_without_a_digest_a_summary_read_from_the_end_says_so(world, monkeypatch):
    monkeypatch.setattr(queries, "FAILURE_SCAN_BYTES", 1000)
    world.files.append_log(world.job.id, EARLY_FAILURE_THEN_NOISE)

    summary = world.queries.failure_summary(world.job.id)

    assert summary.tasks == ()
    assert summary.incomplete and "last" in summary.incomplete
    assert not summary.is_empty  # the page says what was not read


def test_without_a_digest_a_short_log_is_read_whole_and_complete(world):
    world.files.append_log(world.job.id, FAILED_BUILD)
    assert world.queries.failure_summary(world.job.id).incomplete is None


def test_a_digest_far_behind_its_log_is_brought_up_to_date_once_for_all_that_reads_it(world):
    """A job page reads the digest for progress, failure, provenance and cache reuse: a
    build whose digest stays megabytes behind must not cost each of them the replay."""
    digested(world, b"==> bitbake x (MACHINE=m)\n")
    noise = b"NOTE: Running task 9 of 12 (/j/1/work/src/meta/recipes-core/x/x.bb:do_compile)\n"
    world.files.append_log(world.job.id, noise * (2 * queries.REPLAY_KEPT_FROM_BYTES // len(noise))
                           + FAILED_BUILD)
    reads = []
    read_log = world.files.read_log
    world.files.read_log = lambda job, offset, limit: reads.append(limit) or read_log(job, offset, limit)

    tracker = world.queries.track_progress(world.job.id, world.files.log_size(world.job))
    replayed = sum(reads)
    summary = world.queries.failure_summary(world.job.id)
    world.queries.provenance(world.job.id)
    world.queries.cache_reuse(world.job.id)

    assert replayed >= 2 * queries.REPLAY_KEPT_FROM_BYTES and sum(reads) == replayed
    assert [t.label for t in summary.tasks] == ["fail-image-1.0-r0 do_compile"]
    before = world.queries.progress(world.job.id).tasks_done
    tracker.feed("NOTE: Running task 12 of 12 (/a/b.bb:do_build)\n")  # a copy: fed alone
    assert tracker.progress.tasks_done == 12
    assert world.queries.progress(world.job.id).tasks_done == before < 12


def _counting_reads(world) -> list[int]:
    """The bytes each read of the log returned, from now on."""
    read = []
    read_log = world.files.read_log

    def counted(job, offset, limit):
        data = read_log(job, offset, limit)
        read.append(len(data))
        return data
    world.files.read_log = counted
    return read


def test_a_digest_left_megabytes_behind_costs_one_view_at_most_the_replay_budget(world):
    """The owner can leave their build's digest behind its log (or make the runner unable to
    save it): one view of the page reads at most REPLAY_BYTES of the log, says how far it
    came, and the next views go on from there instead of starting again."""
    digested(world, b"==> bitbake x (MACHINE=m)\n")
    noise = b"NOTE: Running task 9 of 12 (/j/1/work/src/meta/recipes-core/x/x.bb:do_compile)\n"
    world.files.append_log(world.job.id, noise * (3 * queries.REPLAY_BYTES // len(noise))
                           + FAILED_BUILD)
    size = world.files.log_size(world.job)
    read = _counting_reads(world)

    first = world.queries.failure_summary(world.job.id)

    assert sum(read) <= queries.REPLAY_BYTES
    assert first.tasks == () and first.incomplete and "reload" in first.incomplete
    views = 1
    while (summary := world.queries.failure_summary(world.job.id)).incomplete:
        views += 1
        assert views <= 4
    assert [t.label for t in summary.tasks] == ["fail-image-1.0-r0 do_compile"]
    assert sum(read) <= size + len(FAILED_BUILD)  # each byte read about once, not per view


def test_a_log_of_blank_lines_costs_one_view_its_budget_of_lines(world, monkeypatch):
    """The readers of a log cost per line: a megabyte of blank lines is a million of them."""
    digested(world, b"==> bitbake x (MACHINE=m)\n")
    world.files.append_log(world.job.id, b"\n" * (4 * queries.REPLAY_BYTES))
    fed = []
    feed = LogDigest.feed
    monkeypatch.setattr(LogDigest, "feed", lambda self, data: fed.append(data.count(b"\n"))
                        or feed(self, data))

    world.queries.progress(world.job.id)

    assert 0 < sum(fed) <= queries.REPLAY_BYTES // queries.BYTES_PER_LINE


def test_without_a_digest_the_end_of_a_log_of_blank_lines_is_read_by_its_budget(world,
                                                                                monkeypatch):
    world.files.append_log(world.job.id, b"\n" * (2 * queries.REPLAY_BYTES) + FAILED_BUILD)
    read = []
    summarize = queries.summarize
    monkeypatch.setattr(queries, "summarize", lambda text, logs=None: read.append(
        text.count("\n")) or summarize(text, logs))

    summary = world.queries.failure_summary(world.job.id)

    assert [t.label for t in summary.tasks] == ["fail-image-1.0-r0 do_compile"]
    assert summary.incomplete  # what was not read is said
    assert read[0] <= queries.FAILURE_SCAN_BYTES // queries.BYTES_PER_LINE
