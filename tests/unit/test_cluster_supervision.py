"""Supervision with a runner that queues (a cluster such as Slurm): every job is handed over as
it comes, stays PENDING with the cluster's reason until the cluster starts it, shows the node
it runs on, and ends as the cluster and the build say; a service restart loses nothing."""

from __future__ import annotations

import pytest

from autobuild.domain.jobs import JobStatus
from autobuild.domain.ports import Ended, Lost, Running, Waiting
from autobuild.domain.supervision import HANDED_OVER
from tests.fakes import FakeWorld, ServiceStopped

URL = "https://git.example.com/yocto/poky.git"


@pytest.fixture
def world():
    w = FakeWorld(max_running=1)
    w.runner.queues = True
    return w


def submit(world, owner="alice"):
    return world.commands.submit(owner, URL, "main", "qemux86-64", "core-image-minimal")


def job(world, job_id):
    return world.repo.get(job_id)


def test_every_job_is_handed_to_the_cluster_at_once_and_waits_there_with_its_reason(world):
    jobs = [submit(world, owner) for owner in ("alice", "bob", "alice")]

    world.supervisor.tick()

    assert world.runner.launches == [j.id for j in jobs]  # no one-at-a-time queue of ours
    for j in jobs:
        found = job(world, j.id)
        assert found.status is JobStatus.PENDING and found.handed_over
        assert found.runner_ref == f"fake-{j.id}"
    world.supervisor.tick()
    assert job(world, jobs[0].id).waiting_reason == "Priority"  # the cluster's reason
    assert world.runner.launches == [j.id for j in jobs]  # handed over once, never again


def test_a_job_the_cluster_starts_runs_on_its_node_and_ends_as_the_build_says(world):
    j = submit(world)
    world.supervisor.tick()
    assert job(world, j.id).waiting_reason == HANDED_OVER  # before the cluster says more
    world.runner.wait(j.id, "Resources")
    world.supervisor.tick()
    assert job(world, j.id).waiting_reason == "Resources"

    world.runner.run(j.id, "node7")
    world.supervisor.tick()
    running = job(world, j.id)
    assert (running.status, running.node, running.waiting_reason) == (JobStatus.RUNNING, "node7", None)
    assert running.runner_ref == f"fake-{j.id}"

    world.runner.finish(j.id, 0)
    world.supervisor.tick()
    done = job(world, j.id)
    assert (done.status, done.node) == (JobStatus.SUCCESS, "node7")
    assert [(old, new) for _, old, new in world.events.changes] == [
        (JobStatus.PENDING, JobStatus.RUNNING), (JobStatus.RUNNING, JobStatus.SUCCESS)]


def test_a_time_limit_or_a_lost_node_fails_the_build_with_that_reason(world):
    first, second = submit(world), submit(world)
    world.supervisor.tick()
    world.runner.run(first.id)
    world.supervisor.tick()
    world.runner.states[first.id] = Lost("it reached its time limit of 1 min (Slurm TIMEOUT)", True)
    world.runner.states[second.id] = Lost("the node n1 stopped answering (Slurm NODE_FAIL)", True)
    world.supervisor.tick()

    assert (job(world, first.id).status, job(world, first.id).reason) == (
        JobStatus.FAILED, "it reached its time limit of 1 min (Slurm TIMEOUT)")
    assert job(world, second.id).status is JobStatus.FAILED
    assert "NODE_FAIL" in job(world, second.id).reason


def test_cancelling_a_queued_build_asks_the_cluster_and_ends_it_before_it_started(world):
    j = submit(world)
    world.supervisor.tick()

    world.commands.cancel(j.id, "alice")

    assert world.runner.cancelled == [j.id]  # through the cluster, not just in our database
    assert job(world, j.id).status is JobStatus.PENDING
    world.runner.finish(j.id, 130, "CANCELLED")
    world.supervisor.tick()
    cancelled = job(world, j.id)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.reason == "cancelled by alice before it started"
    assert cancelled.started_at is None


def test_a_queued_build_the_cluster_lost_fails_and_is_not_handed_over_again(world):
    j = submit(world)
    world.supervisor.tick()
    world.runner.states[j.id] = Lost("Slurm no longer knows job 12", started=False)
    world.supervisor.tick()
    world.supervisor.tick()
    assert job(world, j.id).status is JobStatus.FAILED
    assert world.runner.launches == [j.id]


def test_a_restart_while_builds_wait_and_run_in_the_cluster_loses_nothing(world):
    waiting, running = submit(world), submit(world)
    world.supervisor.tick()
    world.runner.run(running.id, "n2")
    world.supervisor.tick()

    world.restart()
    world.supervisor.reconcile()

    assert world.runner.launches == [waiting.id, running.id]  # nothing launched twice
    assert job(world, waiting.id).handed_over
    assert (job(world, running.id).status, job(world, running.id).node) == (JobStatus.RUNNING, "n2")
    world.runner.run(waiting.id, "n1")
    world.runner.finish(running.id, 1)
    world.supervisor.tick()
    assert job(world, waiting.id).status is JobStatus.RUNNING
    assert job(world, running.id).status is JobStatus.FAILED


def test_a_build_handed_over_just_before_a_crash_is_found_again_not_submitted_twice(world):
    j = submit(world)
    world.checkpoints.stop_at = "start.launched"
    with pytest.raises(ServiceStopped):
        world.supervisor.tick()
    assert not job(world, j.id).handed_over  # the crash came before it was recorded

    world.restart()
    world.runner.states[j.id] = Waiting("Priority", f"fake-{j.id}")  # the cluster has it
    world.supervisor.reconcile()

    assert world.runner.launches == [j.id]
    found = job(world, j.id)
    assert found.handed_over and found.runner_ref == f"fake-{j.id}"
    assert found.waiting_reason == "Priority"


def test_the_local_runner_keeps_its_one_at_a_time_queue():
    world = FakeWorld(max_running=1)
    first, second = submit(world), submit(world)
    world.supervisor.tick()
    assert world.runner.launches == [first.id]
    assert job(world, second.id).status is JobStatus.PENDING and not job(world, second.id).handed_over
    world.runner.states[first.id] = Ended(JobStatus.SUCCESS, 0)
    world.supervisor.tick()
    assert world.runner.launches == [first.id, second.id]
    assert isinstance(world.runner.state(job(world, second.id)), Running)
