"""Stateful property test: the core (commands + supervisor) against a trivial model of the
lifecycle, with builds that end, vanish or never begin, cancels that fail, and a service that
is stopped at any named step and started again over the same database and runner."""

from collections import Counter

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from autobuild.domain.commands import SUBMIT_STORED, SUBMIT_VALIDATED
from autobuild.domain.jobs import InvalidTransition, JobStatus
from autobuild.domain.orders import BuildSettings
from autobuild.domain.ports import Ended, Lost, Running, RunnerError
from autobuild.domain.supervision import START_DECIDED, START_LAUNCHED, START_RECORDED
from tests.fakes import FakeWorld, ServiceStopped

MAX_RUNNING = 2
TERMINAL = {JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.CANCELLED}
URL = "https://git.example.com/p.git"
ENDS = [(0, JobStatus.SUCCESS), (0, JobStatus.SUCCESS), (1, JobStatus.FAILED),
        (2, JobStatus.FAILED), (130, JobStatus.CANCELLED)]


class JobLifecycle(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    @initialize()
    def setup(self):
        self.world = FakeWorld(max_running=MAX_RUNNING)
        self.runner, self.repo, self.events = self.world.runner, self.world.repo, self.world.events
        self.clock = self.world.clock
        self.model: dict[int, JobStatus] = {}
        self.seen_times: dict[int, tuple] = {}
        self.decided: dict[int, tuple] = {}
        self.down = False  # the service was stopped and has not started again yet
        self.lost_unstarted: Counter[int] = Counter()  # launches whose runner never began

    def _status(self, job_id):
        return self.repo.get(job_id).status

    def _runner_running(self):
        return sorted(j for j, s in self.runner.states.items() if isinstance(s, Running))

    def _follow(self, never_started=frozenset()):
        """Bring the model up to date after the core acted, checking each change is legal."""
        for job_id, status in sorted(self.model.items()):
            job = self.repo.get(job_id)
            if status in TERMINAL:
                assert job.status is status
            elif status is JobStatus.RUNNING:
                assert job.status is not JobStatus.PENDING
            if job_id in never_started:  # queued again (and maybe started), never FAILED
                assert job.status is not JobStatus.FAILED, job.reason
            self.model[job_id] = job.status

    # --- what people do (only while the service is up) ------------------------------------

    @precondition(lambda self: not self.down)
    @rule(target=jobs, owner=st.sampled_from(["alice", "bob"]))
    def submit(self, owner):
        job = self.world.commands.submit(owner, URL, "main", "qemux86-64", "core-image-minimal")
        self.model[job.id] = JobStatus.PENDING
        return job.id

    @precondition(lambda self: not self.down)
    @rule(job_id=jobs, user=st.sampled_from(["alice", "bob"]), delivered=st.booleans())
    def cancel(self, job_id, user, delivered):
        before = self.repo.get(job_id)
        if before.owner != user:
            return
        self.runner.refuse_cancel = None if delivered else "sudo: timed out"
        try:
            self.world.commands.cancel(job_id, user)
        except RunnerError:
            assert before.status is JobStatus.RUNNING and not delivered
            after = self.repo.get(job_id)  # nothing recorded
            assert (after.status, after.cancel_requested_by) == (
                JobStatus.RUNNING, before.cancel_requested_by)
            return
        finally:
            self.runner.refuse_cancel = None
        after = self.repo.get(job_id)
        if before.status is JobStatus.PENDING:
            assert after.status is JobStatus.CANCELLED
        elif before.status is JobStatus.RUNNING:
            assert after.status is JobStatus.RUNNING and after.cancel_requested_by == user
        else:
            assert after == before
        self.model[job_id] = after.status

    @precondition(lambda self: not self.down and JobStatus.RUNNING in self.model.values())
    @rule(data=st.data())
    def owner_cancels_a_running_build(self, data):
        job_id = data.draw(st.sampled_from(
            sorted(j for j, s in self.model.items() if s is JobStatus.RUNNING)))
        owner = self.repo.get(job_id).owner
        self.world.commands.cancel(job_id, owner)
        after = self.repo.get(job_id)
        assert (after.status, after.cancel_requested_by) == (JobStatus.RUNNING, owner)
        assert self.runner.cancelled[-1] == job_id

    @rule(patterns=st.sampled_from([["*.bin", "*.mtd"], ["*.wic.gz"], []]))
    def plugins_change(self, patterns):
        self.events.patterns = patterns  # jobs already decided keep what they were given

    @rule(seconds=st.floats(min_value=-30, max_value=300))
    def clock_moves(self, seconds):
        self.clock.advance(seconds)  # NTP may step back: timestamps must still never go back

    # --- the service -----------------------------------------------------------------------

    @precondition(lambda self: not self.down)
    @rule(refuse=st.sampled_from([None, None, None, "sudo: a password is required"]))
    def scheduler_tick(self, refuse):
        ended_by_runner = {j: s for j, s in self.runner.states.items()
                           if isinstance(s, Ended) and self.model.get(j) is JobStatus.RUNNING}
        self.runner.refuse = refuse
        try:
            self.world.supervisor.tick()
        finally:
            self.runner.refuse = None
        self._follow()
        for job_id, end in ended_by_runner.items():  # the runner's word decides, cancel or not
            assert self.model[job_id] is end.status
        running = sum(1 for s in self.model.values() if s is JobStatus.RUNNING)
        pending = sum(1 for s in self.model.values() if s is JobStatus.PENDING)
        # the queue never idles while there is room: nothing waits if fewer than the limit run
        assert pending == 0 or running == MAX_RUNNING
        oldest_first = [j for j, s in sorted(self.model.items()) if s is JobStatus.PENDING]
        assert all(j > max((r for r, s in self.model.items() if s is JobStatus.RUNNING), default=0)
                   for j in oldest_first)

    @precondition(lambda self: not self.down)
    @rule(step=st.sampled_from([START_DECIDED, START_LAUNCHED, START_RECORDED]))
    def service_stops_while_starting_a_build(self, step):
        self.world.checkpoints.stop_at = step
        try:
            self.world.supervisor.tick()
        except ServiceStopped:
            self.down = True
        else:  # nothing was started, so the step was never reached: a plain stop
            self.world.checkpoints.stop_at = None
            self.down = True
        self._follow()

    @precondition(lambda self: not self.down)
    @rule(step=st.sampled_from([SUBMIT_VALIDATED, SUBMIT_STORED]),
          owner=st.sampled_from(["alice", "bob"]))
    def service_stops_while_submitting(self, step, owner):
        count = self.repo.count()
        self.world.checkpoints.stop_at = step
        try:
            self.world.commands.submit(owner, URL, "main", "qemux86-64", "core-image-minimal")
        except ServiceStopped:
            pass
        self.down = True
        if step == SUBMIT_VALIDATED:
            assert self.repo.count() == count  # a submission that failed left nothing
            return
        assert self.repo.count() == count + 1  # stored whole: it runs like any other
        job = self.repo.list_page(1, 0)[0]
        assert (job.status, job.owner, job.repo_url, job.artifact_patterns) == (
            JobStatus.PENDING, owner, URL, None)
        self.model[job.id] = JobStatus.PENDING

    @precondition(lambda self: self.down)
    @rule(cache_dir=st.sampled_from(["/srv/autobuild/cache", "/data/cache"]))
    def service_starts_again(self, cache_dir):
        never_started = set()
        for job_id, status in self.model.items():
            state = self.runner.state(self.repo.get(job_id))
            if status is JobStatus.PENDING and isinstance(state, Lost) and not state.started:
                never_started.add(job_id)
        ended_by_runner = {j: s.status for j, s in self.runner.states.items()
                           if isinstance(s, Ended) and self.model.get(j) is not None
                           and self.model[j] not in TERMINAL}
        launched = list(self.runner.launches)
        self.world.restart(build_settings=BuildSettings(cache_dir=cache_dir))
        self.world.supervisor.reconcile()
        self.down = False
        self._follow(never_started)
        for job_id, status in ended_by_runner.items():  # ended while nobody watched
            assert self.model[job_id] is status
        new = self.runner.launches[len(launched):]
        assert all(j in never_started for j in new)  # a runner found at work is adopted

    # --- the builds (they go on whether the service is up or not) -------------------------

    @precondition(lambda self: self._runner_running())
    @rule(data=st.data(), end=st.sampled_from(ENDS))
    def build_ends(self, data, end):
        job_id = data.draw(st.sampled_from(self._runner_running()))
        self.runner.finish(job_id, end[0], status=end[1].value)

    @precondition(lambda self: self._runner_running())
    @rule(data=st.data(), started=st.booleans())
    def runner_vanishes(self, data, started):
        job_id = data.draw(st.sampled_from(self._runner_running()))
        self.runner.lose(job_id, "killed" if started else "sudo: unknown user", started)
        if not started:
            self.lost_unstarted[job_id] += 1

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

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def terminal_states_never_change(self):
        for job_id, status in self.model.items():
            if status in TERMINAL:
                assert self._status(job_id) is status

    @invariant()
    def never_more_running_than_the_limit(self):
        assert len(self.repo.with_status(JobStatus.RUNNING)) <= MAX_RUNNING
        assert len(self._runner_running()) <= MAX_RUNNING  # counting adopted, unrecorded runners

    @invariant()
    def a_build_is_launched_again_only_when_its_runner_never_began(self):
        for job_id, launches in Counter(self.runner.launches).items():
            assert launches <= 1 + self.lost_unstarted[job_id]

    @invariant()
    def a_job_runs_exactly_with_what_was_decided_for_it(self):
        for job_id in self.model:
            job = self.repo.get(job_id)
            decided = (job.artifact_patterns, job.settings)
            if job.artifact_patterns is not None:
                assert self.decided.setdefault(job_id, decided) == decided  # decided once
            if job_id in self.runner.orders:
                assert self.runner.orders[job_id] == decided

    @invariant()
    def a_failure_says_why(self):
        for job_id, status in self.model.items():
            if status is JobStatus.FAILED:
                assert self.repo.get(job_id).reason

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
        for job_id in self.model:
            changes = by_job.get(job_id, [])
            status = self._status(job_id)
            if not changes:
                assert status is JobStatus.PENDING
                continue
            assert changes[0][0] is JobStatus.PENDING
            for (_, new), (old, _) in zip(changes, changes[1:]):
                assert new is old
            assert changes[-1][1] is status


JobLifecycle.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestJobLifecycle = JobLifecycle.TestCase
