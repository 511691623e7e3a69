import pytest

from autobuild.domain.artifacts import ArtifactNotFound
from autobuild.domain.jobs import JobStatus
from autobuild.domain.ports import RunnerStatus
from autobuild.domain.requests import InvalidRequest
from autobuild.domain.services import JobNotFound, JobService, NotAllowed
from tests.fakes import FakeWorld

URL = "https://git.example.com/yocto/poky.git"


@pytest.fixture
def world():
    return FakeWorld()


def submit(w, owner="alice", target="core-image-minimal"):
    return w.service.submit(owner, URL, "main", "qemux86-64", target)


def test_submit_queues_a_pending_job_with_plugin_patterns(world):
    job = submit(world)
    assert world.repo.get(job.id).status is JobStatus.PENDING
    assert world.files.created[job.id] == ["*.bin", "*.mtd"]


def test_bad_request_stores_nothing(world):
    with pytest.raises(InvalidRequest):
        world.service.submit("alice", "http://x/y.git", "main", "m", "t")
    assert world.repo.count() == 0 and world.files.created == {}


def test_jobs_run_one_at_a_time_oldest_first(world):
    first, second = submit(world), submit(world)
    world.service.tick()
    assert world.repo.get(first.id).status is JobStatus.RUNNING
    assert world.repo.get(first.id).pid is not None
    assert world.repo.get(second.id).status is JobStatus.PENDING
    world.clock.advance(60)
    world.runner.finish(first.id, 0)
    world.service.tick()
    assert world.repo.get(first.id).status is JobStatus.SUCCESS
    assert world.repo.get(first.id).exit_code == 0
    assert world.repo.get(second.id).status is JobStatus.RUNNING
    assert (first.id, JobStatus.RUNNING, JobStatus.SUCCESS) in world.events.changes


def test_runner_status_decides_the_exit_code(world):
    job = submit(world)
    world.service.tick()
    world.runner.finish(job.id, 1)
    world.service.tick()
    stored = world.repo.get(job.id)
    assert (stored.status, stored.exit_code) == (JobStatus.FAILED, 1)
    assert "exit code 1" in stored.reason


def test_runner_that_cannot_start_fails_the_job_with_the_reason(world):
    world.runner.refuse = "sudo: a password is required"
    job = submit(world)
    world.service.tick()
    stored = world.repo.get(job.id)
    assert stored.status is JobStatus.FAILED
    assert "sudo: a password is required" in stored.reason


def test_process_exit_without_status_reports_what_the_process_said(world):
    job = submit(world)
    world.service.tick()
    process = world.runner.processes[job.id]
    process.stderr = "sudo: user alice is not allowed"
    process.exit_code = 1
    world.service.tick()
    stored = world.repo.get(job.id)
    assert stored.status is JobStatus.FAILED and stored.exit_code == 1
    assert "not allowed" in stored.reason


def test_after_a_restart_status_json_wins_and_live_runners_are_left_alone(world):
    done, alive, dead = submit(world), submit(world), submit(world)
    for job in (done, alive, dead):  # three builds were running when the service died
        stored = world.repo.get(job.id)
        stored.start(world.clock.now())
        stored.attach_process(4000 + job.id)
        world.repo.save(stored)
    world.files.statuses[done.id] = RunnerStatus("SUCCESS", 0, world.clock.now())
    world.runner.alive = {alive.id}
    restarted = JobService(world.repo, world.files, world.runner, world.events, world.clock,
                           max_running=3)
    restarted.tick()
    assert world.repo.get(done.id).status is JobStatus.SUCCESS
    assert world.repo.get(alive.id).status is JobStatus.RUNNING
    lost = world.repo.get(dead.id)
    assert lost.status is JobStatus.FAILED and "left no status" in lost.reason


def test_cancel_pending_leaves_the_queue_at_once(world):
    job = submit(world)
    world.service.cancel(job.id, "alice")
    assert world.repo.get(job.id).status is JobStatus.CANCELLED
    world.service.tick()
    assert world.runner.processes == {}


def test_cancel_running_asks_the_runner_and_records_cancelled(world):
    job = submit(world)
    world.service.tick()
    world.service.cancel(job.id, "alice")
    assert world.runner.cancelled == [job.id]
    assert world.repo.get(job.id).status is JobStatus.RUNNING
    world.runner.finish(job.id, 130, status="CANCELLED")
    world.service.tick()
    stored = world.repo.get(job.id)
    assert stored.status is JobStatus.CANCELLED and "alice" in stored.reason


def test_only_the_owner_may_cancel(world):
    job = submit(world)
    with pytest.raises(NotAllowed):
        world.service.cancel(job.id, "bob")
    assert world.repo.get(job.id).status is JobStatus.PENDING


def test_rebuild_makes_a_new_job_owned_by_the_clicker(world):
    job = submit(world, owner="alice")
    again = world.service.rebuild(job.id, "bob")
    assert again.id != job.id and again.owner == "bob"
    assert (again.repo_url, again.ref, again.machine, again.target) == (
        job.repo_url, job.ref, job.machine, job.target)


def test_unknown_job(world):
    with pytest.raises(JobNotFound):
        world.service.get(99)
    with pytest.raises(JobNotFound):
        world.service.read_log(99)


def test_log_is_complete_only_when_the_job_is_over_and_all_is_read(world):
    job = submit(world)
    world.service.tick()
    world.files.append_log(job.id, b"line 1\nline 2\n")
    chunk = world.service.read_log(job.id, 0, limit=7)
    assert (chunk.text, chunk.next_offset, chunk.complete) == ("line 1\n", 7, False)
    world.runner.finish(job.id, 0)
    world.service.tick()
    chunk = world.service.read_log(job.id, 7)
    assert (chunk.text, chunk.next_offset, chunk.complete) == ("line 2\n", 14, True)
    assert world.service.read_log(job.id, 10_000).next_offset == 14


def test_list_is_paginated_newest_first(world):
    ids = [submit(world).id for _ in range(5)]
    page = world.service.list_page(1, per_page=2)
    assert [j.id for j in page.items] == ids[::-1][:2]
    assert (page.pages, page.has_next, page.has_prev) == (3, True, False)
    assert world.service.list_page(99, per_page=2).number == 3


def test_artifacts_of_unknown_names_are_not_found(world):
    job = submit(world)
    world.files.artifacts[job.id] = {"image.bin": b"\x00\x01"}
    assert world.service.open_artifact(job.id, "image.bin")[0].read() == b"\x00\x01"
    with pytest.raises(ArtifactNotFound):
        world.service.open_artifact(job.id, "../image.bin")
