"""BuildRunner on this host: ``sudo -n -u <owner> run_job.sh build <id>``, the order on stdin.

How the service knows a runner is alive, without pids: before launching it takes an exclusive
lock on the job's launch log (``<data>/launch/<id>.log``, a file only the service can write)
and hands that open file to the runner as stdout/stderr. The lock lives as long as any process
holds that open file: the runner (and sudo) until they exit. So:
- a waiter thread blocked on the same lock wakes the moment the runner exits (ends are seen
  at once, no polling);
- after a service restart, a lock still held means the runner still works; a free lock with
  no ``status.json`` means it is gone (or never began: then it made no job directory);
- the launch log holds what sudo and the runner said before the build log existed.
Everything of the build is read through BuildTree (owner-written files only). Jobs started by
the service before this layout (``runner_ref`` ``pid:<pid>:<start time>``) are followed
through /proc until they end.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from autobuild.domain import layout
from autobuild.domain.jobs import TERMINAL_STATUSES, Job, JobStatus
from autobuild.domain.orders import (
    DEFAULT_ARTIFACT_PATTERNS,
    BuildOrder,
    BuildSettings,
    ClusterRequest,
    JobAddress,
)
from autobuild.domain.ports import (
    Checkpoints,
    Ended,
    Lost,
    NoCheckpoints,
    Running,
    RunnerError,
    RunnerState,
)

from . import procfs
from .build_tree import BuildTree
from .sudo_shim import runner_command, runner_env

log = logging.getLogger(__name__)

RUNNER_REF = "local"
LEGACY_REF_PREFIX = "pid:"
LAUNCH_LOCKED = "launch.locked"  # checkpoint: the lock is taken, the runner not yet started
ERROR_TAIL_CHARS = 2000
CANCEL_TIMEOUT = 15.0  # the cancel helper only signals; the runner escalates by itself
PURGE_TIMEOUT = 3600  # seconds; a kept Yocto workspace holds millions of files
EXIT_NOT_RUNNING = 3

_LOG_FLAGS = os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


class LocalBuildRunner:
    """Implements BuildRunner for builds on the service's own host."""

    queues = False  # a launched build runs at once: the service decides how many at a time

    def __init__(self, runner_path: Path, jobs_root: Path, launch_dir: Path,
                 use_sudo: bool = True, checkpoints: Checkpoints | None = None) -> None:
        self._runner_path = Path(runner_path)
        self._jobs_root = Path(jobs_root)
        self._launch_dir = Path(launch_dir)
        self._use_sudo = use_sudo
        self._checkpoints = checkpoints or NoCheckpoints()
        self._tree = BuildTree(self._jobs_root)
        self._shim = RunnerShim(self._runner_path, self._jobs_root, use_sudo)
        self._callbacks: list[Callable[[], None]] = []
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._waiting: set[int] = set()
        self._guard = threading.Lock()

    # --- BuildRunner ---------------------------------------------------------------------------

    def on_change(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def launch(self, job: Job) -> str:
        """Start the build of ``job``; raises RunnerError when it cannot be started."""
        try:
            order = self._order(job)
        except ValueError as exc:  # stored under older, looser rules: it cannot run now
            raise RunnerError(f"its parameters are no longer accepted: {exc}") from None
        try:
            self._launch_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
            fd = os.open(self._launch_log(job.id), _LOG_FLAGS | os.O_CREAT, 0o640)
        except OSError as exc:
            raise RunnerError(f"cannot write the launch log in {self._launch_dir}: "
                              f"{exc.strerror or exc}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunnerError(f"a runner of job {job.id} is already at work") from None
            self._checkpoints.reached(LAUNCH_LOCKED)
            command = runner_command(self._runner_path, job.owner, ["build", str(job.id)],
                                     self._use_sudo)
            try:
                popen = subprocess.Popen(
                    command, stdin=subprocess.PIPE, stdout=fd, stderr=fd,
                    start_new_session=True, close_fds=True, env=runner_env(self._use_sudo))
            except OSError as exc:
                raise RunnerError(f"cannot start the build runner {command[0]}: "
                                  f"{exc.strerror or exc}") from exc
        finally:
            os.close(fd)  # the runner's copy keeps the open file, and so the lock
        assert popen.stdin is not None
        try:
            popen.stdin.write(order.to_json().encode())
            popen.stdin.close()
        except OSError:
            pass  # it ended at once; its launch log says why
        log.info("job %s: runner started as %s (pid %s)", job.id, job.owner, popen.pid)
        with self._guard:
            self._children[job.id] = popen
        self._wait_in_background(job.id)
        return RUNNER_REF

    def state(self, job: Job) -> RunnerState:
        if job.runner_ref and job.runner_ref.startswith(LEGACY_REF_PREFIX):
            return self._legacy_state(job)
        if self._runner_holds_lock(job.id):
            self._wait_in_background(job.id)
            return Running(RUNNER_REF)
        # Checked after the lock: a runner writes its status before it lets go of the lock.
        ended = self._read_status(job)
        if ended is not None:
            return ended
        said = self._launch_log_tail(job.id)
        with self._tree.open_dir(job.owner, job.id) as job_dir:
            started = job_dir is not None
        if started:
            return Lost("the runner stopped without saying how the build ended (it was "
                        "killed, or the machine restarted)" + (f": {said}" if said else ""),
                        started=True)
        return Lost(said or "the runner did not start", started=False)

    def cancel(self, job: Job) -> None:
        """Ask the owner's runner to stop the build; it answers at once and escalates by
        itself (SIGINT, then SIGTERM, then SIGKILL). Raises RunnerError if it could not."""
        result = self._run_helper(job, "cancel", CANCEL_TIMEOUT)
        if result.returncode not in (0, EXIT_NOT_RUNNING):
            raise RunnerError(f"the build could not be cancelled: {said(result)}")

    def purge(self, job: Job) -> None:
        """Delete the build's directory as its owner, then the service's launch log."""
        self._shim.purge(job, self._launch_log(job.id), self._tree)

    # --- helpers ------------------------------------------------------------------------------

    def _order(self, job: Job) -> BuildOrder:
        return build_order(job, self._jobs_root)

    def _launch_log(self, job_id: int) -> Path:
        return self._launch_dir / layout.launch_log_name(job_id)

    def _runner_holds_lock(self, job_id: int) -> bool:
        try:
            fd = os.open(self._launch_log(job_id), _LOG_FLAGS)
        except OSError:
            return False
        try:
            # Shared: a waiter (ours, or an earlier service process's still going away) holds
            # the lock shared for a moment after the runner let go, and must not read as it.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also lets go of the lock, if we got it
        return False

    def _wait_in_background(self, job_id: int) -> None:
        with self._guard:
            if job_id in self._waiting:
                return
            self._waiting.add(job_id)
        threading.Thread(target=self._wait_for_end, args=(job_id,), daemon=True,
                         name=f"runner-{job_id}").start()

    def _wait_for_end(self, job_id: int) -> None:
        """Block until the runner of ``job_id`` lets go of the launch log, then tell."""
        try:
            fd = os.open(self._launch_log(job_id), _LOG_FLAGS)
        except OSError:
            fd = None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)  # returns when the runner has exited
            except OSError as exc:  # pragma: no cover - flock on a local file does not fail
                log.warning("job %s: waiting for the runner failed: %s", job_id, exc)
            finally:
                os.close(fd)
        with self._guard:
            self._waiting.discard(job_id)
            popen = self._children.pop(job_id, None)
        if popen is not None:
            try:
                popen.wait(timeout=10)  # reap our child (sudo), which has let go too
            except subprocess.TimeoutExpired:
                log.warning("job %s: the runner's sudo did not exit", job_id)
        for callback in list(self._callbacks):
            try:
                callback()
            except Exception:  # a broken listener must not stop the others
                log.exception("job %s: change callback failed", job_id)

    def _read_status(self, job: Job) -> Ended | None:
        raw = self._tree.read_small(job.owner, job.id, layout.STATUS,
                                    limit=layout.MAX_STATUS_BYTES)
        return None if raw is None else parse_status(raw)

    def _launch_log_tail(self, job_id: int) -> str:
        try:
            fd = os.open(self._launch_log(job_id), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return ""
        try:
            size = os.fstat(fd).st_size
            data = os.pread(fd, ERROR_TAIL_CHARS * 4, max(0, size - ERROR_TAIL_CHARS * 4))
        finally:
            os.close(fd)
        return printable(data.decode("utf-8", errors="replace"))[-ERROR_TAIL_CHARS:].strip()

    def _legacy_state(self, job: Job) -> RunnerState:
        """A build the service started before the per-owner layout: its runner is found
        through /proc (pid + start time), its status in its (moved) directory."""
        ended = self._read_status(job)
        if ended is not None:
            return ended
        try:
            _, pid, start = job.runner_ref.split(":")  # type: ignore[union-attr]
            alive = procfs.is_alive(int(pid), int(start) if start else None)
        except ValueError:
            alive = False
        if alive:
            return Running(job.runner_ref)
        return Lost("the runner process is gone and left no status: it was killed, or the "
                    "machine restarted, while the service was not watching", started=True)

    def _run_helper(self, job: Job, mode: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return self._shim.run(job, mode, timeout)


def build_order(job: Job, jobs_root: Path, cluster: ClusterRequest | None = None) -> BuildOrder:
    """The order the runner gets for ``job`` (``cluster``: to be handed to a batch cluster).
    Raises ValueError (InvalidOrder) when the stored parameters are no longer accepted."""
    address = JobAddress(job_id=job.id, owner=job.owner, jobs_root=str(jobs_root))
    return BuildOrder(address=address, request=job.request(),
                      artifact_patterns=job.artifact_patterns or DEFAULT_ARTIFACT_PATTERNS,
                      settings=job.settings or BuildSettings(), cluster=cluster)


# Runs ``run_job.sh <args...>`` as a user with ``stdin`` and a timeout in seconds (tests give
# a fake one).
ShimCall = Callable[[str, list[str], str, float], "subprocess.CompletedProcess[str]"]


class RunnerShim:
    """The runner's short modes for one job (cancel, purge, ...), run as its owner through the
    shim and waited for: the job's address, or what ``payload`` says, on their stdin."""

    def __init__(self, runner_path: Path, jobs_root: Path, use_sudo: bool,
                 call: ShimCall | None = None) -> None:
        self.runner_path, self.jobs_root, self.use_sudo = runner_path, jobs_root, use_sudo
        self.call: ShimCall = call or self._call

    def address(self, job: Job) -> JobAddress:
        return JobAddress(job_id=job.id, owner=job.owner, jobs_root=str(self.jobs_root))

    def run(self, job: Job, mode: str, timeout: float, payload: str | None = None,
            with_id: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``run_job.sh <mode> [<id>]`` as the job's owner; RunnerError if it could not
        be started or did not answer within ``timeout`` seconds."""
        stdin = self.address(job).to_json() if payload is None else payload
        return self.call(job.owner, [mode, str(job.id)] if with_id else [mode], stdin, timeout)

    def _call(self, owner: str, args: list[str], stdin: str,
              timeout: float) -> subprocess.CompletedProcess[str]:
        command = runner_command(self.runner_path, owner, args, self.use_sudo)
        try:
            return subprocess.run(command, input=stdin, capture_output=True,
                                  text=True, errors="replace", timeout=timeout,
                                  env=runner_env(self.use_sudo), start_new_session=True)
        except subprocess.TimeoutExpired:
            raise RunnerError(f"the runner did not answer within {timeout:.0f} s") from None
        except OSError as exc:
            raise RunnerError(f"cannot start the runner {command[0]}: "
                              f"{exc.strerror or exc}") from exc

    def purge(self, job: Job, launch_log: Path, tree: BuildTree, always: bool = False) -> None:
        """Delete what the build left as its owner (only if its directory exists, unless
        ``always``), then the service's launch log of it."""
        if not always:
            with tree.open_dir(job.owner, job.id) as job_dir:
                always = job_dir is not None
        if always:
            result = self.run(job, "purge", PURGE_TIMEOUT)
            if result.returncode != 0:
                raise RunnerError(f"purging job {job.id} as {job.owner} failed "
                                  f"(exit {result.returncode}): {said(result)}")
        try:
            os.unlink(launch_log)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise RunnerError(f"cannot remove {launch_log}: {exc.strerror}") from exc


def parse_status(raw: bytes) -> Ended | None:
    """The runner's ``status.json``; None unless complete, terminal and well-formed (exit
    code 0-255). Its ``finished_at`` is not used: the service records when it saw the end."""
    try:
        data = json.loads(raw)
    except ValueError:  # also covers bad UTF-8
        return None
    if not isinstance(data, dict):
        return None
    status, exit_code = data.get("status"), data.get("exit_code")
    if not isinstance(status, str) or status not in TERMINAL_STATUSES:
        return None
    # bool is an int subclass, and not an exit code; nor is a number a process cannot return
    # (the owner wrote this file: a huge one would not even fit the database).
    if type(exit_code) is not int or not 0 <= exit_code <= 255:
        return None
    return Ended(JobStatus(status), exit_code)


def printable(text: str) -> str:
    """``text`` without control characters other than newlines and tabs."""
    return "".join(ch for ch in text if ch in "\n\t" or (ord(ch) >= 0x20 and ord(ch) != 0x7F))


def said(result: subprocess.CompletedProcess[str]) -> str:
    """What a runner call said (its error, else its output), printable and bounded."""
    text = printable(result.stderr.strip() or result.stdout.strip())
    text = text.replace("run_job.sh: ", "")
    return text[-ERROR_TAIL_CHARS:] or f"exit code {result.returncode}"
