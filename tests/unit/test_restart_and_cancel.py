"""Restart safety and cancel rules: what ``Supervisor.reconcile`` makes of what a stopped service
left (at each named step of starting a build), cancel after a restart, and who may cancel."""

from __future__ import annotations

import pytest

from autobuild.domain.commands import SUBMIT_STORED, SUBMIT_VALIDATED
from autobuild.domain.jobs import JobStatus
from autobuild.domain.orders import BuildSettings
from autobuild.domain.permissions import NotAllowed, Permissions
from autobuild.domain.ports import Ended, Lost, Running
from autobuild.domain.supervision import START_DECIDED, START_LAUNCHED, START_RECORDED
from tests.fakes import FakeAdministrators, FakeWorld, ServiceStopped

URL = "https://git.example.com/yocto/poky.git"
SETTINGS = BuildSettings(cache_dir="/data/cache", parallel_make=8, keep_workspace=True)


def make_world(max_running: int = 3) -> FakeWorld:
    return FakeWorld(max_running=max_running, admins=FakeAdministrators({"root-of-builds"}),
                     build_settings=SETTINGS)


@pytest.fixture
def world() -> FakeWorld:
    return make_world()


def submit(w: FakeWorld, owner: str = "alice") -> int:
    return w.commands.submit(owner, URL, "main", "qemux86-64", "core-image-minimal").id


def running(w: FakeWorld, owner: str = "alice") -> int:
    job_id = submit(w, owner)
    w.supervisor.tick()
    assert w.repo.get(job_id).status is JobStatus.RUNNING
    return job_id


def stopped_at(w: FakeWorld, step: str) -> int:
    """Submit a job and stop the service at ``step`` of starting it; returns the job's id."""
    job_id = submit(w)
    w.checkpoints.stop_at = step
    with pytest.raises(ServiceStopped):
        w.supervisor.tick()
    return job_id


# --- reconcile: the service stopped while starting a build ---------------------------------


def test_stopped_after_deciding_and_before_launching_the_job_is_launched_once_on_start(world):
    job_id = stopped_at(world, START_DECIDED)
    stored = world.repo.get(job_id)
    assert stored.status is JobStatus.PENDING and stored.artifact_patterns is not None
    assert world.runner.launches == []
    assert world.runner.state(stored) == Lost("the runner did not start", started=False)

    world.restart().supervisor.reconcile()

    again = world.repo.get(job_id)
    assert again.status is JobStatus.RUNNING and again.reason is None
    assert world.runner.launches == [job_id]


def test_stopped_after_launching_and_before_recording_the_runner_is_adopted_not_relaunched(world):
    job_id = stopped_at(world, START_LAUNCHED)
    assert world.repo.get(job_id).status is JobStatus.PENDING
    assert world.runner.launches == [job_id]

    world.restart().supervisor.reconcile()

    adopted = world.repo.get(job_id)
    assert adopted.status is JobStatus.RUNNING and adopted.started_at is not None
    assert world.runner.launches == [job_id]  # no second launch
    assert world.events.changes == [(job_id, JobStatus.PENDING, JobStatus.RUNNING)]
    world.runner.finish(job_id, 0)
    world.supervisor.tick()
    assert world.repo.get(job_id).status is JobStatus.SUCCESS


def test_an_adopted_runner_counts_against_the_limit():
    w = make_world(max_running=1)
    adopted = stopped_at(w, START_LAUNCHED)
    queued = submit(w)
    w.restart().supervisor.reconcile()
    assert w.repo.get(adopted).status is JobStatus.RUNNING
    assert w.repo.get(queued).status is JobStatus.PENDING
    assert w.runner.launches == [adopted]


@pytest.mark.parametrize(("code", "status"), [(0, "SUCCESS"), (1, "FAILED"),
                                              (130, "CANCELLED")])
def test_a_build_launched_but_not_recorded_that_ended_meanwhile_is_recorded_as_it_ended(
        world, code, status):
    job_id = stopped_at(world, START_LAUNCHED)
    world.runner.finish(job_id, code, status=status)

    world.restart().supervisor.reconcile()

    stored = world.repo.get(job_id)
    assert (stored.status, stored.exit_code) == (JobStatus(status), code)
    assert stored.started_at is not None and stored.finished_at is not None
    assert world.runner.launches == [job_id]
    assert [(old, new) for j, old, new in world.events.changes if j == job_id] == [
        (JobStatus.PENDING, JobStatus.RUNNING), (JobStatus.RUNNING, JobStatus(status))]


def test_a_build_launched_but_not_recorded_whose_runner_then_vanished_fails_with_why(world):
    job_id = stopped_at(world, START_LAUNCHED)
    world.runner.lose(job_id, "the runner stopped without saying how the build ended",
                      started=True)
    world.restart().supervisor.reconcile()
    stored = world.repo.get(job_id)
    assert stored.status is JobStatus.FAILED
    assert stored.reason == "the runner stopped without saying how the build ended"
    assert world.runner.launches == [job_id]


def test_a_launch_that_never_began_leaves_the_job_queued_and_it_runs_once(world):
    job_id = stopped_at(world, START_LAUNCHED)
    first_order = world.runner.orders.pop(job_id)
    world.runner.lose(job_id, "sudo: unable to resolve host", started=False)
    world.runner.launches.clear()
    world.events.patterns = ["*.wic.gz"]  # what a new decision would give now

    world.restart(build_settings=BuildSettings()).supervisor.reconcile()

    stored = world.repo.get(job_id)
    assert stored.status is JobStatus.RUNNING  # queued again, then started in turn
    assert world.runner.launches == [job_id]
    assert world.runner.orders[job_id] == first_order == (("*.bin", "*.mtd"), SETTINGS)


def test_stopped_after_recording_there_is_nothing_to_repair(world):
    job_id = stopped_at(world, START_RECORDED)
    world.restart().supervisor.reconcile()
    assert world.repo.get(job_id).status is JobStatus.RUNNING
    assert world.runner.launches == [job_id]


def test_a_running_job_whose_runner_never_began_fails_saying_it_never_started(world):
    job_id = running(world)
    world.runner.lose(job_id, "sudo: a password is required", started=False)
    world.restart().supervisor.reconcile()
    stored = world.repo.get(job_id)
    assert stored.status is JobStatus.FAILED and stored.exit_code is None
    assert stored.reason == "the build never started: sudo: a password is required"
    assert (job_id, JobStatus.RUNNING, JobStatus.FAILED) in world.events.changes


def test_patterns_and_settings_are_decided_once_and_relaunched_unchanged(world):
    job_id = stopped_at(world, START_DECIDED)
    decided = world.repo.get(job_id)
    assert decided.artifact_patterns == ("*.bin", "*.mtd") and decided.settings == SETTINGS

    world.events.patterns = ["*.wic.gz"]  # a plugin changed, and so did the settings
    world.restart(build_settings=BuildSettings(cache_dir="/elsewhere")).supervisor.reconcile()

    stored = world.repo.get(job_id)
    assert stored.status is JobStatus.RUNNING
    assert (stored.artifact_patterns, stored.settings) == (("*.bin", "*.mtd"), SETTINGS)
    assert world.runner.orders[job_id] == (("*.bin", "*.mtd"), SETTINGS)


def test_reconcile_leaves_jobs_that_never_got_to_a_launch_to_the_queue():
    w = make_world(max_running=1)
    first, second = submit(w), submit(w)  # never decided: the service stopped before
    w.restart().supervisor.reconcile()
    assert w.repo.get(first).status is JobStatus.RUNNING
    assert w.repo.get(second).status is JobStatus.PENDING
    assert w.runner.launches == [first]


def test_a_job_found_running_after_a_restart_keeps_its_runner_reference(world):
    job_id = stopped_at(world, START_LAUNCHED)
    world.runner.states[job_id] = Running("found-again")
    world.restart().supervisor.reconcile()
    assert world.repo.get(job_id).runner_ref == "found-again"


# --- reconcile: builds that were RUNNING when the service stopped --------------------------


def test_after_a_restart_a_live_runner_is_left_alone_and_its_end_recorded(world):
    job_id = running(world)
    restarted = world.restart()
    restarted.supervisor.reconcile()
    restarted.supervisor.tick()
    assert world.repo.get(job_id).status is JobStatus.RUNNING
    world.runner.finish(job_id, 0)
    restarted.supervisor.tick()
    stored = world.repo.get(job_id)
    assert (stored.status, stored.exit_code, stored.reason) == (JobStatus.SUCCESS, 0, None)
    assert world.runner.launches == [job_id]


def test_after_a_restart_the_runners_end_wins_over_everything_else(world):
    done, alive, dead = running(world), running(world), running(world)
    world.runner.finish(done, 1)
    world.runner.lose(dead, "the runner stopped without saying how the build ended")
    world.restart().supervisor.reconcile()
    assert world.repo.get(done).status is JobStatus.FAILED
    assert "exit code 1" in world.repo.get(done).reason
    assert world.repo.get(alive).status is JobStatus.RUNNING
    lost = world.repo.get(dead)
    assert lost.status is JobStatus.FAILED and lost.exit_code is None
    assert lost.reason == "the runner stopped without saying how the build ended"


# --- submit: stopped at each step -----------------------------------------------------------


def test_a_submission_stopped_before_it_was_stored_leaves_nothing(world):
    world.checkpoints.stop_at = SUBMIT_VALIDATED
    with pytest.raises(ServiceStopped):
        submit(world)
    assert world.repo.count() == 0
    world.restart().supervisor.reconcile()
    assert world.runner.launches == []


def test_a_submission_stopped_once_stored_is_a_whole_job_that_runs(world):
    world.checkpoints.stop_at = SUBMIT_STORED
    with pytest.raises(ServiceStopped):
        world.commands.submit("alice", URL, "main", "qemux86-64", "core-image-minimal",
                              kas_file="kas/q.yml")
    [job] = world.repo.with_status(JobStatus.PENDING)
    assert job.kas_file == "kas/q.yml"
    world.restart().supervisor.reconcile()
    assert world.repo.get(job.id).status is JobStatus.RUNNING
    assert world.runner.orders[job.id] == (("*.bin", "*.mtd"), SETTINGS)


# --- cancel ---------------------------------------------------------------------------------


def test_cancel_works_after_a_restart(world):
    job_id = running(world)
    restarted = world.restart()  # knows nothing of the build but the stored job
    restarted.commands.cancel(job_id, "alice")
    assert world.runner.cancelled == [job_id]
    assert world.repo.get(job_id).cancel_requested_by == "alice"
    world.runner.finish(job_id, 130, status="CANCELLED")
    restarted.supervisor.tick()
    stored = world.repo.get(job_id)
    assert stored.status is JobStatus.CANCELLED and stored.reason == "cancelled by alice"


def test_a_cancel_asked_before_a_restart_ends_cancelled_once_the_runner_says_so(world):
    job_id = running(world)
    world.commands.cancel(job_id, "alice")
    world.runner.finish(job_id, 130, status="CANCELLED")
    world.restart().supervisor.reconcile()
    stored = world.repo.get(job_id)
    assert stored.status is JobStatus.CANCELLED and stored.reason == "cancelled by alice"


@pytest.mark.parametrize("ending", ["runner lost", "status FAILED"])
def test_a_cancel_request_does_not_turn_another_end_into_cancelled(world, ending):
    job_id = running(world)
    world.commands.cancel(job_id, "alice")
    if ending == "runner lost":
        world.runner.lose(job_id, "the runner stopped without saying how the build ended")
    else:
        world.runner.finish(job_id, 1, status="FAILED")
    world.restart().supervisor.reconcile()
    stored = world.repo.get(job_id)
    assert stored.status is JobStatus.FAILED
    assert stored.reason in ("the runner stopped without saying how the build ended",
                             "the build ended with exit code 1")


def test_a_build_that_succeeded_before_the_cancel_took_effect_stays_a_success(world):
    job_id = running(world)
    world.commands.cancel(job_id, "alice")
    world.runner.finish(job_id, 0)
    world.restart().supervisor.reconcile()
    assert world.repo.get(job_id).status is JobStatus.SUCCESS


def test_a_cancel_is_recorded_only_from_the_runners_state(world):
    job_id = running(world)
    world.commands.cancel(job_id, "alice")
    for _ in range(3):
        world.supervisor.tick()
    assert world.repo.get(job_id).status is JobStatus.RUNNING
    assert world.runner.state(world.repo.get(job_id)) == Running()
    world.runner.states[job_id] = Ended(JobStatus.CANCELLED, 130)
    world.supervisor.tick()
    assert world.repo.get(job_id).status is JobStatus.CANCELLED


def test_only_the_owner_or_an_administrator_may_cancel(world):
    job_id = running(world, owner="alice")
    job = world.repo.get(job_id)
    assert world.permissions.may_cancel(job, "alice")
    assert world.permissions.may_cancel(job, "root-of-builds")
    assert not world.permissions.may_cancel(job, "bob")
    assert not world.permissions.may_cancel(job, None)
    with pytest.raises(NotAllowed):
        world.commands.cancel(job_id, "bob")
    assert world.runner.cancelled == [] and world.repo.get(job_id).cancel_requested_by is None

    world.commands.cancel(job_id, "root-of-builds")
    assert world.runner.cancelled == [job_id]
    world.runner.finish(job_id, 130, status="CANCELLED")
    world.supervisor.tick()
    stored = world.repo.get(job_id)
    assert stored.reason == "cancelled by root-of-builds"
    assert not world.permissions.may_cancel(stored, "alice")  # nothing left to cancel


def test_an_administrator_takes_a_queued_build_of_someone_else_out_of_the_queue():
    w = make_world(max_running=1)
    running(w, owner="alice")
    queued = submit(w, owner="bob")
    w.commands.cancel(queued, "root-of-builds")
    stored = w.repo.get(queued)
    assert stored.status is JobStatus.CANCELLED
    assert stored.reason == "cancelled by root-of-builds before it started"


def test_without_an_administrators_port_only_the_owner_may_cancel():
    w = FakeWorld()
    job_id = running(w)
    plain = Permissions()
    assert not plain.may_cancel(w.repo.get(job_id), "root-of-builds")
    assert plain.may_cancel(w.repo.get(job_id), "alice")
    with pytest.raises(NotAllowed):
        w.commands.cancel(job_id, "root-of-builds")
