"""The disk guard: queued jobs wait, with the reason shown, while the jobs root is short of space."""

import pytest

from autobuild.domain.disk import GB, DiskGuard
from autobuild.domain.jobs import JobStatus
from tests.fakes import FakeDiskSpace, FakeWorld

URL = "https://git.example.com/yocto/poky.git"
ROOT = "/srv/autobuild/jobs"


@pytest.fixture
def world():
    disk = FakeDiskSpace(free=int(12.3 * GB))
    w = FakeWorld(disk_guard=DiskGuard(disk, ROOT, 20))
    w.disk = disk
    return w


def submit(w):
    return w.commands.submit("alice", URL, "main", "qemux86-64", "core-image-minimal")


def test_the_message_names_the_free_space_the_path_and_the_need():
    guard = DiskGuard(FakeDiskSpace(free=int(12.3 * GB)), ROOT, 20)
    assert guard.shortage() == ("Waiting for disk space: 12.3 GB free on /srv/autobuild/jobs, "
                                "20 GB needed")
    assert DiskGuard(FakeDiskSpace(free=20 * GB), ROOT, 20).shortage() is None


def test_zero_turns_the_check_off():
    disk = FakeDiskSpace(free=0)
    assert DiskGuard(disk, ROOT, 0).shortage() is None
    assert disk.asked == []


def test_jobs_wait_with_the_reason_and_start_once_there_is_room(world):
    first, second = submit(world), submit(world)
    world.supervisor.tick()

    for job in (first, second):
        stored = world.repo.get(job.id)
        assert stored.status is JobStatus.PENDING
        assert stored.waiting_reason.startswith("Waiting for disk space: 12.3 GB free on " + ROOT)
        assert stored.artifact_patterns is None  # nothing decided for a job that did not start
    assert world.runner.launches == [] and world.events.changes == []
    assert world.disk.asked == [ROOT]

    world.disk.free = 25 * GB
    world.supervisor.tick()

    started, waiting = world.repo.get(first.id), world.repo.get(second.id)
    assert started.status is JobStatus.RUNNING and started.waiting_reason is None
    # The second waits for a build slot now, not for disk space: no stale reason.
    assert waiting.status is JobStatus.PENDING and waiting.waiting_reason is None


def test_a_running_build_is_not_touched_by_a_shortage(world):
    job = submit(world)
    world.disk.free = 25 * GB
    world.supervisor.tick()
    world.disk.free = 0
    world.runner.finish(job.id, 0)
    world.supervisor.tick()
    assert world.repo.get(job.id).status is JobStatus.SUCCESS


def test_a_queued_job_can_still_be_cancelled_while_it_waits_for_space(world):
    job = submit(world)
    world.supervisor.tick()
    world.commands.cancel(job.id, "alice")
    assert world.repo.get(job.id).status is JobStatus.CANCELLED
