"""The shared tailer: one reader per job whatever the number of viewers, bounded queues,
resync of slow viewers, stop with the last viewer, pushes on job changes and watch wake-ups."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from autobuild.adapters import log_tailer
from autobuild.adapters.log_tailer import RESYNC, LogTailers, Update
from autobuild.domain.jobs import Job
from autobuild.domain.queries import JobQueries
from tests.fakes import FakeJobFiles, FakeJobRepository

pytestmark = pytest.mark.timeout(10)
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def world():
    repo, files = FakeJobRepository(), FakeJobFiles()
    job = Job(id=1, owner="alice", repo_url="https://git.example.com/bsp/poky.git", ref="v1",
              machine="qemux86-64", target="core-image-minimal", created_at=NOW)
    job.start(NOW)
    repo.rows[1] = job
    queries = JobQueries(repo, files)
    reads: list[int] = []

    def read_log(job_id: int, offset: int, limit: int):
        reads.append(offset)
        return queries.read_log(job_id, offset, limit)

    return repo, files, LogTailers(read_log, queries.get, 64 * 1024), reads


async def next_update(subscription, timeout: float = 2.0):
    return await asyncio.wait_for(subscription.queue.get(), timeout)


def test_many_viewers_one_reader_each_sees_every_byte_once():
    async def scenario():
        repo, files, tailers, reads = world()
        files.append_log(1, b"before\n")  # already there: viewers read that themselves
        viewers = [tailers.subscribe(1, 0.01) for _ in range(200)]
        assert tailers.running() == 1
        first = await next_update(viewers[0])  # the status, at the end of what was there
        assert first.chunk.offset == first.chunk.next_offset == 7
        reads.clear()
        files.append_log(1, "grün\n".encode())
        got = [await next_update(v) for v in viewers[1:]]  # their status first...
        got = [await next_update(v) for v in viewers]
        assert {(u.chunk.offset, u.chunk.next_offset, u.chunk.text) for u in got} == \
            {(7, 13, "grün\n")}
        assert len(reads) <= 3  # one reader, not one per viewer
        for viewer in viewers:
            tailers.unsubscribe(1, viewer)
        assert tailers.running() == 0

    asyncio.run(scenario())


def test_a_slow_viewer_is_told_to_resync_and_does_not_hold_the_others(monkeypatch):
    monkeypatch.setattr(log_tailer, "QUEUE_UPDATES", 3)

    async def scenario():
        repo, files, tailers, reads = world()
        slow, quick = tailers.subscribe(1, 0.005), tailers.subscribe(1, 0.005)
        await next_update(quick)  # the tailer has started, at the end of the (empty) log
        seen = []
        for n in range(10):
            files.append_log(1, f"line {n}\n".encode())
            while True:  # the quick viewer takes everything as it comes
                update = await next_update(quick)
                if update.chunk.next_offset == len(files.logs[1]):
                    seen.append(update.chunk.text)
                    break
        assert "".join(seen) == "".join(f"line {n}\n" for n in range(10))
        assert slow.queue.qsize() <= 3  # bounded, whatever it missed
        backlog = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
        assert RESYNC in backlog
        tailers.unsubscribe(1, slow)
        tailers.unsubscribe(1, quick)

    asyncio.run(scenario())


def test_the_tailer_stops_with_its_last_viewer_and_reads_no_more():
    async def scenario():
        repo, files, tailers, reads = world()
        one, two = tailers.subscribe(1, 0.005), tailers.subscribe(1, 0.005)
        await next_update(one)
        tailers.unsubscribe(1, one)
        assert tailers.running() == 1
        tailers.unsubscribe(1, two)
        assert tailers.running() == 0
        await asyncio.sleep(0.02)
        count = len(reads)
        await asyncio.sleep(0.05)
        assert len(reads) == count
        assert one.orphaned() and two.orphaned()

    asyncio.run(scenario())


def test_a_job_change_is_pushed_at_once_without_waiting_for_the_poll():
    async def scenario():
        repo, files, tailers, reads = world()
        viewer = tailers.subscribe(1, 30.0)  # it would not look again for 30 s by itself
        assert (await next_update(viewer)).job.status.name == "RUNNING"
        job = repo.get(1)
        job.finish(0, NOW)
        repo.save(job)
        tailers.notify(1)
        update = await next_update(viewer, timeout=1.0)
        assert update.job.status.name == "SUCCESS" and update.chunk.complete
        await asyncio.sleep(0.01)
        assert viewer.orphaned()  # the job is over: its tailer is done
        tailers.unsubscribe(1, viewer)

    asyncio.run(scenario())


class FakeWatches:
    """LogWatches that the test fires by hand, as inotify would on a write."""

    def __init__(self) -> None:
        self.opened = 0
        self.on_change = None

    def open(self, job, on_change):
        self.opened += 1
        self.on_change = on_change
        return self

    alive = True

    def close(self) -> None:
        self.alive = False


def test_a_watch_wakes_the_tailer_on_a_write():
    async def scenario():
        repo, files, tailers, reads = world()
        watches = FakeWatches()
        tailers = LogTailers(tailers._read_log, tailers._get_job, 64 * 1024, watches)
        viewer = tailers.subscribe(1, 30.0)
        await next_update(viewer)
        await asyncio.sleep(0.01)
        assert watches.opened == 1
        files.append_log(1, b"new line\n")
        watches.on_change()
        update = await next_update(viewer, timeout=0.5)  # long before the 1 s safety look
        assert update.chunk.text == "new line\n"
        tailers.unsubscribe(1, viewer)
        await asyncio.sleep(0.01)
        assert not watches.alive  # closed with the tailer

    asyncio.run(scenario())


def test_a_log_that_appears_late_and_a_long_line_split_utf8_come_through_whole():
    async def scenario():
        repo, files, tailers, reads = world()
        viewer = tailers.subscribe(1, 0.005)
        first = await next_update(viewer)
        assert first.chunk.next_offset == 0  # no log yet
        line = ("é" * 600_000).encode()  # 1.2 MB, no newline, cut mid-character by chunks
        files.append_log(1, line[:100_001])
        files.append_log(1, line[100_001:])
        text, position = "", 0
        while position < len(line):
            update: Update = await next_update(viewer)
            assert update.chunk.offset == position
            text += update.chunk.text
            position = update.chunk.next_offset
        assert text.encode() == line
        tailers.unsubscribe(1, viewer)

    asyncio.run(scenario())


def test_updates_carry_the_progress_of_the_whole_log_read_once():
    async def scenario():
        repo, files, _, reads = world()
        queries = JobQueries(repo, files)
        files.append_log(1, b"==> bitbake x (MACHINE=m)\nNOTE: Running task 3 of 12 (/a/b.bb:do_compile)\n")
        tracked = []

        def track(job_id: int, upto: int):
            tracked.append(upto)
            return queries.track_progress(job_id, upto)

        tailers = LogTailers(queries.read_log, queries.get, 64 * 1024, track=track)
        one, two = tailers.subscribe(1, 0.005), tailers.subscribe(1, 0.005)
        first = await next_update(one)
        assert first.progress.tasks_done == 3  # what was there before the tailer started
        files.append_log(1, b"NOTE: Running task 9 of 12 (/a/b.bb:do_install)\n")
        while (update := await next_update(one)).chunk.next_offset == first.chunk.next_offset:
            pass
        assert (update.progress.tasks_done, update.progress.percent) == (9, 75)
        assert len(tracked) == 1  # once for the job, not once per viewer
        tailers.unsubscribe(1, one)
        tailers.unsubscribe(1, two)

    asyncio.run(scenario())
