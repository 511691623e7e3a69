"""Per-user limits: live-log streams and queued builds."""

import threading

import pytest

from autobuild.domain.commands import JobCommands
from autobuild.domain.jobs import JobStatus
from autobuild.domain.limits import LimitReached, StreamSlots
from autobuild.domain.permissions import Permissions
from tests.fakes import FakeWorld

URL = "https://gitlab.example.com/bsp/image.git"


def test_stream_slots_are_per_user_and_given_back():
    slots = StreamSlots(limit=3)
    for _ in range(3):
        slots.acquire("alice")

    with pytest.raises(LimitReached, match="3 live logs open"):
        slots.acquire("alice")
    slots.acquire("bob")
    slots.release("alice")
    slots.acquire("alice")
    assert slots.held("alice") == 3 and slots.held("bob") == 1


@pytest.fixture
def world():
    world = FakeWorld()
    world.commands = JobCommands(world.repo, world.runner, world.events, world.clock,
                                 Permissions(), threading.RLock(), max_queued=3)
    return world


def submit(world, owner):
    return world.commands.submit(owner, URL, "main", "qemux86-64", "core-image-minimal")


def test_a_user_may_queue_only_so_many_builds_and_nothing_is_stored_beyond(world):
    for _ in range(3):
        submit(world, "alice")

    with pytest.raises(LimitReached, match="3 builds waiting"):
        submit(world, "alice")
    with pytest.raises(LimitReached):
        world.commands.rebuild(1, "alice")
    assert world.repo.count() == 3
    submit(world, "bob")  # others are not affected


def test_builds_that_started_or_ended_leave_room(world):
    for _ in range(3):
        submit(world, "alice")
    world.supervisor.tick()  # one starts
    assert world.repo.get(1).status is JobStatus.RUNNING

    submit(world, "alice")
    world.commands.cancel(2, "alice")
    world.commands.rebuild(1, "alice")
    assert len(world.repo.with_status(JobStatus.PENDING)) == 3
