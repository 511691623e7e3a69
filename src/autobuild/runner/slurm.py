"""``submit``, ``slurm-jobs`` and ``slurm-cancel``: the build handed to Slurm, as the engineer.

    run_job.sh submit <job_id>        a BuildOrder with "cluster" on stdin: sbatch a batch
                                      script that runs ``run_job.sh build <job_id>`` with the
                                      same order (without "cluster") on a node, as us
    run_job.sh slurm-jobs             our Slurm jobs named autobuild-<id>, as one JSON object
    run_job.sh slurm-cancel <job_id>  the job's address and its Slurm job id on stdin: scancel
                                      a pending job; SIGINT to the runner of a running one

Slurm runs batch jobs as the user who submitted them: submitting as the owner (through the
same sudo rule as every other mode) is what makes the build run as the owner on the node.
Every Slurm command is run with an argv list, never a shell, and every value in it checked
again here. Jobs are submitted with ``--no-requeue``: a requeued build would run a second
time into a job directory that already exists.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autobuild.domain.layout import RUNNER_UMASK, is_job_id, slurm_output_name
from autobuild.domain.orders import (
    BuildOrder, ClusterRequest, InvalidOrder, JobAddress, is_safe_absolute_path,
)

from .fsops import Refused, exists
from .jobdir import Identity, open_jobs_root, open_owner_dir

RUNNER_ENV = "AUTOBUILD_RUNNER"  # run_job.sh's own resolved path, which the batch script runs
JOB_NAME_PREFIX = "autobuild-"
SQUEUE_FIELDS = ("%i", "%j", "%T", "%r", "%N")
SQUEUE_FORMAT = "|".join(SQUEUE_FIELDS)
SLURM_PATH = "/usr/local/bin:/usr/bin:/bin"
SBATCH_TIMEOUT = 45.0
SQUEUE_TIMEOUT = 30.0
SCANCEL_TIMEOUT = 30.0
MAX_OUTPUT_BYTES = 4 << 20  # what we read of a Slurm command's output
MAX_LISTED = 2000  # jobs slurm-jobs lists (the newest)
MAX_MESSAGE_CHARS = 2000
MAX_SLURM_JOB_ID = 2**32 - 1
NOT_RUNNING = 3

# Slurm's job states (squeue %T), by what they mean for a build.
WAITING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                            "RESV_DEL_HOLD", "SPECIAL_EXIT"})
STARTED_STATES = frozenset({"RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "STOPPED",
                            "SIGNALING", "STAGE_OUT", "RESIZING"})
ENDED_STATES = frozenset({"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL",
                          "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED"})

_DIGITS = re.compile(r"^[0-9]{1,10}$")
_JOB_NAME = re.compile(rf"^{JOB_NAME_PREFIX}([1-9][0-9]{{0,11}})$")
_WORD = re.compile(r"^[A-Za-z0-9_().,:+-]{0,200}$")  # a state, a reason, a node list


def job_name(job_id: int) -> str:
    """The Slurm job name of a build: ``autobuild-<id>``."""
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return f"{JOB_NAME_PREFIX}{job_id}"


def is_slurm_job_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SLURM_JOB_ID


# --- submit ------------------------------------------------------------------------------------

def sbatch_argv(job_id: int, owner_path: str, cluster: ClusterRequest) -> list[str]:
    """sbatch's command line for the build of ``job_id`` (the script goes on its stdin)."""
    # The request was checked when it was parsed; checked again as it becomes an argument.
    cluster = ClusterRequest(**cluster.as_dict())
    if not is_safe_absolute_path(owner_path):
        raise Refused(f"not a plain absolute path: {owner_path!r}")
    argv = ["sbatch", "--parsable", "--no-requeue", f"--job-name={job_name(job_id)}",
            "--export=NONE", f"--chdir={owner_path}",
            f"--output={owner_path}/{slurm_output_name(job_id)}", "--open-mode=append",
            f"--cpus-per-task={cluster.cpus}"]
    if cluster.memory_mb is not None:
        argv.append(f"--mem={cluster.memory_mb}M")
    argv.append(f"--time={cluster.time_limit_minutes}")
    if cluster.partition is not None:
        argv.append(f"--partition={cluster.partition}")
    if cluster.account is not None:
        argv.append(f"--account={cluster.account}")
    return argv


def batch_script(runner_path: str, order: BuildOrder, delimiter: str | None = None) -> str:
    """The batch script: exec the runner shim in build mode with the order (without its
    "cluster": on the node it is a plain build) on stdin, from a quoted here-document."""
    if not is_safe_absolute_path(runner_path):
        raise Refused(f"the runner's path is not a plain absolute path: {runner_path!r}")
    delimiter = delimiter or f"AUTOBUILD_ORDER_{secrets.token_hex(16)}"
    if not re.fullmatch(r"AUTOBUILD_ORDER_[0-9a-f]{8,64}", delimiter):
        raise ValueError(f"not a delimiter: {delimiter!r}")
    plain = BuildOrder(address=order.address, request=order.request,
                       artifact_patterns=order.artifact_patterns, settings=order.settings)
    text = plain.to_json()
    if "\n" in text or delimiter in text:  # json.dumps writes one line; never the delimiter
        raise ValueError("the order cannot be put in a here-document")
    return (f"#!/bin/sh\nexec {runner_path} build {order.address.job_id} <<'{delimiter}'\n"
            f"{text}\n{delimiter}\n")


def runner_path(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """The shim's own path, as run_job.sh says it (the nodes have it at the same path)."""
    path = environ.get(RUNNER_ENV, "")
    if not is_safe_absolute_path(path) or not path.endswith("/run_job.sh"):
        raise Refused(f"{RUNNER_ENV} is not the absolute path of run_job.sh: {path[:200]!r}")
    return path


def parse_sbatch_output(stdout: str) -> int | None:
    """The job id ``sbatch --parsable`` printed (``<id>`` or ``<id>;<cluster>``), or None."""
    lines = stdout.strip().splitlines()
    if len(lines) != 1:
        return None
    first = lines[0].split(";", 1)[0].strip()
    if not _DIGITS.match(first) or not is_slurm_job_id(int(first)):
        return None
    return int(first)


def submit(order: BuildOrder, me: Identity,
           environ: dict[str, str] | os._Environ[str] = os.environ) -> int:
    """sbatch the build of ``order`` as us; prints the Slurm job id. 0, or 1 with sbatch's word."""
    if order.cluster is None:
        raise Refused("the order says nothing of the cluster (\"cluster\")")
    shim = runner_path(environ)
    job_id, jobs_root = order.address.job_id, order.address.jobs_root
    root = open_jobs_root(jobs_root)
    try:
        owner = open_owner_dir(root, jobs_root, me, create=True)
    finally:
        os.close(root)
    assert owner is not None
    owner_path = f"{jobs_root.rstrip('/')}/{me.name}"
    try:
        if exists(owner, str(job_id)):
            raise Refused(f"job {job_id} has already run ({owner_path}/{job_id} exists)")
    finally:
        os.close(owner)
    argv = sbatch_argv(job_id, owner_path, order.cluster)
    script = batch_script(shim, order)
    os.umask(RUNNER_UMASK)  # the batch output: 0640, the owner directory's group (setgid)
    result = _run(argv, script, SBATCH_TIMEOUT)
    sid = parse_sbatch_output(result.stdout) if result.returncode == 0 else None
    if sid is None:
        _complain("sbatch", result)
        return 1
    print(sid)
    return 0


# --- slurm-jobs --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SlurmJob:
    """One of our Slurm jobs that runs a build."""

    slurm_job: int
    job_id: int
    state: str
    reason: str
    node: str

    def as_dict(self) -> dict[str, Any]:
        return {"slurm_job": self.slurm_job, "job_id": self.job_id, "state": self.state,
                "reason": self.reason, "node": self.node}


def parse_squeue(text: str) -> list[SlurmJob]:
    """squeue's lines in SQUEUE_FORMAT: the jobs named ``autobuild-<id>``, anything else
    (another job of ours, an array task, a line that does not fit) left out; the newest
    MAX_LISTED."""
    found: dict[int, SlurmJob] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != len(SQUEUE_FIELDS):
            continue  # a name with "|" in it is not one of ours
        sid, name, state, reason, node = (f.strip() for f in fields)
        match = _JOB_NAME.match(name)
        if not match or not _DIGITS.match(sid) or not is_slurm_job_id(int(sid)):
            continue
        if not state.isupper() or not all(_WORD.match(f) for f in (state, reason, node)):
            continue
        found[int(sid)] = SlurmJob(int(sid), int(match.group(1)), state, reason,
                                   "" if node in ("(null)", "n/a") else node)
    return [found[sid] for sid in sorted(found, reverse=True)[:MAX_LISTED]]


def squeue_argv(slurm_job: int | None = None) -> list[str]:
    argv = ["squeue", "--me", "--noheader", "--states=all", f"--format={SQUEUE_FORMAT}"]
    if slurm_job is not None:
        if not is_slurm_job_id(slurm_job):
            raise ValueError(f"not a Slurm job id: {slurm_job!r}")
        argv.insert(1, f"--jobs={slurm_job}")
    return argv


def list_jobs() -> int:
    """Print ``{"jobs": [...]}``: our Slurm jobs that run builds. 1 when squeue fails."""
    result = _run(squeue_argv(), None, SQUEUE_TIMEOUT)
    if result.returncode != 0:
        _complain("squeue", result)
        return 1
    print(json.dumps({"jobs": [job.as_dict() for job in parse_squeue(result.stdout)]}))
    return 0


# --- slurm-cancel ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SlurmCancel:
    """What slurm-cancel is told: the job's address and the Slurm job that runs it."""

    address: JobAddress
    slurm_job: int

    def to_json(self) -> str:
        return json.dumps({**self.address.as_dict(), "slurm_job": self.slurm_job})

    @classmethod
    def from_json(cls, text: str | bytes) -> SlurmCancel:
        try:
            data = json.loads(text)
        except ValueError:
            raise InvalidOrder("not JSON") from None
        if not isinstance(data, dict):
            raise InvalidOrder("must be a JSON object")
        unknown = set(data) - {"job_id", "owner", "jobs_root", "slurm_job"}
        if unknown:
            raise InvalidOrder(f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
        if not is_slurm_job_id(data.get("slurm_job")):
            raise InvalidOrder("slurm_job must be a Slurm job id")
        address = JobAddress(job_id=data.get("job_id"), owner=data.get("owner"),  # type: ignore[arg-type]
                             jobs_root=data.get("jobs_root"))  # type: ignore[arg-type]
        return cls(address, data["slurm_job"])


def cancel(request: SlurmCancel) -> int:
    """0: cancelled (pending) or the runner told to stop (running); 3: it has ended."""
    sid, job_id = request.slurm_job, request.address.job_id
    result = _run(squeue_argv(sid), None, SQUEUE_TIMEOUT)
    if result.returncode != 0:
        if "invalid job id" in (result.stderr + result.stdout).lower():
            print(f"job {job_id}: Slurm no longer knows job {sid}")
            return NOT_RUNNING
        _complain("squeue", result)
        return 1
    jobs = [job for job in parse_squeue(result.stdout) if job.slurm_job == sid]
    if not jobs:
        named = [line for line in result.stdout.splitlines() if line.strip()]
        if named:
            raise Refused(f"Slurm job {sid} is not the build of job {job_id}")
        print(f"job {job_id}: Slurm no longer knows job {sid}")
        return NOT_RUNNING
    job = jobs[0]
    if job.job_id != job_id:
        raise Refused(f"Slurm job {sid} runs job {job.job_id}, not job {job_id}")
    if job.state in ENDED_STATES:
        print(f"job {job_id} is not running (Slurm: {job.state})")
        return NOT_RUNNING
    if job.state in WAITING_STATES:
        argv = ["scancel", str(sid)]
        said = f"job {job_id}: Slurm job {sid} cancelled before it started"
    else:  # the batch shell exec'd the runner: it stops the build and records CANCELLED
        argv = ["scancel", "--signal=INT", "--batch", str(sid)]
        said = f"job {job_id}: stopping (SIGINT sent to its runner in Slurm job {sid})"
    result = _run(argv, None, SCANCEL_TIMEOUT)
    if result.returncode != 0:
        text = (result.stderr + result.stdout).lower()
        if "already completed" in text or "invalid job id" in text:
            print(f"job {job_id} is not running")
            return NOT_RUNNING
        _complain("scancel", result)
        return 1
    print(said)
    return 0


# --- mode entry points ------------------------------------------------------------------------

AddressCheck = Callable[[JobAddress, int, Identity], None]  # cli's: the id and the owner match


def run_submit(job_id: int, data: bytes, me: Identity, check: AddressCheck) -> int:
    try:
        order = BuildOrder.from_json(data)
    except (InvalidOrder, TypeError, AttributeError, ValueError) as exc:
        raise Refused(f"invalid build order: {exc}") from None
    check(order.address, job_id, me)
    return submit(order, me)


def run_cancel(job_id: int, data: bytes, me: Identity, check: AddressCheck) -> int:
    try:
        request = SlurmCancel.from_json(data)
    except (InvalidOrder, TypeError, AttributeError, ValueError) as exc:
        raise Refused(f"invalid cancel request: {exc}") from None
    check(request.address, job_id, me)
    return cancel(request)


def remove_output(owner_fd: int, job_id: int) -> bool:
    """Unlink ``<id>.slurm.out`` in our directory (a name: no link is followed); True if it was there."""
    try:
        os.unlink(slurm_output_name(job_id), dir_fd=owner_fd)
    except FileNotFoundError:
        return False
    return True


# --- helpers -------------------------------------------------------------------------------------

def _run(argv: list[str], stdin: str | None, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(argv, input=stdin if stdin is not None else "",
                                capture_output=True, text=True, errors="replace",
                                timeout=timeout, env={"PATH": SLURM_PATH, "LANG": "C.UTF-8"})
    except FileNotFoundError:
        raise Refused(f"{argv[0]} is not installed here (Slurm's client commands)", code=1) from None
    except subprocess.TimeoutExpired:
        raise Refused(f"{argv[0]} did not answer within {timeout:.0f} s", code=1) from None
    return subprocess.CompletedProcess(argv, result.returncode, result.stdout[:MAX_OUTPUT_BYTES],
                                       result.stderr[-MAX_OUTPUT_BYTES:])


def _complain(program: str, result: subprocess.CompletedProcess[str]) -> None:
    said = (result.stderr.strip() or result.stdout.strip())[-MAX_MESSAGE_CHARS:]
    said = "".join(ch if ch == "\n" or ch.isprintable() else "?" for ch in said)
    print(f"{program} failed (exit {result.returncode}): {said or 'it said nothing'}",
          file=sys.stderr)
