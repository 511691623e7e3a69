"""``cancel`` and ``purge``: act on a job of ours, found only through our own runner record.

runner.json is trusted only as a regular file of ours in our own job directory, and the pid in
it only while it runs as us with the recorded start time (so a reused pid is never signalled).
"""

from __future__ import annotations

import os
import signal
import stat
import time
from datetime import UTC, datetime

from autobuild.domain.layout import CANCEL_REQUEST, STATUS
from autobuild.domain.orders import JobAddress

from autobuild.adapters.procfs import PROC

from .fsops import Refused, create_file, exists, open_regular, read_fd, remove_tree, write_all
from .jobdir import Identity, RunnerRecord, open_job_dir, open_jobs_root, open_owner_dir, read_record
from .procs import group_members, is_our_process, signal_group
from .slurm import remove_output

NOT_RUNNING = 3
WAIT_FOR_JOB_DIR = 5.0
# The record of a runner started before the upgrade (the bash run_job.sh): "<pid> <pgid>".
# Its job directory was moved under <owner>/ while it kept running (autobuild.upgrade).
LEGACY_RUNNER_PID = "runner.pid"
LEGACY_MAX_BYTES = 64


def _legacy_runner(job: int, job_id: int, me: Identity) -> tuple[int, int] | None:
    """(pid, pgid) of a live pre-upgrade runner of this job of ours, from runner.pid, when
    the pid is ours and its command line is ``run_job.sh <job_id> ...``; else None."""
    try:
        fd = open_regular(job, LEGACY_RUNNER_PID, owner=me.uid, max_size=LEGACY_MAX_BYTES)
    except Refused:
        return None
    if fd is None:
        return None
    try:
        fields = read_fd(fd, LEGACY_MAX_BYTES).split()
    finally:
        os.close(fd)
    if len(fields) < 2 or not all(f.isdigit() for f in fields[:2]):
        return None
    pid, pgid = int(fields[0]), int(fields[1])
    if not pid or not pgid:
        return None
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        argv = []
    ran_job = any(a.endswith(b"run_job.sh") and b == str(job_id).encode()
                  for a, b in zip(argv, argv[1:]))
    if ran_job and is_our_process(pid, None, me.uid):
        return pid, pgid
    if group_members(pgid, me.uid):
        return 0, pgid
    return None


def _owner_path(address: JobAddress) -> str:
    return f"{address.jobs_root.rstrip('/')}/{address.owner}"


def _open_job(address: JobAddress, me: Identity, wait: float = 0.0) -> tuple[int, int | None]:
    """(jobs root fd, job dir fd or None when it does not exist, after ``wait`` seconds)."""
    root = open_jobs_root(address.jobs_root)
    deadline = time.monotonic() + wait
    while True:
        owner = open_owner_dir(root, address.jobs_root, me, create=False)
        job = None
        if owner is not None:
            try:
                job = open_job_dir(owner, _owner_path(address), address.job_id, me)
            finally:
                os.close(owner)
        if job is not None or time.monotonic() >= deadline:
            return root, job
        time.sleep(0.1)


def _alive(record: RunnerRecord, me: Identity) -> tuple[bool, list[int]]:
    """(is the runner alive, live members of the build's process group)."""
    return (is_our_process(record.pid, record.start_time, me.uid),
            group_members(record.pgid, me.uid))


def cancel(address: JobAddress, me: Identity) -> int:
    """0: the stop is under way (or the build stops as soon as it starts); 3: not running."""
    job_id = address.job_id
    root, job = _open_job(address, me, wait=WAIT_FOR_JOB_DIR)
    os.close(root)
    if job is None:
        print(f"job {job_id} is not running")
        return NOT_RUNNING
    try:
        if exists(job, STATUS):
            print(f"job {job_id} is not running")
            return NOT_RUNNING
        record = read_record(job, job_id, me.uid)
        if record is None:
            # Starting right now: the runner reads this note right after writing its record.
            try:
                fd = create_file(job, CANCEL_REQUEST)
            except FileExistsError:
                pass
            else:
                try:
                    write_all(fd, f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}\n".encode())
                finally:
                    os.close(fd)
            record = read_record(job, job_id, me.uid)
            if record is None:
                legacy = _legacy_runner(job, job_id, me)
                if legacy is not None:
                    pid, pgid = legacy
                    if pid:  # the old runner forwards SIGINT and records CANCELLED
                        os.kill(pid, signal.SIGINT)
                    else:
                        signal_group(pgid, signal.SIGKILL)
                    print(f"job {job_id}: stopping (a runner from before the upgrade)")
                    return 0
                print(f"job {job_id} will stop as soon as it starts")
                return 0
        runner_alive, members = _alive(record, me)
        if runner_alive:
            os.kill(record.pid, signal.SIGINT)  # the runner escalates and records CANCELLED
            print(f"job {job_id}: stopping (SIGINT sent to its runner)")
            return 0
        if members:
            signal_group(record.pgid, signal.SIGKILL)
            print(f"job {job_id}: its runner is gone; killed what was left of the build")
            return 0
        print(f"job {job_id} is not running")
        return NOT_RUNNING
    finally:
        os.close(job)


def purge(address: JobAddress, me: Identity) -> int:
    """Delete ``<jobs root>/<owner>/<id>`` (retention); 3 while its runner is alive."""
    job_id, name = address.job_id, str(address.job_id)
    root = open_jobs_root(address.jobs_root)
    try:
        owner = open_owner_dir(root, address.jobs_root, me, create=False)
    finally:
        os.close(root)
    if owner is None:
        print(f"job {job_id}: nothing to remove")
        return 0
    try:
        try:
            info = os.stat(name, dir_fd=owner, follow_symlinks=False)
        except FileNotFoundError:
            removed = _remove_slurm_output(owner, job_id)
            print(f"job {job_id}: {'removed' if removed else 'nothing to remove'}")
            return 0
        if stat.S_ISDIR(info.st_mode):
            job = open_job_dir(owner, _owner_path(address), job_id, me)
            if job is not None:
                try:
                    _refuse_if_running(job, job_id, me)
                finally:
                    os.close(job)
        try:
            remove_tree(owner, name)
        except OSError as exc:
            raise Refused(f"could not remove all of job {job_id}: {exc.strerror or exc}",
                          code=1) from None
        _remove_slurm_output(owner, job_id)
    finally:
        os.close(owner)
    print(f"job {job_id}: removed")
    return 0


def _remove_slurm_output(owner: int, job_id: int) -> bool:
    """The Slurm batch job's output next to the job directory (a build run on a cluster)."""
    try:
        return remove_output(owner, job_id)
    except OSError as exc:
        raise Refused(f"could not remove the Slurm output of job {job_id}: "
                      f"{exc.strerror or exc}", code=1) from None


def _refuse_if_running(job: int, job_id: int, me: Identity) -> None:
    if exists(job, STATUS):
        return
    try:
        record = read_record(job, job_id, me.uid)
    except Refused:
        record = None  # not a record of a runner: nothing to wait for
    running = record is not None and any(_alive(record, me))
    if running or (record is None and _legacy_runner(job, job_id, me) is not None):
        raise Refused(f"job {job_id} is still running; cancel it first", code=NOT_RUNNING)
