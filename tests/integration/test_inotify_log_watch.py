"""InotifyLogWatches on a real build tree: a write to the log wakes the tailer at once; the
watch is only put on the owner's checked logs/ directory; network filesystems are polled."""

from __future__ import annotations

import asyncio
import os
import pwd
from datetime import UTC, datetime

import pytest

from autobuild.adapters.inotify_log_watch import InotifyLogWatches, filesystem_type, is_remote
from autobuild.adapters.job_files import JobDirectory
from autobuild.adapters.log_tailer import LogTailers
from autobuild.domain.jobs import Job
from autobuild.domain.queries import JobQueries
from tests.fakes import FakeJobRepository

pytestmark = pytest.mark.timeout(20)
OWNER = pwd.getpwuid(os.getuid()).pw_name
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def plain_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def make_job(job_id: int = 7) -> Job:
    job = Job(id=job_id, owner=OWNER, repo_url="https://git.example.com/bsp/poky.git",
              ref="v1", machine="qemux86-64", target="core-image-minimal", created_at=NOW)
    job.start(NOW)
    return job


def test_a_write_to_the_log_calls_back_and_other_files_do_not(root):
    logs = root / OWNER / "7" / "logs"
    logs.mkdir(parents=True)
    (logs / "build.log").write_bytes(b"")

    async def scenario():
        woken = asyncio.Event()
        watch = InotifyLogWatches(root).open(make_job(), woken.set)
        assert watch is not None
        (logs / "other.txt").write_bytes(b"x")
        await asyncio.sleep(0.05)
        assert not woken.is_set()
        with open(logs / "build.log", "ab") as log:
            log.write(b"line\n")
        await asyncio.wait_for(woken.wait(), 2)
        watch.close()

    asyncio.run(scenario())


def test_no_watch_without_the_owners_logs_directory(root, tmp_path):
    (root / OWNER / "8").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / OWNER / "8" / "logs").symlink_to(elsewhere)  # a link is never followed

    async def scenario():
        watches = InotifyLogWatches(root)
        assert watches.open(make_job(8), lambda: None) is None
        assert watches.open(make_job(9), lambda: None) is None  # no directory yet

    asyncio.run(scenario())


def test_network_filesystems_are_polled():
    mountinfo = (
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /srv/builds rw,relatime shared:2 - nfs4 host:/builds rw\n"
        "41 22 0:51 / /srv/build rw - tmpfs tmpfs rw\n"
    )
    assert filesystem_type("/srv/builds/jobs", mountinfo) == "nfs4"
    assert filesystem_type("/srv/build/x", mountinfo) == "tmpfs"
    assert filesystem_type("/home/x", mountinfo) == "ext4"
    assert is_remote("nfs4") and is_remote("fuse.sshfs") and not is_remote("ext4")


def test_a_log_appearing_late_is_followed_through_the_watch(root):
    """The tailer polls until logs/ exists, then watches it; every byte read through
    JobDirectory, in order, split UTF-8 and a long line without newline included."""
    repo = FakeJobRepository()
    repo.rows[7] = make_job()
    queries = JobQueries(repo, JobDirectory(root))
    tailers = LogTailers(queries.read_log, queries.get, 64 * 1024, InotifyLogWatches(root))
    line = ("ü" * 600_000).encode()

    async def scenario():
        viewer = tailers.subscribe(7, 0.01)
        first = await asyncio.wait_for(viewer.queue.get(), 2)
        assert first.chunk.next_offset == 0
        logs = root / OWNER / "7" / "logs"
        logs.mkdir(parents=True)
        await asyncio.sleep(0.05)  # the tailer finds the directory and watches it
        with open(logs / "build.log", "ab") as log:
            log.write(line[:99_999])
            log.flush()
            await asyncio.sleep(0.02)
            log.write(line[99_999:])
        text, position = "", 0
        while position < len(line):
            update = await asyncio.wait_for(viewer.queue.get(), 2)
            assert update.chunk.offset == position
            text += update.chunk.text
            position = update.chunk.next_offset
        assert text.encode() == line
        tailers.unsubscribe(7, viewer)

    asyncio.run(scenario())
