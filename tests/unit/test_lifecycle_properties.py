"""Stateful property test: the job service against a trivial model of the lifecycle."""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from autobuild.domain.jobs import InvalidTransition, JobStatus
from autobuild.domain.services import JobService
from tests.fakes import FakeClock, FakeEvents, FakeJobFiles, FakeJobRepository, FakeRunner

MAX_RUNNING = 2
TERMINAL = {JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.CANCELLED}


class JobLifecycle(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    @initialize()
    def setup(self):
        self.clock = FakeClock()
        self.repo = FakeJobRepository()
        self.files = FakeJobFiles()
        self.runner = FakeRunner(self.files, self.clock)
        self.events = FakeEvents()
        self.service = JobService(self.repo, self.files, self.runner, self.events, self.clock,
                                  max_running=MAX_RUNNING)
        self.model: dict[int, JobStatus] = {}
        self.seen_times: dict[int, tuple] = {}

    def _status(self, job_id):
        return self.repo.get(job_id).status

    @rule(target=jobs, owner=st.sampled_from(["alice", "bob"]))
    def submit(self, owner):
        job = self.service.submit(owner, "https://git.example.com/p.git", "main", "qemux86-64",
                                  "core-image-minimal")
        self.model[job.id] = JobStatus.PENDING
        return job.id

    @rule(seconds=st.floats(min_value=-30, max_value=300))
    def clock_moves(self, seconds):
        self.clock.advance(seconds)  # NTP may step back: timestamps must still never go back

    @rule()
    def scheduler_tick(self):
        self.service.tick()
        for job_id, status in sorted(self.model.items()):
            actual = self._status(job_id)
            if status in TERMINAL:
                assert actual is status
            elif status is JobStatus.RUNNING:
                assert actual is not JobStatus.PENDING
            self.model[job_id] = actual
        running = sum(1 for s in self.model.values() if s is JobStatus.RUNNING)
        pending = sum(1 for s in self.model.values() if s is JobStatus.PENDING)
        assert running <= MAX_RUNNING
        # the queue never idles while there is room: nothing waits if fewer than the limit run
        assert pending == 0 or running == MAX_RUNNING
        oldest_first = [j for j, s in sorted(self.model.items()) if s is JobStatus.PENDING]
        assert all(j > max((r for r, s in self.model.items() if s is JobStatus.RUNNING), default=0)
                   for j in oldest_first)

    @precondition(lambda self: any(s is JobStatus.RUNNING for s in self.model.values()))
    @rule(data=st.data(), exit_code=st.sampled_from([0, 0, 1, 2, 130]))
    def build_ends(self, data, exit_code):
        running = sorted(j for j, s in self.model.items() if s is JobStatus.RUNNING)
        job_id = data.draw(st.sampled_from(running))
        if job_id in self.runner.processes and self.runner.processes[job_id].exit_code is None:
            self.runner.finish(job_id, exit_code)

    @rule(job_id=jobs, user=st.sampled_from(["alice", "bob"]))
    def cancel(self, job_id, user):
        job = self.repo.get(job_id)
        if job.owner != user:
            return
        self.service.cancel(job_id, user)
        if self.model[job_id] is JobStatus.PENDING:
            assert self._status(job_id) is JobStatus.CANCELLED
            self.model[job_id] = JobStatus.CANCELLED

    @rule(job_id=jobs)
    def illegal_moves_raise(self, job_id):
        job = self.repo.get(job_id)
        before = job.status
        moves = {
            JobStatus.PENDING: lambda: job.finish(0, self.clock.now()),
            JobStatus.RUNNING: lambda: job.start(self.clock.now()),
        }
        move = moves.get(before, lambda: job.start(self.clock.now()))
        try:
            move()
        except InvalidTransition:
            pass
        else:
            raise AssertionError(f"{before} allowed an illegal move")
        assert job.status is before

    @invariant()
    def terminal_states_never_change(self):
        for job_id, status in self.model.items():
            if status in TERMINAL:
                assert self._status(job_id) is status

    @invariant()
    def never_more_running_than_the_limit(self):
        assert len(self.repo.with_status(JobStatus.RUNNING)) <= MAX_RUNNING

    @invariant()
    def timestamps_only_move_forward(self):
        for job_id in self.model:
            job = self.repo.get(job_id)
            times = (job.created_at, job.started_at, job.finished_at)
            present = [t for t in times if t is not None]
            assert present == sorted(present)
            previous = self.seen_times.get(job_id)
            if previous:
                for old, new in zip(previous, times):
                    assert old is None or new == old  # once set, a timestamp never changes
            self.seen_times[job_id] = times

    @invariant()
    def plugins_hear_every_change_in_order(self):
        by_job: dict[int, list] = {}
        for job_id, old, new in self.events.changes:
            by_job.setdefault(job_id, []).append((old, new))
        for job_id, changes in by_job.items():
            for (_, new), (old, _) in zip(changes, changes[1:]):
                assert new is old
            assert changes[-1][1] is self._status(job_id)


JobLifecycle.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestJobLifecycle = JobLifecycle.TestCase
