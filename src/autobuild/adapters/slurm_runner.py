"""BuildRunner on a Slurm cluster: the build is submitted as its owner and runs on a node as them.

Everything goes through the one sudo rule there is (``sudo -n -u <owner> run_job.sh ...``):
- ``submit <id>`` (the order with "cluster" on stdin) runs ``sbatch`` as the owner; the batch
  script execs ``run_job.sh build <id>`` on the node with the same order, so the build, its
  job directory and its status.json are exactly those of the local runner, on the shared
  jobs root. ``runner_ref`` is ``slurm:<Slurm job id>``.
- ``slurm-jobs`` lists the owner's Slurm jobs named ``autobuild-<id>`` (squeue): at most one
  call per owner every ``poll_seconds``, shared by every job of that owner.
- ``slurm-cancel <id>`` cancels a pending job, or sends SIGINT to the runner of a running one
  alone (which stops bitbake with the grace its order says, as a local runner does, records
  CANCELLED and exits: the Slurm job then ends).

The state of a build is Slurm's (pending, running, or how it ended: time limit, node lost...)
together with status.json, which the runner writes last (read through BuildTree, as
everything a build wrote). When Slurm cannot be asked, the last state seen is kept: a
controller that does not answer never makes a build lost.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from autobuild.domain import layout
from autobuild.domain.jobs import Job, JobStatus
from autobuild.domain.orders import ClusterRequest
from autobuild.domain.ports import (
    Checkpoints,
    Ended,
    Lost,
    NoCheckpoints,
    Running,
    RunnerError,
    RunnerState,
    Waiting,
)
from autobuild.runner.slurm import (
    ENDED_STATES,
    STARTED_STATES,
    WAITING_STATES,
    SlurmCancel,
    is_slurm_job_id,
)

from .build_tree import BuildTree
from .local_runner import (
    EXIT_NOT_RUNNING,
    RunnerShim,
    ShimCall,
    build_order,
    parse_status,
    printable,
    said,
)

log = logging.getLogger(__name__)

REF_PREFIX = "slurm:"
SUBMIT_TIMEOUT = 60.0
LIST_TIMEOUT = 30.0
CANCEL_TIMEOUT = 30.0
OUTPUT_TAIL_BYTES = 2000
MAX_LIST_BYTES = 1 << 20
CANCELLED_EXIT = 130  # as the runner records a cancel by SIGINT
# Slurm ended the job but status.json is not there: give shared storage this long to show it
# (NFS caches a directory's entries, a missing name included) before calling the build lost.
STATUS_GRACE = 30.0

_STATE = re.compile(r"^[A-Z_]{1,32}$")
_LOSSES = {
    "NODE_FAIL": "the node {node} stopped answering (Slurm NODE_FAIL)",
    "OUT_OF_MEMORY": "it used more than its memory limit (Slurm OUT_OF_MEMORY)",
    "BOOT_FAIL": "the node {node} failed to start it (Slurm BOOT_FAIL)",
    "DEADLINE": "it could not end before its deadline (Slurm DEADLINE)",
    "PREEMPTED": "Slurm preempted it for another job (Slurm PREEMPTED)",
    "REVOKED": "Slurm revoked it (Slurm REVOKED)",
}


@dataclass(frozen=True)
class SlurmJobInfo:
    """One of an owner's Slurm jobs that runs a build, as ``slurm-jobs`` said it."""

    slurm_job: int
    job_id: int
    state: str
    reason: str
    node: str


@dataclass(frozen=True)
class _Snapshot:
    """What ``slurm-jobs`` said for one owner (``taken``: monotonic time before asking)."""

    taken: float
    jobs: dict[int, SlurmJobInfo]
    error: str | None = None


def parse_jobs(text: str) -> dict[int, SlurmJobInfo]:
    """``slurm-jobs``'s output, checked; ValueError when it is not what the runner prints."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise ValueError("no list of jobs")
    found = {}
    for entry in data["jobs"]:
        if not isinstance(entry, dict):
            raise ValueError("a job is not an object")
        sid, job_id = entry.get("slurm_job"), entry.get("job_id")
        state, reason, node = entry.get("state"), entry.get("reason"), entry.get("node")
        if not is_slurm_job_id(sid) or not layout.is_job_id(job_id):
            raise ValueError("a job without valid ids")
        if not isinstance(state, str) or not _STATE.match(state):
            raise ValueError(f"a job state that is not Slurm's: {str(state)[:40]!r}")
        if not isinstance(reason, str) or not isinstance(node, str):
            raise ValueError("a reason or node that is not text")
        found[sid] = SlurmJobInfo(sid, job_id, state, printable(reason)[:200],
                                  printable(node)[:200])
    return found


def slurm_ref(slurm_job: int) -> str:
    return f"{REF_PREFIX}{slurm_job}"


def ref_job_id(runner_ref: str | None) -> int | None:
    """The Slurm job id in ``slurm:<id>``, or None."""
    if not runner_ref or not runner_ref.startswith(REF_PREFIX):
        return None
    digits = runner_ref[len(REF_PREFIX):]
    if not digits.isdigit() or len(digits) > 10:
        return None
    value = int(digits)
    return value if is_slurm_job_id(value) else None


def waiting_reason(reason: str) -> str:
    """Slurm's reason for a pending job, fit to show ("None": it has not looked yet)."""
    if not reason or reason == "None":
        return "waiting for the scheduler"
    return reason


class SlurmBuildRunner:
    """Implements BuildRunner with builds submitted to Slurm as their owners."""

    queues = True  # Slurm keeps the queue: the service hands every build over at once

    def __init__(self, runner_path: Path, jobs_root: Path, launch_dir: Path,
                 use_sudo: bool = True, checkpoints: Checkpoints | None = None,
                 cluster: ClusterRequest | None = None, poll_seconds: float = 2.0,
                 call: ShimCall | None = None, status_grace: float = STATUS_GRACE,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._jobs_root = Path(jobs_root)
        self._launch_dir = Path(launch_dir)
        self._checkpoints = checkpoints or NoCheckpoints()
        self._cluster = cluster or ClusterRequest()
        self._poll = poll_seconds
        self._grace = status_grace
        self._now = monotonic
        self._shim = RunnerShim(Path(runner_path), self._jobs_root, use_sudo, call)
        self._tree = BuildTree(self._jobs_root)
        self._callbacks: list[Callable[[], None]] = []
        self._guard = threading.Lock()
        self._snapshots: dict[str, _Snapshot] = {}
        self._changed: dict[str, float] = {}  # owner -> when we last submitted or cancelled
        self._asking: dict[str, threading.Lock] = {}  # one slurm-jobs per owner at a time
        self._last: dict[int, RunnerState] = {}  # job id -> the last state said, while open
        self._no_status_since: dict[int, float] = {}
        self._complained: dict[str, str] = {}

    # --- BuildRunner ---------------------------------------------------------------------------

    def on_change(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)  # the scheduler polls state(): nothing to push

    def launch(self, job: Job) -> str:
        try:
            order = build_order(job, self._jobs_root, self._cluster)
        except ValueError as exc:
            raise RunnerError(f"its parameters are no longer accepted: {exc}") from None
        # Submitted already (the service stopped between sbatch and recording the ref)?
        snapshot = self._snapshot(job.owner, fresh=True)
        found = self._find(snapshot, None, job.id)
        if found is not None and found.state not in ENDED_STATES:
            log.info("job %s: found in Slurm already as job %s", job.id, found.slurm_job)
            return slurm_ref(found.slurm_job)
        result = self._shim.call(job.owner, ["submit", str(job.id)], order.to_json(),
                                 SUBMIT_TIMEOUT)
        self._mark_changed(job.owner)
        out = result.stdout.strip()
        self._launch_log(job.id, f"submit as {job.owner}: exit {result.returncode}: "
                                 f"{printable(out)[:200]} {printable(result.stderr.strip())}")
        if result.returncode == 0 and out.isdigit() and is_slurm_job_id(int(out)):
            log.info("job %s: submitted to Slurm as %s (job %s)", job.id, job.owner, out)
            return slurm_ref(int(out))
        raise RunnerError(f"Slurm did not take the build: {said(result)}")

    def state(self, job: Job) -> RunnerState:
        sid = ref_job_id(job.runner_ref)
        snapshot = self._snapshot(job.owner)
        if snapshot.error is not None:
            return self._while_slurm_is_silent(job, snapshot.error)
        found = self._find(snapshot, sid, job.id)
        state = self._decide(job, found, sid)
        with self._guard:
            if isinstance(state, (Ended, Lost)):
                self._last.pop(job.id, None)
            else:
                self._last[job.id] = state
        return state

    def cancel(self, job: Job) -> None:
        sid = ref_job_id(job.runner_ref)
        if sid is None:
            found = self._find(self._snapshot(job.owner, fresh=True), None, job.id)
            if found is None:
                return  # never handed to Slurm: nothing runs (state() says how it ended)
            sid = found.slurm_job
        request = SlurmCancel(self._shim.address(job), sid)
        result = self._shim.run(job, "slurm-cancel", CANCEL_TIMEOUT, payload=request.to_json())
        self._mark_changed(job.owner)
        if result.returncode not in (0, EXIT_NOT_RUNNING):
            raise RunnerError(f"the build could not be cancelled: {said(result)}")

    def purge(self, job: Job) -> None:
        # Always as the owner: the batch job's output may be there without a job directory.
        self._shim.purge(job, self._launch_dir / layout.launch_log_name(job.id), self._tree,
                         always=True)

    # --- what Slurm says -------------------------------------------------------------------------

    def _snapshot(self, owner: str, fresh: bool = False) -> _Snapshot:
        """The owner's jobs in Slurm, asked at most every poll_seconds (and again after a
        submit or cancel, or when ``fresh``)."""
        with self._guard:
            asking = self._asking.setdefault(owner, threading.Lock())
        with asking:
            with self._guard:
                known = self._snapshots.get(owner)
                since = self._changed.get(owner)
            if (not fresh and known is not None and self._now() - known.taken < self._poll
                    and (since is None or known.taken > since)):
                return known
            taken = self._now()
            snapshot = self._ask(owner, taken)
            with self._guard:
                self._snapshots[owner] = snapshot
            return snapshot

    def _ask(self, owner: str, taken: float) -> _Snapshot:
        try:
            result = self._shim.call(owner, ["slurm-jobs"], "", LIST_TIMEOUT)
        except RunnerError as exc:
            return self._failed(owner, taken, str(exc))
        if result.returncode != 0:
            return self._failed(owner, taken, said(result))
        try:
            jobs = parse_jobs(result.stdout[:MAX_LIST_BYTES])
        except (ValueError, TypeError) as exc:
            return self._failed(owner, taken, f"slurm-jobs said something else: {exc}")
        if self._complained.pop(owner, None) is not None:
            log.warning("Slurm answers again (the jobs of %s)", owner)
        return _Snapshot(taken, jobs)

    def _failed(self, owner: str, taken: float, error: str) -> _Snapshot:
        error = error[-500:]
        if self._complained.get(owner) != error:
            log.warning("cannot ask Slurm for the jobs of %s (builds keep their last state): %s",
                        owner, error)
            self._complained[owner] = error
        return _Snapshot(taken, {}, error)

    def _mark_changed(self, owner: str) -> None:
        with self._guard:
            self._changed[owner] = self._now()

    @staticmethod
    def _find(snapshot: _Snapshot, sid: int | None, job_id: int) -> SlurmJobInfo | None:
        """The Slurm job of build ``job_id``: the one in its ref, else the newest named for it
        (preferring one that has not ended)."""
        if sid is not None:
            found = snapshot.jobs.get(sid)
            if found is not None and found.job_id == job_id:
                return found
        named = [j for j in snapshot.jobs.values() if j.job_id == job_id]
        if not named:
            return None
        return max(named, key=lambda j: (j.state not in ENDED_STATES, j.slurm_job))

    # --- deciding ----------------------------------------------------------------------------

    def _decide(self, job: Job, found: SlurmJobInfo | None, sid: int | None) -> RunnerState:
        if found is None:
            return self._unknown_to_slurm(job, sid)
        ref, state = slurm_ref(found.slurm_job), found.state
        if state in WAITING_STATES:
            return Waiting(waiting_reason(found.reason), ref)
        if state == "TIMEOUT":  # the runner, sent SIGTERM, may have recorded CANCELLED
            return Lost(f"it reached its time limit of {self._cluster.time_limit_minutes} min "
                        f"(Slurm TIMEOUT)", started=True)
        if state in _LOSSES:
            return Lost(_LOSSES[state].format(node=found.node or "it ran on"), started=True)
        ended = self._read_status(job)
        if ended is not None:
            self._no_status_since.pop(job.id, None)
            if ended.status is JobStatus.CANCELLED and job.cancel_requested_by is None:
                # Stopped by a signal nobody asked the service for: Slurm's time limit (its
                # SIGTERM), or an scancel outside Autobuild. Slurm says which once the job
                # has ended there; until then (what we last heard may be a poll old) it runs.
                if state not in ENDED_STATES:
                    return Running(ref, found.node or None)
                if state == "CANCELLED":
                    return Lost("Slurm cancelled it (scancel outside Autobuild?)", started=True)
            return ended
        if state in STARTED_STATES or state not in ENDED_STATES:
            if state in STARTED_STATES or found.node:
                return Running(ref, found.node or None)
            return Waiting(f"Slurm: {state}", ref)
        # COMPLETED, FAILED or CANCELLED, and no status.json (yet?).
        if job.cancel_requested_by is not None:
            return Ended(JobStatus.CANCELLED, CANCELLED_EXIT)
        if not self._grace_over(job.id):
            return Running(ref, found.node or None)
        started = self._job_dir_exists(job)
        if state == "CANCELLED":
            return Lost("Slurm cancelled it (scancel outside Autobuild?)", started=started)
        said_there = self._output_tail(job)
        return Lost(f"the build ended in Slurm ({state}) without saying how"
                    + (f": {said_there}" if said_there else ""), started=started)

    def _unknown_to_slurm(self, job: Job, sid: int | None) -> RunnerState:
        ended = self._read_status(job)
        if ended is not None:
            return ended
        if job.cancel_requested_by is not None:
            return Ended(JobStatus.CANCELLED, CANCELLED_EXIT)
        if sid is None:
            return Lost("the build was never handed to Slurm", started=False)
        if not self._grace_over(job.id):
            with self._guard:
                last = self._last.get(job.id)
            return last or Running(job.runner_ref)
        return Lost(f"Slurm no longer knows job {sid} and the build left no status",
                    started=self._job_dir_exists(job))

    def _while_slurm_is_silent(self, job: Job, error: str) -> RunnerState:
        with self._guard:
            last = self._last.get(job.id)
        if last is not None:
            return last
        ended = self._read_status(job)
        if ended is not None:
            return ended
        if self._job_dir_exists(job):
            return Running(job.runner_ref)
        return Waiting(f"Slurm does not answer: {error[:200]}", job.runner_ref)

    def _grace_over(self, job_id: int) -> bool:
        now = self._now()
        with self._guard:
            first = self._no_status_since.setdefault(job_id, now)
            over = now - first >= self._grace
            if over:
                del self._no_status_since[job_id]
        return over

    # --- what the build left ------------------------------------------------------------------

    def _read_status(self, job: Job) -> Ended | None:
        raw = self._tree.read_small(job.owner, job.id, layout.STATUS,
                                    limit=layout.MAX_STATUS_BYTES)
        return None if raw is None else parse_status(raw)

    def _job_dir_exists(self, job: Job) -> bool:
        with self._tree.open_dir(job.owner, job.id) as job_dir:
            return job_dir is not None

    def _output_tail(self, job: Job) -> str:
        text = self._tree.read_owner_tail(job.owner, layout.slurm_output_name(job.id),
                                          OUTPUT_TAIL_BYTES)
        return printable(text or "").strip()[-OUTPUT_TAIL_BYTES:]

    def _launch_log(self, job_id: int, line: str) -> None:
        """What the submission said, in the service's launch log of the job."""
        try:
            self._launch_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
            fd = os.open(self._launch_dir / layout.launch_log_name(job_id),
                         os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o640)
        except OSError as exc:
            log.warning("job %s: cannot write the launch log: %s", job_id, exc)
            return
        try:
            os.write(fd, f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {line.strip()}\n".encode())
        except OSError:
            pass
        finally:
            os.close(fd)

