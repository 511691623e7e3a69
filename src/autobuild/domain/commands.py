"""Commands: what people ask of the service (submit, rebuild, cancel).

Business rules:
- a request is validated in full before anything is stored; a bad one stores nothing, and a
  good one is stored whole in one step (the runner's parameters are decided at start);
- only the owner (or an administrator) may cancel a job; anyone signed in may rebuild it as
  their own, with its ref or with the exact commit it built (once that is recorded);
- a queued job leaves the queue at once when cancelled; a running one is asked to stop, and
  ends CANCELLED only once its runner says it stopped: a cancel that fails is never recorded;
- plugins are told every status change, after it is stored;
- one user has at most ``max_queued`` builds waiting (PENDING); one more is refused with
  LimitReached and nothing is stored.
"""

from __future__ import annotations

import threading

from .jobs import Job, JobStatus, Submission
from .limits import LimitReached
from .permissions import NotAllowed, Permissions
from .ports import BuildRunner, Checkpoints, Clock, JobEvents, JobRepository, NoCheckpoints
from .queries import JobNotFound
from .requests import BuildRequest, InvalidRequest

# Named steps, for Checkpoints.
SUBMIT_VALIDATED = "submit.validated"
SUBMIT_STORED = "submit.stored"


class JobCommands:
    def __init__(self, jobs: JobRepository, runner: BuildRunner, events: JobEvents,
                 clock: Clock, permissions: Permissions, lock: threading.RLock,
                 allowed_hosts: frozenset[str] = frozenset(),
                 checkpoints: Checkpoints | None = None,
                 max_queued: int | None = None) -> None:
        self._jobs = jobs
        self._runner = runner
        self._events = events
        self._clock = clock
        self._permissions = permissions
        self._lock = lock  # shared with the Supervisor: each change of a job is whole
        self._allowed_hosts = allowed_hosts
        self._checkpoints = checkpoints or NoCheckpoints()
        self._max_queued = max_queued

    def submit(self, owner: str, repo_url: str, ref: str, machine: str, target: str,
               kas_file: str | None = None) -> Job:
        """Validate and queue a build; raises InvalidRequest with a message per bad field."""
        request = BuildRequest.parse(repo_url, ref, machine, target, self._allowed_hosts,
                                     kas_file=kas_file)
        return self._queue(owner, request)

    def rebuild(self, job_id: int, user: str, exact: bool = False) -> Job:
        """A new PENDING job with the same parameters of ``user``'s own build; ``exact``: with
        the commit the job built as its ref (InvalidRequest when it recorded none), so a branch
        that moved on since does not change what is built. NotAllowed for a colleague's build."""
        job = self._get(job_id)
        if job.owner != user:
            # One click would clone THEIR URL with YOUR token: the form names the host first.
            raise NotAllowed(f"build #{job.id} is {job.owner}'s: build it as yours from the New "
                             f"build form (/new?from={job.id}), which says where your token goes")
        if exact and job.commit is None:
            raise InvalidRequest({"ref": f"build #{job.id} recorded no commit (it has not "
                                         "ended, or it ended before the checkout)"})
        # Validated again as a new build is: a host the admin no longer allows is refused.
        return self.submit(user, job.repo_url, job.commit if exact else job.ref, job.machine,
                           job.target, kas_file=job.kas_file)

    def _queue(self, owner: str, request: BuildRequest) -> Job:
        with self._lock:  # the count and the add are one step: two tabs cannot both slip in
            self._check_queue_room(owner)
            self._checkpoints.reached(SUBMIT_VALIDATED)
            job = self._jobs.add(Submission(owner=owner, request=request,
                                            created_at=self._clock.now()))
        self._checkpoints.reached(SUBMIT_STORED)
        return job

    def _check_queue_room(self, owner: str) -> None:
        if self._max_queued is None:
            return
        waiting = sum(1 for job in self._jobs.with_status(JobStatus.PENDING)
                      if job.owner == owner)
        if waiting >= self._max_queued:
            raise LimitReached(
                f"You already have {waiting} builds waiting in the queue (at most "
                f"{self._max_queued}); cancel some, or wait until they start.")

    def cancel(self, job_id: int, user: str) -> Job:
        """Cancel as ``user``; raises NotAllowed, or RunnerError when the running build could
        not be asked to stop (nothing is recorded then). Needs nothing but the job (no process
        handle), so it works as well for a build started before a service restart."""
        with self._lock:
            job = self._get(job_id)
            self._permissions.check_stop(job, user)
            if job.status is JobStatus.PENDING and not job.handed_over:
                old = job.cancel(self._clock.now(), f"cancelled by {user} before it started")
                self._jobs.save(job)
                self._events.job_status_changed(job, old, job.status)
                return job
            if job.status is not JobStatus.RUNNING and not job.handed_over:
                return job
            previous = job.cancel_requested_by
            job.request_cancel(user)  # the name the end will show, if the build stops
            self._jobs.save(job)
        try:
            # Outside the lock: it waits for the runner's (or the cluster's) answer.
            self._runner.cancel(job)
        except Exception:
            with self._lock:
                job = self._get(job_id)
                if job.status is JobStatus.RUNNING or job.handed_over:
                    job.cancel_requested_by = previous
                    self._jobs.save(job)
            raise
        return self._get(job_id)

    def _get(self, job_id: int) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job
