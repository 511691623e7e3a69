"""The core's use cases over the fakes: queueing, starting, recording ends, cancel, queries."""

import pytest

from autobuild.domain.artifacts import ArtifactNotFound
from autobuild.domain.jobs import JobStatus
from autobuild.domain.orders import BuildSettings
from autobuild.domain.permissions import NotAllowed
from autobuild.domain.ports import RunnerError
from autobuild.domain.queries import JobNotFound
from autobuild.domain.requests import InvalidRequest
from tests.fakes import FakeWorld

URL = "https://git.example.com/yocto/poky.git"


@pytest.fixture
def world():
    return FakeWorld()


def submit(w, owner="alice", target="core-image-minimal"):
    return w.commands.submit(owner, URL, "main", "qemux86-64", target)


def test_submit_stores_the_whole_request_as_a_pending_job_and_decides_nothing_yet(world):
    job = world.commands.submit("alice", URL, "main", "qemux86-64", "core-image-minimal",
                                kas_file="kas/q.yml")
    stored = world.repo.get(job.id)
    assert stored == job and stored.status is JobStatus.PENDING
    assert (stored.owner, stored.repo_url, stored.ref, stored.machine, stored.target,
            stored.kas_file) == ("alice", URL, "main", "qemux86-64", "core-image-minimal",
                                 "kas/q.yml")
    assert (stored.artifact_patterns, stored.settings) == (None, None)  # decided at start
    assert world.runner.launches == [] and world.events.changes == []


def test_the_first_start_decides_the_plugin_patterns_and_the_runner_gets_exactly_those(world):
    job = submit(world)
    world.supervisor.tick()
    stored = world.repo.get(job.id)
    assert stored.artifact_patterns == ("*.bin", "*.mtd")
    assert stored.settings == BuildSettings()
    assert world.runner.orders[job.id] == (("*.bin", "*.mtd"), BuildSettings())


def test_a_submission_the_database_refuses_leaves_no_job(world):
    world.repo.fail_add = OSError(28, "No space left on device")
    with pytest.raises(OSError):
        submit(world)
    assert world.repo.count() == 0
    world.supervisor.tick()
    assert world.runner.launches == []


def test_bad_request_stores_nothing(world):
    with pytest.raises(InvalidRequest):
        world.commands.submit("alice", "http://x/y.git", "main", "m", "t")
    assert world.repo.count() == 0 and world.runner.launches == []


def test_jobs_run_one_at_a_time_oldest_first(world):
    first, second = submit(world), submit(world)
    world.supervisor.tick()
    assert world.repo.get(first.id).status is JobStatus.RUNNING
    assert world.repo.get(first.id).runner_ref == f"fake-{first.id}"
    assert world.runner.launches == [first.id]
    assert world.repo.get(second.id).status is JobStatus.PENDING
    world.clock.advance(60)
    world.runner.finish(first.id, 0)
    world.supervisor.tick()
    assert world.repo.get(first.id).status is JobStatus.SUCCESS
    assert world.repo.get(first.id).exit_code == 0
    assert world.repo.get(second.id).status is JobStatus.RUNNING
    assert (first.id, JobStatus.RUNNING, JobStatus.SUCCESS) in world.events.changes


def test_runner_status_decides_the_exit_code(world):
    job = submit(world)
    world.supervisor.tick()
    world.runner.finish(job.id, 1)
    world.supervisor.tick()
    stored = world.repo.get(job.id)
    assert (stored.status, stored.exit_code) == (JobStatus.FAILED, 1)
    assert "exit code 1" in stored.reason


def test_one_job_whose_end_cannot_be_recorded_does_not_stop_the_others():
    world = FakeWorld(max_running=2)
    first, second = submit(world), submit(world)
    world.supervisor.tick()
    world.runner.finish(first.id, 0)
    world.runner.finish(second.id, 0)
    save = world.repo.save

    def broken_save(job):
        if job.id == first.id and job.is_terminal:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        save(job)

    world.repo.save = broken_save
    world.supervisor.tick()
    assert world.repo.get(second.id).status is JobStatus.SUCCESS
    assert world.repo.get(first.id).status is JobStatus.RUNNING


def test_a_runner_that_says_failed_is_failed_even_with_exit_code_0(world):
    job = submit(world)
    world.supervisor.tick()
    world.runner.finish(job.id, 0, status="FAILED")
    world.supervisor.tick()
    stored = world.repo.get(job.id)
    assert (stored.status, stored.exit_code) == (JobStatus.FAILED, 0)
    assert stored.reason


def test_runner_that_cannot_start_fails_the_job_with_the_reason(world):
    world.runner.refuse = "sudo: a password is required"
    job = submit(world)
    world.supervisor.tick()
    stored = world.repo.get(job.id)
    assert stored.status is JobStatus.FAILED
    assert "sudo: a password is required" in stored.reason


def test_the_runner_is_launched_before_the_job_is_marked_running(world):
    job = submit(world)
    seen = []
    launch = world.runner.launch

    def launch_and_look(j):
        seen.append(world.repo.get(j.id).status)
        return launch(j)

    world.runner.launch = launch_and_look
    world.supervisor.tick()
    assert seen == [JobStatus.PENDING]
    assert world.repo.get(job.id).status is JobStatus.RUNNING
    assert world.events.changes == [(job.id, JobStatus.PENDING, JobStatus.RUNNING)]


def test_a_failed_launch_does_not_take_a_slot_from_the_next_job(world):
    first, second = submit(world, owner="carol"), submit(world)
    launch = world.runner.launch

    def refuse_carol(job):
        if job.owner == "carol":
            raise RunnerError("sudo: unknown user carol")
        return launch(job)

    world.runner.launch = refuse_carol
    assert [j.id for j in world.supervisor.start_next()] == [second.id]
    assert world.repo.get(first.id).status is JobStatus.FAILED
    assert world.repo.get(second.id).status is JobStatus.RUNNING


def test_a_runner_that_vanished_after_the_build_began_fails_the_job_with_its_reason(world):
    job = submit(world)
    world.supervisor.tick()
    world.runner.lose(job.id, "the runner stopped without saying how the build ended", True)
    world.supervisor.tick()
    stored = world.repo.get(job.id)
    assert (stored.status, stored.exit_code) == (JobStatus.FAILED, None)
    assert stored.reason == "the runner stopped without saying how the build ended"


def test_a_launched_runner_that_never_began_the_build_says_so(world):
    job = submit(world)
    world.supervisor.tick()
    world.runner.lose(job.id, "sudo: a password is required", started=False)
    world.supervisor.tick()
    stored = world.repo.get(job.id)
    assert stored.status is JobStatus.FAILED
    assert stored.reason == "the build never started: sudo: a password is required"


def test_cancel_pending_leaves_the_queue_at_once(world):
    job = submit(world)
    world.commands.cancel(job.id, "alice")
    assert world.repo.get(job.id).status is JobStatus.CANCELLED
    world.supervisor.tick()
    assert world.runner.launches == [] and world.runner.cancelled == []


def test_cancel_running_asks_the_runner_and_records_cancelled(world):
    job = submit(world)
    world.supervisor.tick()
    world.commands.cancel(job.id, "alice")
    assert world.runner.cancelled == [job.id]
    assert world.repo.get(job.id).status is JobStatus.RUNNING
    world.runner.finish(job.id, 130, status="CANCELLED")
    world.supervisor.tick()
    stored = world.repo.get(job.id)
    assert stored.status is JobStatus.CANCELLED and stored.reason == "cancelled by alice"
    assert stored.exit_code == 130


def test_a_build_that_ends_failed_after_a_cancel_request_is_failed_not_cancelled(world):
    job = submit(world)
    world.supervisor.tick()
    world.commands.cancel(job.id, "alice")
    world.runner.finish(job.id, 1)  # it failed on its own before the stop reached it
    world.supervisor.tick()
    stored = world.repo.get(job.id)
    assert (stored.status, stored.exit_code) == (JobStatus.FAILED, 1)
    assert stored.reason == "the build ended with exit code 1"


def test_a_cancel_the_runner_could_not_deliver_records_nothing_and_says_why(world):
    job = submit(world)
    world.supervisor.tick()
    world.runner.refuse_cancel = "the runner did not answer within 15 s"
    with pytest.raises(RunnerError, match="did not answer"):
        world.commands.cancel(job.id, "alice")
    stored = world.repo.get(job.id)
    assert stored.status is JobStatus.RUNNING and stored.cancel_requested_by is None
    assert world.runner.cancelled == []
    world.runner.finish(job.id, 0)  # the build went on, and ended on its own
    world.supervisor.tick()
    assert world.repo.get(job.id).status is JobStatus.SUCCESS


def test_a_failed_second_cancel_keeps_the_first_request(world):
    job = submit(world)
    world.supervisor.tick()
    world.commands.cancel(job.id, "alice")
    world.runner.refuse_cancel = "sudo: timed out"
    with pytest.raises(RunnerError):
        world.commands.cancel(job.id, "alice")
    assert world.repo.get(job.id).cancel_requested_by == "alice"


def test_a_build_stopped_by_someone_else_than_a_user_says_so(world):
    job = submit(world)
    world.supervisor.tick()
    world.runner.finish(job.id, 143, status="CANCELLED")  # e.g. the admin sent SIGTERM
    world.supervisor.tick()
    stored = world.repo.get(job.id)
    assert stored.status is JobStatus.CANCELLED
    assert stored.reason == "cancelled by a signal to the runner"


def test_cancelling_an_ended_build_changes_nothing(world):
    job = submit(world)
    world.supervisor.tick()
    world.runner.finish(job.id, 0)
    world.supervisor.tick()
    assert world.commands.cancel(job.id, "alice").status is JobStatus.SUCCESS
    assert world.runner.cancelled == []


def test_only_the_owner_may_cancel(world):
    job = submit(world)
    with pytest.raises(NotAllowed):
        world.commands.cancel(job.id, "bob")
    assert world.repo.get(job.id).status is JobStatus.PENDING


def test_rebuild_makes_a_new_job_with_the_same_parameters(world):
    job = submit(world, owner="alice")
    again = world.commands.rebuild(job.id, "alice")
    assert again.id != job.id and again.owner == "alice"
    assert (again.repo_url, again.ref, again.machine, again.target) == (
        job.repo_url, job.ref, job.machine, job.target)


def test_a_colleagues_build_is_not_rebuilt_in_one_step(world):
    """It would clone their URL with the rebuilder's token: the New build form, which names
    the host, is the way; nothing is queued."""
    job = submit(world, owner="alice")
    for exact in (False, True):
        with pytest.raises(NotAllowed, match=r"alice's: build it as yours .*/new\?from="):
            world.commands.rebuild(job.id, "bob", exact=exact)
    assert world.repo.count() == 1


def test_a_rebuild_is_validated_as_a_new_build_is(world):
    """A host the admin has stopped allowing since is refused, not cloned again."""
    job = submit(world, owner="alice")
    world.commands._allowed_hosts = frozenset({"gitlab.example.com"})  # as after a restart
    with pytest.raises(InvalidRequest) as refused:
        world.commands.rebuild(job.id, "alice")
    assert "repo_url" in refused.value.errors and world.repo.count() == 1


def test_unknown_job(world):
    with pytest.raises(JobNotFound):
        world.queries.get(99)
    with pytest.raises(JobNotFound):
        world.queries.read_log(99)


def test_log_is_complete_only_when_the_job_is_over_and_all_is_read(world):
    job = submit(world)
    world.supervisor.tick()
    world.files.append_log(job.id, b"line 1\nline 2\n")
    chunk = world.queries.read_log(job.id, 0, limit=7)
    assert (chunk.text, chunk.next_offset, chunk.complete) == ("line 1\n", 7, False)
    world.runner.finish(job.id, 0)
    world.supervisor.tick()
    chunk = world.queries.read_log(job.id, 7)
    assert (chunk.text, chunk.next_offset, chunk.complete) == ("line 2\n", 14, True)
    assert world.queries.read_log(job.id, 10_000).next_offset == 14


def test_list_is_paginated_newest_first(world):
    ids = [submit(world).id for _ in range(5)]
    page = world.queries.list_page(per_page=2)
    assert [j.id for j in page.items] == ids[::-1][:2]
    assert (page.has_next, page.has_prev) == (True, False)
    second = world.queries.list_page(per_page=2, before=page.older)
    assert [j.id for j in second.items] == ids[::-1][2:4]
    last = world.queries.list_page(per_page=2, before=second.older)
    assert [j.id for j in last.items] == ids[:1] and not last.has_next and last.has_prev
    assert world.queries.list_page(per_page=2, after=last.newer).items == second.items
    assert world.queries.list_page(per_page=2, after=ids[-1]).items == page.items  # the top
    assert [j.id for j in world.queries.list_page(per_page=2, before=ids[0]).items] == [ids[1], ids[0]]
    assert [j.id for j in world.queries.list_page(per_page=2, number=99).items] == [ids[1], ids[0]]


def test_artifacts_of_unknown_names_are_not_found(world):
    job = submit(world)
    world.files.artifacts[job.id] = {"image.bin": b"\x00\x01"}
    assert world.queries.open_artifact(job.id, "image.bin")[0].read() == b"\x00\x01"
    with pytest.raises(ArtifactNotFound):
        world.queries.open_artifact(job.id, "../image.bin")


# --- provenance: the commit a build built, recorded at its end --------------------------------

SHA = "0f14567a2c1d6e0e7e1d2c3b4a5968778695a4b3"


def _built(world, job, commit=SHA, exit_code=0):
    world.supervisor.tick()
    world.files.logs[job.id] = (f"==> Checking out main\n==> Commit {commit}\n".encode()
                                if commit else b"==> Cloning x\n")
    world.runner.finish(job.id, exit_code)
    world.supervisor.tick()
    return world.repo.get(job.id)


def test_an_ended_build_is_stored_with_its_commit_before_plugins_are_told(world):
    job = _built(world, submit(world))
    assert job.status is JobStatus.SUCCESS and job.commit == SHA
    assert world.events.commits[job.id] == SHA  # the notification carries it


def test_a_build_that_ended_before_its_checkout_has_no_commit(world):
    job = _built(world, submit(world), commit=None, exit_code=128)
    assert job.status is JobStatus.FAILED and job.commit is None


def test_a_log_that_cannot_be_read_does_not_keep_the_end_from_being_recorded(world):
    def broken(job_id):
        raise OSError("unreadable")
    world.restart(provenance=broken)
    job = _built(world, submit(world))
    assert job.status is JobStatus.SUCCESS and job.commit is None


def test_the_list_filters_by_the_start_of_the_built_commit(world):
    first = _built(world, submit(world))
    second = _built(world, submit(world), commit="f" * 40)
    from autobuild.domain.ports import JobFilter
    assert [j.id for j in world.queries.list_page(JobFilter(commit=SHA[:7])).items] == [first.id]
    assert [j.id for j in world.queries.list_page(JobFilter(commit="f" * 40)).items] == [second.id]
    assert world.queries.list_page(JobFilter(commit="0123456")).items == []


def test_rebuild_exact_queues_the_built_commit_as_the_ref_with_the_same_parameters(world):
    job = world.commands.submit("alice", URL, "main", "qemux86-64", "core-image-minimal",
                                kas_file="kas/q.yml")
    _built(world, job)
    again = world.commands.rebuild(job.id, "alice", exact=True)
    assert (again.owner, again.ref, again.repo_url, again.machine, again.target,
            again.kas_file) == ("alice", SHA, URL, "qemux86-64", "core-image-minimal", "kas/q.yml")
    assert world.commands.rebuild(job.id, "alice").ref == "main"


def test_rebuild_exact_of_a_job_without_a_commit_is_refused_and_queues_nothing(world):
    job = submit(world)
    with pytest.raises(InvalidRequest) as refused:
        world.commands.rebuild(job.id, "alice", exact=True)
    assert "recorded no commit" in refused.value.errors["ref"]
    assert world.repo.count() == 1
