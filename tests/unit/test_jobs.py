from datetime import UTC, datetime, timedelta

import pytest

from autobuild.domain.jobs import TRANSITIONS, InvalidTransition, Job, JobStatus

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_job(**kw) -> Job:
    fields = dict(owner="alice", repo_url="https://git.example.com/a/b.git", ref="main",
                  machine="qemux86-64", target="core-image-minimal", created_at=T0, id=1)
    fields.update(kw)
    return Job(**fields)


def test_happy_path_success_records_times_and_exit_code():
    job = make_job()
    assert job.start(T0 + timedelta(seconds=5)) is JobStatus.PENDING
    assert job.status is JobStatus.RUNNING
    assert job.finish(0, T0 + timedelta(seconds=65)) is JobStatus.RUNNING
    assert job.status is JobStatus.SUCCESS
    assert job.exit_code == 0
    assert job.duration_seconds(T0 + timedelta(days=1)) == 60
    assert job.reason is None


def test_non_zero_exit_is_failed_with_reason():
    job = make_job()
    job.start(T0)
    job.finish(2, T0, "bitbake said no")
    assert (job.status, job.exit_code, job.reason) == (JobStatus.FAILED, 2, "bitbake said no")


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.RUNNING])
def test_cancel_from_pending_or_running(status):
    job = make_job()
    if status is JobStatus.RUNNING:
        job.start(T0)
    job.cancel(T0 + timedelta(seconds=1), "changed my mind")
    assert job.status is JobStatus.CANCELLED
    assert job.reason == "changed my mind"
    assert job.finished_at == T0 + timedelta(seconds=1)


@pytest.mark.parametrize("terminal", [JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.CANCELLED])
def test_terminal_states_are_absorbing(terminal):
    assert TRANSITIONS[terminal] == frozenset()
    job = make_job(status=terminal)
    for action in (lambda: job.start(T0), lambda: job.finish(0, T0), lambda: job.cancel(T0),
                   lambda: job.fail("x", T0)):
        with pytest.raises(InvalidTransition):
            action()
    assert job.status is terminal


def test_pending_cannot_finish_without_running():
    job = make_job()
    with pytest.raises(InvalidTransition) as err:
        job.finish(0, T0)
    assert "PENDING" in str(err.value) and "SUCCESS" in str(err.value)
    assert job.status is JobStatus.PENDING


def test_clock_stepping_back_never_moves_timestamps_backwards():
    job = make_job()
    job.start(T0 - timedelta(hours=1))
    assert job.started_at == T0
    job.finish(0, T0 - timedelta(hours=2))
    assert job.finished_at == T0


def test_duration_is_none_before_start_and_grows_while_running():
    job = make_job()
    assert job.duration_seconds(T0) is None
    job.start(T0)
    assert job.duration_seconds(T0 + timedelta(seconds=30)) == 30
