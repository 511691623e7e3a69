"""The runner's command line: one mode, its job id, and what the service says on stdin."""

from __future__ import annotations

import ctypes
import os
import re
import resource
import sys
from typing import BinaryIO

from autobuild.domain.layout import RUNNER_UMASK
from autobuild.domain.orders import MAX_ORDER_BYTES, BuildOrder, InvalidOrder, JobAddress

from . import account, build, control, slurm
from .fsops import Refused
from .jobdir import Identity, create_job_dir, open_jobs_root, open_owner_dir, web_group, whoami

PROG = "run_job.sh"
PR_SET_DUMPABLE = 4
USAGE = f"""\
usage: {PROG} build <job_id>                 (a build order, JSON, on stdin)
       {PROG} cancel <job_id> | purge <job_id>  (the job's address, JSON, on stdin)
       {PROG} check-login | store-token        (the password or token on stdin)
       {PROG} has-token
       {PROG} submit <job_id>                (a build order with "cluster": sbatch the build)
       {PROG} slurm-jobs                     (our Slurm jobs that run builds, as JSON)
       {PROG} slurm-cancel <job_id>          (the address and "slurm_job", JSON, on stdin)
"""
MODES = {"build": 1, "cancel": 1, "purge": 1, "check-login": 0, "store-token": 0,
         "has-token": 0, "submit": 1, "slurm-jobs": 0, "slurm-cancel": 1}
_JOB_ID = re.compile(r"^[1-9][0-9]{0,11}$")


class UsageError(Exception):
    pass


def parse_args(argv: list[str]) -> tuple[str, int | None]:
    if not argv:
        raise UsageError("no mode given")
    mode, rest = argv[0], argv[1:]
    if mode not in MODES:
        raise UsageError(f"unknown mode: {mode[:64]!r}")
    if len(rest) != MODES[mode]:
        raise UsageError(f"{mode} takes {'one job id' if MODES[mode] else 'no arguments'}")
    if not rest:
        return mode, None
    if not _JOB_ID.match(rest[0]):
        raise UsageError("invalid job id: a positive whole number")
    return mode, int(rest[0])


def check_caller(me: Identity, environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """Never as root through sudo, never as the service user (sudo's SUDO_USER) itself."""
    if me.uid == 0 and "SUDO_UID" in environ:
        raise Refused("refusing to run as root through sudo")
    if environ.get("SUDO_USER") == me.name:
        raise Refused(f"refusing to run as {me.name}, the user who called sudo")


def read_stdin(stdin: BinaryIO, limit: int = MAX_ORDER_BYTES) -> bytes:
    data = stdin.read(limit + 1)
    if len(data) > limit:
        raise Refused(f"stdin holds more than {limit} bytes")
    return data


def _check_address(address: JobAddress, job_id: int, me: Identity) -> None:
    if address.job_id != job_id:
        raise Refused(f"the job id {job_id} does not match the order's {address.job_id}")
    if address.owner != me.name:
        raise Refused(f"job {job_id} belongs to {address.owner}; this runner runs as {me.name}")


def run_build(job_id: int, stdin: BinaryIO, me: Identity) -> int:
    try:
        order = BuildOrder.from_json(read_stdin(stdin))
    except (InvalidOrder, TypeError, AttributeError, ValueError) as exc:
        raise Refused(f"invalid build order: {exc}") from None
    _check_address(order.address, job_id, me)
    jobs_root = order.address.jobs_root
    root = open_jobs_root(jobs_root)
    try:
        owner = open_owner_dir(root, jobs_root, me, create=True)
    finally:
        os.close(root)
    assert owner is not None
    build.hold_signals()  # from here on a stop request is recorded, not fatal
    try:
        files = create_job_dir(owner, f"{jobs_root.rstrip('/')}/{me.name}", job_id, web_group())
    finally:
        os.close(owner)
    try:
        return build.run(order, files, me)
    finally:
        files.close()


def run_address_mode(mode: str, job_id: int, stdin: BinaryIO, me: Identity) -> int:
    try:
        address = JobAddress.from_json(read_stdin(stdin))
    except (InvalidOrder, TypeError, AttributeError, ValueError) as exc:
        raise Refused(f"invalid job address: {exc}") from None
    _check_address(address, job_id, me)
    return control.cancel(address, me) if mode == "cancel" else control.purge(address, me)


def main(argv: list[str], stdin: BinaryIO | None = None) -> int:
    stdin = stdin or sys.stdin.buffer
    os.umask(RUNNER_UMASK)
    _not_dumpable()
    _raise_open_file_limit()
    try:
        mode, job_id = parse_args(argv)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        sys.stderr.write(USAGE)
        return 2
    try:
        me = whoami()
        check_caller(me)
        if mode == "build":
            assert job_id is not None
            return run_build(job_id, stdin, me)
        if mode in ("cancel", "purge"):
            assert job_id is not None
            return run_address_mode(mode, job_id, stdin, me)
        if mode == "submit":
            assert job_id is not None
            return slurm.run_submit(job_id, read_stdin(stdin), me, _check_address)
        if mode == "slurm-cancel":
            assert job_id is not None
            return slurm.run_cancel(job_id, read_stdin(stdin), me, _check_address)
        if mode == "slurm-jobs":
            return slurm.list_jobs()
        if mode == "check-login":
            return account.check_login(me, stdin)
        if mode == "store-token":
            return account.store_token(me, stdin)
        return account.has_token(me)
    except Refused as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.code
    except (OSError, RecursionError, MemoryError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


def _not_dumpable() -> None:
    """The engineer must not ptrace the runner (and so take its launch-log descriptor or the
    order): the build's own programs, started with exec, are theirs to debug as usual."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _raise_open_file_limit() -> None:
    """Walking a deep tree holds a descriptor per level: allow as many as the system lets us."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
