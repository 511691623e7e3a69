"""Restart safety and cancel rules of JobService: process identity, reconciliation on start,
cancel after a restart, and who may cancel."""

from __future__ import annotations

import pytest

from autobuild.domain.jobs import JobStatus
from autobuild.domain.ports import RunnerStatus
from autobuild.domain.services import JobService, NotAllowed
from tests.fakes import (
    FakeAdministrators,
    FakeClock,
    FakeEvents,
    FakeJobFiles,
    FakeJobRepository,
    FakeRunner,
    FakeWorld,
)

URL = "https://git.example.com/yocto/poky.git"


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.repo = FakeJobRepository()
        self.files = FakeJobFiles()
        self.events = FakeEvents()
        self.admins = FakeAdministrators({"root-of-builds"})
        self.runner = FakeRunner(self.files, self.clock)
        self.service = self.new_service()

    def new_service(self) -> JobService:
        """A JobService as a freshly (re)started service builds it: same database and files,
        no memory of the processes it launched before."""
        return JobService(self.repo, self.files, self.runner, self.events, self.clock,
                          max_running=3, admins=self.admins)

    def running(self, owner: str = "alice") -> int:
        job = self.service.submit(owner, URL, "main", "qemux86-64", "core-image-minimal")
        self.service.tick()
        assert self.repo.get(job.id).status is JobStatus.RUNNING
        return job.id  # type: ignore[return-value]


@pytest.fixture
def world() -> World:
    return World()


def test_start_records_the_pid_and_its_start_time(world):
    job_id = world.running()
    stored = world.repo.get(job_id)
    process = world.runner.processes[job_id]
    assert (stored.pid, stored.pid_start_time) == (process.pid, process.start_time)
    assert stored.pid_start_time is not None


def test_after_a_restart_a_live_runner_is_reattached_and_its_end_recorded(world):
    job_id = world.running()
    restarted = world.new_service()
    restarted.tick()
    restarted.tick()
    assert world.repo.get(job_id).status is JobStatus.RUNNING
    world.runner.finish(job_id, 0)
    restarted.tick()
    stored = world.repo.get(job_id)
    assert (stored.status, stored.exit_code, stored.reason) == (JobStatus.SUCCESS, 0, None)


def test_after_a_restart_a_reused_pid_does_not_pass_for_the_runner(world):
    job_id = world.running()
    stored = world.repo.get(job_id)
    stored.pid_start_time = (stored.pid_start_time or 0) + 1  # same pid, another process
    world.repo.save(stored)
    world.new_service().tick()
    lost = world.repo.get(job_id)
    assert lost.status is JobStatus.FAILED
    assert "gone and left no status" in lost.reason


def test_after_a_restart_a_terminal_status_wins_even_while_the_process_lingers(world):
    job_id = world.running()
    world.files.statuses[job_id] = RunnerStatus("FAILED", 1, world.clock.now())
    assert world.runner.probe(world.repo.get(job_id))  # still alive (e.g. a zombie's parent)
    world.new_service().tick()
    stored = world.repo.get(job_id)
    assert (stored.status, stored.exit_code) == (JobStatus.FAILED, 1)
    assert "exit code 1" in stored.reason


def test_after_a_restart_a_dead_runner_without_status_fails_with_a_reason(world):
    job_id = world.running()
    world.runner.alive.discard(job_id)  # killed -9 while the service was down
    world.new_service().tick()
    lost = world.repo.get(job_id)
    assert lost.status is JobStatus.FAILED and lost.exit_code is None
    assert lost.reason.startswith("the runner process is gone and left no status")
    assert (job_id, JobStatus.RUNNING, JobStatus.FAILED) in world.events.changes


def test_cancel_works_after_a_restart(world):
    job_id = world.running()
    restarted = world.new_service()  # knows nothing of the process but the stored job
    restarted.cancel(job_id, "alice")
    assert world.runner.cancelled == [job_id]
    assert world.repo.get(job_id).cancel_requested_by == "alice"
    world.runner.finish(job_id, 130, status="CANCELLED")
    restarted.tick()
    stored = world.repo.get(job_id)
    assert stored.status is JobStatus.CANCELLED and stored.reason == "cancelled by alice"


@pytest.mark.parametrize("ending", ["runner killed", "status FAILED", "status CANCELLED"])
def test_a_cancel_asked_before_a_restart_still_ends_cancelled(world, ending):
    job_id = world.running()
    world.service.cancel(job_id, "alice")
    if ending == "runner killed":
        world.runner.alive.discard(job_id)
    else:
        world.runner.finish(job_id, 130, status=ending.split()[1])
    world.new_service().tick()
    stored = world.repo.get(job_id)
    assert stored.status is JobStatus.CANCELLED and stored.reason == "cancelled by alice"


def test_a_build_that_succeeded_before_the_cancel_took_effect_stays_a_success(world):
    job_id = world.running()
    world.service.cancel(job_id, "alice")
    world.runner.finish(job_id, 0)
    world.new_service().tick()
    assert world.repo.get(job_id).status is JobStatus.SUCCESS


def test_only_the_owner_or_an_administrator_may_cancel(world):
    job_id = world.running(owner="alice")
    job = world.repo.get(job_id)
    assert world.service.may_cancel(job, "alice")
    assert world.service.may_cancel(job, "root-of-builds")
    assert not world.service.may_cancel(job, "bob")
    assert not world.service.may_cancel(job, None)
    with pytest.raises(NotAllowed):
        world.service.cancel(job_id, "bob")
    assert world.runner.cancelled == [] and world.repo.get(job_id).cancel_requested_by is None

    world.service.cancel(job_id, "root-of-builds")
    assert world.runner.cancelled == [job_id]
    world.runner.finish(job_id, 130, status="CANCELLED")
    world.service.tick()
    stored = world.repo.get(job_id)
    assert stored.reason == "cancelled by root-of-builds"
    assert not world.service.may_cancel(stored, "alice")  # nothing left to cancel


def test_an_administrator_takes_a_queued_build_of_someone_else_out_of_the_queue(world):
    world.service = JobService(world.repo, world.files, world.runner, world.events, world.clock,
                               max_running=1, admins=world.admins)
    world.running(owner="alice")
    queued = world.service.submit("bob", URL, "main", "qemux86-64", "core-image-minimal")
    world.service.cancel(queued.id, "root-of-builds")
    assert world.repo.get(queued.id).status is JobStatus.CANCELLED


def test_without_an_administrators_port_only_the_owner_may_cancel(world):
    job_id = world.running()
    plain = JobService(world.repo, world.files, world.runner, world.events, world.clock)
    assert not plain.may_cancel(world.repo.get(job_id), "root-of-builds")
    with pytest.raises(NotAllowed):
        plain.cancel(job_id, "root-of-builds")


def test_a_service_that_died_before_recording_the_pid_finds_the_runner_by_its_pid_file():
    w = FakeWorld()
    job = w.service.submit("alice", "https://git.example.com/p.git", "main", "qemux86-64",
                           "core-image-minimal")
    stored = w.repo.get(job.id)
    stored.start(w.clock.now())  # RUNNING was saved, then the service died: no pid recorded
    w.repo.save(stored)
    w.files.runner_pids[job.id] = 4242  # but the runner had started
    w.runner.alive.add(job.id)

    restarted = JobService(w.repo, w.files, w.runner, w.events, w.clock)
    restarted.tick()
    assert w.repo.get(job.id).status is JobStatus.RUNNING
    assert w.repo.get(job.id).pid == 4242

    w.runner.alive.discard(job.id)
    w.files.statuses[job.id] = RunnerStatus("SUCCESS", 0, w.clock.now())
    restarted.tick()
    assert w.repo.get(job.id).status is JobStatus.SUCCESS


def test_a_service_that_died_before_launching_marks_the_job_failed_with_the_reason():
    w = FakeWorld()
    job = w.service.submit("alice", "https://git.example.com/p.git", "main", "qemux86-64",
                           "core-image-minimal")
    stored = w.repo.get(job.id)
    stored.start(w.clock.now())
    w.repo.save(stored)
    w.service.tick()  # no process handle, no runner.pid, no status: nothing runs it
    lost = w.repo.get(job.id)
    assert lost.status is JobStatus.FAILED and "no status" in lost.reason
