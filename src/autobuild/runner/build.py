"""``build`` mode: make the job directory, run the build in its own session, record the end.

The runner (this process) keeps its stdout/stderr (the service's launch log) open for its
whole life and gives them to nobody: the build's child gets the build log as fd 1 and 2. The
child starts only once runner.json is written and no cancel was asked for. The runner forwards
INT/TERM/HUP to the build's process group, escalates a cancel (SIGTERM after the grace period
the order says, ``settings.cancel_grace``: the service's AUTO_BUILD_CANCEL_GRACE, here or on a
cluster node alike; SIGKILL 10 s later), reaps what is left of the group, and writes
status.json last, on every exit path (a full disk and its own errors included).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time
from datetime import UTC, datetime
from types import FrameType

from autobuild.adapters.procfs import start_time
from autobuild.domain.layout import (
    CANCEL_REQUEST, RUNNER_UMASK, SPACE_RESERVE, STATUS, STEP_CANCELLING, STEP_CLEANUP,
    STEP_FINISHED, STEP_JOB, WORK_DIR, step_line,
)
from autobuild.domain.orders import BuildOrder

from .digesting import KeptDigest
from .fsops import create_file, exists, human_size, remove_tree, tree_size, write_all, write_atomically
from .jobdir import Identity, JobFiles, RunnerRecord, write_record
from .outputs import log_says_disk_full
from .procs import group_members, signal_group, signal_name
from .steps import BUILD_UMASK, BuildSteps

SPACE_RESERVE_BYTES = 64 << 10  # freed at the end so the status fits on a full disk
LOW_SPACE_BYTES = 1 << 20  # a failed build with less free than this filled the disk
KILL_AFTER_TERM = 10
LEFTOVER_WAIT = 5
POLL = 0.2
CANCEL_CODES = {signal.SIGINT: 130, signal.SIGHUP: 129, signal.SIGTERM: 143}
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_of(code: int, cancel_signal: int | None) -> tuple[str, int]:
    """SUCCESS / FAILED / CANCELLED and the exit code to record."""
    if cancel_signal is not None and code != 0:
        return "CANCELLED", CANCEL_CODES.get(cancel_signal, 143)
    return ("SUCCESS", 0) if code == 0 else ("FAILED", code)


def status_json(status: str, code: int, finished_at: str) -> bytes:
    return (json.dumps({"status": status, "exit_code": code, "finished_at": finished_at})
            + "\n").encode()


class Supervisor:
    """One build, from the fresh job directory to status.json."""

    def __init__(self, order: BuildOrder, files: JobFiles, me: Identity) -> None:
        self.order = order
        self.files = files
        self.me = me
        self.grace = order.settings.cancel_grace  # in the order: it reaches a cluster node too
        self.child: int | None = None
        self.cancel_signal: int | None = None
        self.cancel_at = 0.0
        self.term_at: float | None = None
        self.killed = False
        self.digest = KeptDigest(files.log, files.logs)

    # --- the log ------------------------------------------------------------------------

    def say(self, line: str) -> None:
        try:
            write_all(self.files.log, f"{line}\n".encode("utf-8", "replace"))
        except OSError:
            pass  # a full disk must not stop the runner from recording the end

    # --- signals --------------------------------------------------------------------------

    def on_signal(self, signum: int, _frame: FrameType | None = None) -> None:
        if self.cancel_signal is None:
            self.cancel_signal = signum
            self.cancel_at = time.monotonic()
            self.say(step_line(f"{STEP_CANCELLING}: {signal_name(signum)} received, "
                               "stopping the build"))
        if self.child is not None:
            signal_group(self.child, signum)

    def escalate(self) -> None:
        if self.cancel_signal is None or self.child is None or self.killed:
            return
        now = time.monotonic()
        if self.term_at is None and now >= self.cancel_at + self.grace:
            self.term_at = now
            self.say(step_line(f"{STEP_CANCELLING}: still running after {self.grace}s, "
                               "sending SIGTERM"))
            signal_group(self.child, signal.SIGTERM)
        elif self.term_at is not None and now >= self.term_at + KILL_AFTER_TERM:
            self.killed = True
            self.say(step_line(f"{STEP_CANCELLING}: still running, sending SIGKILL"))
            signal_group(self.child, signal.SIGKILL)

    # --- the whole run --------------------------------------------------------------------

    def run(self) -> int:
        code = 1
        try:
            self.header()
            self.reserve_space()
            code = self.start_and_wait()
        except BaseException as exc:  # noqa: BLE001 -- the status must be written anyway
            self.say(f"ERROR: the runner failed: {type(exc).__name__}: {exc}")
            if self.child is not None:
                signal_group(self.child, signal.SIGKILL)
            code = 1
        return self.finish(code)

    def header(self) -> None:
        request = self.order.request
        self.say(step_line(f"{STEP_JOB}{self.order.address.job_id} for {self.me.name} on "
                           f"{socket.gethostname()} at {utc_now()}"))
        self.say(f"    repository {request.repo_url}, ref {request.ref}, MACHINE "
                 f"{request.machine}, target {request.target}")
        if request.kas_file is not None:
            self.say(f"    kas file {request.kas_file}")

    def reserve_space(self) -> None:
        try:
            fd = create_file(self.files.job, SPACE_RESERVE)
        except OSError:
            self.say(f"WARNING: the disk holding {self.files.path} is full")
            return
        try:
            write_all(fd, bytes(SPACE_RESERVE_BYTES))
        except OSError:
            self.say(f"WARNING: the disk holding {self.files.path} is full")
        finally:
            os.close(fd)

    def start_and_wait(self) -> int:
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover -- the child, covered by the integration tests
            os.close(ready_r)
            os.close(go_w)
            self.child_main(ready_w, go_r)
        os.close(ready_w)
        os.close(go_r)
        try:
            os.read(ready_r, 1)  # the child has its own session (or died trying)
        finally:
            os.close(ready_r)
        self.child = pid
        try:
            write_record(self.files.job, RunnerRecord(
                self.order.address.job_id, os.getpid(), pid, start_time(os.getpid()) or 1))
            if exists(self.files.job, CANCEL_REQUEST):
                self.on_signal(signal.SIGINT)
            if self.cancel_signal is None:
                os.write(go_w, b"g")
        finally:
            os.close(go_w)  # without a "g" the child exits at once
        code = self.wait(pid)
        self.reap_group(pid)
        return code

    def wait(self, pid: int) -> int:
        pidfd = os.pidfd_open(pid)
        try:
            while not select.select([pidfd], [], [], POLL)[0]:
                self.escalate()
                self.digest.tick()
        finally:
            os.close(pidfd)
        _, wait_status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(wait_status)
        return 128 - code if code < 0 else code

    def reap_group(self, pgid: int) -> None:
        """Nothing the build started may outlive the runner: 5 s to end by itself, then
        SIGTERM, 5 s more, then SIGKILL. A cancelled build's leftovers get the cancel's own
        escalation (the grace period, SIGTERM, SIGKILL)."""
        if self.cancel_signal is not None:
            while group_members(pgid) and not self.killed:
                self.escalate()
                time.sleep(POLL)
        for signum in (signal.SIGTERM, signal.SIGKILL):
            deadline = time.monotonic() + LEFTOVER_WAIT
            while group_members(pgid):
                if time.monotonic() >= deadline:
                    self.say(step_line(f"Stopping leftover build processes "
                                       f"({signal_name(signum)})"))
                    signal_group(pgid, signum)
                    break
                time.sleep(POLL)
            else:
                return

    # --- the child --------------------------------------------------------------------------

    def child_main(self, ready_w: int, go_r: int) -> None:  # pragma: no cover
        code = 1
        try:
            stopping: list[int] = []
            for signum in FORWARDED:
                signal.signal(signum, lambda s, _f: stopping.append(s))
            os.setsid()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(self.files.log, 1)
            os.dup2(self.files.log, 2)
            os.close(null)
            os.umask(BUILD_UMASK)
            os.fchdir(self.files.work)
            os.write(ready_w, b"r")
            os.close(ready_w)
            if os.read(go_r, 1) != b"g":
                os._exit(130)
            os.close(go_r)
            steps = BuildSteps(self.order, self.files, self.me, self.say, lambda: bool(stopping))
            code = steps.run()
        except BaseException as exc:  # noqa: BLE001
            self.say(f"ERROR: the build failed: {type(exc).__name__}: {exc}")
            code = 1
        finally:
            os._exit(code)

    # --- the end ----------------------------------------------------------------------------

    def ran_out_of_space(self) -> bool:
        try:
            info = os.fstatvfs(self.files.job)
            if info.f_bavail * info.f_frsize < LOW_SPACE_BYTES:
                return True
        except OSError:
            pass
        try:
            return log_says_disk_full(self.files.log)
        except OSError:
            return False

    def cleanup_workspace(self, force: bool) -> None:
        if not exists(self.files.job, WORK_DIR):
            return
        if self.order.settings.keep_workspace and not force:
            self.say(f"Keeping the workspace (KEEP_WORKSPACE=1): {WORK_DIR}/ uses "
                     f"{human_size(tree_size(self.files.work))}")
            return
        self.say(step_line(STEP_CLEANUP))
        try:
            size = tree_size(self.files.work)
        except OSError:
            size = 0
        try:
            remove_tree(self.files.job, WORK_DIR)
        except OSError as exc:
            self.say(f"WARNING: could not remove all of {self.files.path}/{WORK_DIR}: {exc}")
        else:
            self.say(f"Removed {WORK_DIR}/ (the clone and build/tmp): {human_size(size)} freed")

    def finish(self, code: int) -> int:
        status, code = status_of(code, self.cancel_signal)
        for signum in FORWARDED:  # the end is recorded whatever arrives now
            signal.signal(signum, signal.SIG_IGN)
        try:
            if status == "FAILED" and self.ran_out_of_space():
                self.cleanup_workspace(force=True)  # the status must fit, and others build too
                self.say(f"ERROR: No space left on device: the disk holding {self.files.path} "
                         "filled up during this build")
            else:
                self.cleanup_workspace(force=False)
        except Exception as exc:  # noqa: BLE001
            self.say(f"WARNING: cleaning up failed: {type(exc).__name__}: {exc}")
        try:
            os.unlink(SPACE_RESERVE, dir_fd=self.files.job)
        except OSError:
            pass
        self.say(step_line(f"{STEP_FINISHED}{status} (exit {code})"))
        self.digest.finish()  # before the status: a finished build's digest is whole
        try:
            write_atomically(self.files.job, STATUS, status_json(status, code, utc_now()))
        except OSError as exc:
            print(f"run_job.sh: could not write {STATUS} of job {self.order.address.job_id}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
        return code


_early: list[int] = []


def hold_signals() -> None:
    """Until the job directory exists, a stop request is only remembered."""
    for signum in FORWARDED:
        signal.signal(signum, lambda s, _f: _early.append(s))


def run(order: BuildOrder, files: JobFiles, me: Identity) -> int:
    os.umask(RUNNER_UMASK)
    supervisor = Supervisor(order, files, me)
    for signum in FORWARDED:
        signal.signal(signum, supervisor.on_signal)
    if _early:
        supervisor.on_signal(_early[0])
    return supervisor.run()
