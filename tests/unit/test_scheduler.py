"""The scheduler: reconcile once, then a tick at once when the runner says a build may have
ended (``on_change``), or when woken, and otherwise every ``interval`` seconds."""

from __future__ import annotations

import asyncio
import threading

from autobuild.domain.jobs import Job, JobStatus
from autobuild.scheduler import Scheduler
from autobuild.domain.supervision import START_LAUNCHED
from tests.fakes import FakeEvents, FakeWorld, ServiceStopped

URL = "https://git.example.com/yocto/poky.git"
LONG = 600.0  # a poll interval no test waits for: what happens sooner came from a wake
PATIENCE = 5.0  # generous: the point is "long before the interval", not a speed test


class SignallingEvents(FakeEvents):
    """FakeEvents that also set a threading.Event per status reached."""

    def __init__(self) -> None:
        super().__init__()
        self.reached = {status: threading.Event() for status in JobStatus}

    def job_status_changed(self, job: Job, old: JobStatus, new: JobStatus) -> None:
        super().job_status_changed(job, old, new)
        self.reached[new].set()


def make_world() -> tuple[FakeWorld, SignallingEvents]:
    world = FakeWorld()
    events = SignallingEvents()
    world.events = events
    world.restart()
    return world, events


async def wait(event: threading.Event) -> bool:
    return await asyncio.to_thread(event.wait, PATIENCE)


def test_an_end_is_recorded_as_soon_as_the_runner_says_so_not_at_the_next_poll():
    world, events = make_world()
    job = world.commands.submit("alice", URL, "main", "qemux86-64", "core-image-minimal")
    scheduler = Scheduler(world.supervisor, world.runner, interval=LONG)
    assert world.runner.listeners == [scheduler.wake]

    async def scenario() -> tuple[bool, bool]:
        scheduler.start()
        try:
            started = await wait(events.reached[JobStatus.RUNNING])  # reconcile's first tick
            world.runner.finish(job.id, 0)  # tells its listeners, from this thread
            ended = await wait(events.reached[JobStatus.SUCCESS])
            return started, ended
        finally:
            await scheduler.stop()

    started, ended = asyncio.run(scenario())
    assert started and ended
    assert world.repo.get(job.id).status is JobStatus.SUCCESS


def test_a_lost_runner_is_recorded_at_once_too():
    world, events = make_world()
    job = world.commands.submit("alice", URL, "main", "qemux86-64", "core-image-minimal")
    scheduler = Scheduler(world.supervisor, world.runner, interval=LONG)

    async def scenario() -> bool:
        scheduler.start()
        try:
            assert await wait(events.reached[JobStatus.RUNNING])
            world.runner.lose(job.id, "killed", started=True)
            return await wait(events.reached[JobStatus.FAILED])
        finally:
            await scheduler.stop()

    assert asyncio.run(scenario())
    assert world.repo.get(job.id).reason == "killed"


def test_a_wake_from_another_thread_starts_a_queued_job_at_once():
    world, events = make_world()
    scheduler = Scheduler(world.supervisor, world.runner, interval=LONG)
    reconciled = threading.Event()
    reconcile = world.supervisor.reconcile

    def reconcile_and_tell() -> None:
        reconcile()
        reconciled.set()

    world.supervisor.reconcile = reconcile_and_tell

    async def scenario() -> bool:
        scheduler.start()
        try:
            assert await wait(reconciled)
            world.commands.submit("alice", URL, "main", "qemux86-64", "core-image-minimal")
            threading.Thread(target=scheduler.wake).start()  # as a request thread does
            return await wait(events.reached[JobStatus.RUNNING])
        finally:
            await scheduler.stop()

    assert asyncio.run(scenario())


def test_a_tick_that_fails_does_not_stop_the_scheduler(caplog):
    world, events = make_world()
    scheduler = Scheduler(world.supervisor, world.runner, interval=LONG)
    reconciled, armed, failed = threading.Event(), threading.Event(), threading.Event()
    reconcile, tick = world.supervisor.reconcile, world.supervisor.tick

    def reconcile_and_tell() -> None:
        reconcile()
        reconciled.set()

    def tick_failing_once() -> None:
        if armed.is_set() and not failed.is_set():
            failed.set()
            raise OSError("database is locked")
        tick()

    world.supervisor.reconcile = reconcile_and_tell
    world.supervisor.tick = tick_failing_once

    async def scenario() -> bool:
        scheduler.start()
        try:
            assert await wait(reconciled)
            armed.set()
            world.commands.submit("alice", URL, "main", "qemux86-64", "core-image-minimal")
            scheduler.wake()  # this tick fails
            assert await wait(failed)
            scheduler.wake()  # and this one starts the job
            return await wait(events.reached[JobStatus.RUNNING])
        finally:
            await scheduler.stop()

    assert asyncio.run(scenario())
    assert "scheduler tick failed" in caplog.text


def test_nothing_is_launched_until_reconcile_has_succeeded(caplog):
    world, events = make_world()
    job = world.commands.submit("alice", URL, "main", "qemux86-64", "core-image-minimal")
    world.checkpoints.stop_at = START_LAUNCHED
    try:
        world.supervisor.tick()  # launched, then the service stopped before recording it
    except ServiceStopped:
        pass
    world.restart()  # the same events: they hear the adoption
    scheduler = Scheduler(world.supervisor, world.runner, interval=LONG)
    attempts, ran = [], threading.Event()
    reconcile = world.supervisor.reconcile

    def reconcile_failing_once() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("database is locked")
        reconcile()
        ran.set()

    world.supervisor.reconcile = reconcile_failing_once

    async def scenario() -> bool:
        scheduler.start()
        try:
            for _ in range(int(PATIENCE / 0.05)):
                if attempts:
                    break
                await asyncio.sleep(0.05)
            scheduler.wake()  # a request wakes it: it must reconcile, not tick
            return await wait(ran)
        finally:
            await scheduler.stop()

    assert asyncio.run(scenario())
    assert world.runner.launches == [job.id]  # adopted, not launched twice
    assert world.repo.get(job.id).status is JobStatus.RUNNING
    assert "database is locked" in caplog.text


def test_after_stop_a_wake_does_nothing():
    world, _ = make_world()
    job = world.commands.submit("alice", URL, "main", "qemux86-64", "core-image-minimal")
    scheduler = Scheduler(world.supervisor, world.runner, interval=LONG)

    async def scenario() -> None:
        scheduler.start()
        await asyncio.sleep(0.2)  # reconcile + the first tick launch the job
        await scheduler.stop()

    asyncio.run(scenario())
    assert world.repo.get(job.id).status is JobStatus.RUNNING
    world.runner.finish(job.id, 0)  # tells the stopped scheduler: its loop is closed
    scheduler.wake()  # no error either
    assert world.repo.get(job.id).status is JobStatus.RUNNING  # and no tick ran
