"""Retention: which jobs expire, and what purging one does."""

from datetime import timedelta

import pytest

from autobuild.domain.jobs import JobStatus
from autobuild.domain.retention import Retention
from tests.fakes import FakeWorld

URL = "https://git.example.com/yocto/poky.git"
DAYS = 30


@pytest.fixture
def world():
    w = FakeWorld(max_running=5)
    w.retention = Retention(w.repo, w.files, w.runner, w.clock, DAYS)
    return w


def build(w, exit_code=0, log=b"log\n"):
    """A job that ran and ended now with ``exit_code``."""
    job = w.commands.submit("alice", URL, "main", "qemux86-64", "core-image-minimal")
    w.supervisor.tick()
    w.files.append_log(job.id, log)
    w.files.artifacts[job.id] = {"image.bin": b"x" * 100}
    w.runner.finish(job.id, exit_code)
    w.supervisor.tick()
    return w.repo.get(job.id)


def test_only_ended_jobs_older_than_the_retention_expire(world):
    old_success, old_failure = build(world, 0), build(world, 1)
    old_cancelled = world.commands.submit("bob", URL, "main", "m", "t")
    world.commands.cancel(old_cancelled.id, "bob")  # cancelled before it started
    world.clock.advance(timedelta(days=DAYS - 1).total_seconds())
    recent = build(world)
    still_pending = world.commands.submit("alice", URL, "main", "m", "t")
    running = world.commands.submit("alice", URL, "main", "m", "t")
    world.supervisor.tick()
    assert world.repo.get(running.id).status is JobStatus.RUNNING

    assert world.retention.expired() == []  # 29 days: nothing yet
    world.clock.advance(timedelta(days=1, seconds=1).total_seconds())

    expired = {job.id for job in world.retention.expired()}
    assert expired == {old_success.id, old_failure.id, old_cancelled.id}
    assert not {recent.id, still_pending.id, running.id} & expired


def test_purge_removes_the_files_records_it_and_is_done_once(world):
    job = build(world, log=b"x" * 1000)
    world.clock.advance(timedelta(days=DAYS + 1).total_seconds())

    results = world.retention.run()

    assert [(r.job.id, r.bytes_used, r.purged) for r in results] == [(job.id, 1100, True)]
    stored = world.repo.get(job.id)
    assert stored.purged_at == world.clock.now()
    assert stored.status is JobStatus.SUCCESS  # the job stays, with its status
    assert world.runner.purged == [job.id]
    assert world.files.log_size(stored) == 0 and world.files.list_artifacts(stored) == []
    assert world.retention.expired() == []  # already purged: never again
    assert world.retention.run() == []


def test_dry_run_lists_without_removing(world):
    job = build(world)
    world.clock.advance(timedelta(days=DAYS + 1).total_seconds())

    results = world.retention.run(dry_run=True)

    assert [r.job.id for r in results] == [job.id]
    assert world.runner.purged == [] and world.repo.get(job.id).purged_at is None
    assert world.files.list_artifacts(job) != []


def test_a_job_the_runner_cannot_purge_is_reported_and_kept_the_others_go_on(world):
    first, second = build(world), build(world)
    world.clock.advance(timedelta(days=DAYS + 1).total_seconds())
    world.runner.refuse_purge = "sudo: unknown user alice"

    failed = world.retention.purge(world.repo.get(first.id))
    assert not failed.purged and "unknown user" in failed.error
    assert world.repo.get(first.id).purged_at is None

    world.runner.refuse_purge = None
    assert [r.job.id for r in world.retention.run() if r.purged] == [first.id, second.id]


def test_retention_of_less_than_a_day_is_refused(world):
    with pytest.raises(ValueError):
        Retention(world.repo, world.files, world.runner, world.clock, 0)


def test_only_an_ended_job_can_be_marked_purged(world):
    job = world.commands.submit("alice", URL, "main", "m", "t")
    with pytest.raises(ValueError):
        job.mark_purged(world.clock.now())


def test_a_job_that_never_ran_is_handed_to_the_runner_and_recorded_purged(world):
    # The runner may hold a record of a launch that never began; what it takes to delete
    # nothing (no sudo for a build that made no directory) is the adapter's business.
    job = world.commands.submit("carol", URL, "main", "m", "t")
    world.commands.cancel(job.id, "carol")
    world.clock.advance(timedelta(days=DAYS + 1).total_seconds())

    [result] = world.retention.run()

    assert result.purged and world.repo.get(job.id).purged_at is not None
    assert world.runner.purged == [job.id] and world.runner.launches == []


def test_a_job_whose_files_break_measuring_or_purging_never_stops_the_others(world, monkeypatch):
    """An engineer can leave anything in their own job (a tree thousands of levels deep...):
    retention reports that job and still purges everybody else's."""
    bad, good = build(world), build(world)
    world.clock.advance(timedelta(days=DAYS + 1).total_seconds())
    usage, purge = world.files.usage, world.runner.purge

    def deep_usage(job):
        if job.id == bad.id:
            raise RecursionError("maximum recursion depth exceeded")
        return usage(job)

    def deep_purge(job):
        if job.id == bad.id:
            raise RecursionError("maximum recursion depth exceeded")
        purge(job)

    monkeypatch.setattr(world.files, "usage", deep_usage)
    monkeypatch.setattr(world.runner, "purge", deep_purge)
    results = {r.job.id: r for r in world.retention.run()}
    assert not results[bad.id].purged and "recursion" in results[bad.id].error
    assert results[good.id].purged and world.repo.get(good.id).purged_at is not None
