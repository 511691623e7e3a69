"""BuildRunner on ``sudo -n -u <owner> run_job.sh``: every build runs as its owner's Linux user."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from autobuild.domain.jobs import Job
from autobuild.domain.ports import RunnerError

from . import procfs

log = logging.getLogger(__name__)

ERROR_TAIL_CHARS = 2000
PURGE_TIMEOUT = 3600  # seconds; a kept Yocto workspace holds millions of files
# Without sudo (tests, a developer machine) the runner inherits these from the service;
# with sudo, env_reset drops them and the runner's production defaults apply.
DEV_PASSTHROUGH = ("AUTO_BUILD_PYTHON", "AUTO_BUILD_CANCEL_GRACE", "AUTO_BUILD_CACHE_DIR",
                   "GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "SSL_CERT_FILE")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def runner_command(runner_path: Path, user: str, args: list[str], use_sudo: bool) -> list[str]:
    """The argv that runs ``run_job.sh args...`` as ``user`` (as the current user without sudo)."""
    if use_sudo:
        return ["sudo", "-n", "-u", user, "--", str(runner_path), *args]
    return [str(runner_path), *args]


def runner_env(jobs_root: Path | None, use_sudo: bool) -> dict[str, str]:
    """The small environment the runner is started with (nothing of the service leaks in)."""
    env = {"PATH": os.environ.get("PATH") or _DEFAULT_PATH, "LANG": "C.UTF-8"}
    if not use_sudo:
        if jobs_root is not None:
            env["AUTO_BUILD_JOBS_ROOT"] = str(jobs_root)
        env.update({k: os.environ[k] for k in DEV_PASSTHROUGH if os.environ.get(k)})
    return env


def _tail(path: Path, limit: int = ERROR_TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - limit * 4))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return text[-limit:]


class RunnerProcess:
    """A launched runner (the sudo process, or run_job.sh itself without sudo)."""

    def __init__(self, popen: subprocess.Popen[bytes], launch_log: Path) -> None:
        self._popen = popen
        self._launch_log = launch_log
        self.pid = popen.pid
        # Read at once: with the pid it identifies this process after a service restart.
        self.start_time = procfs.start_time(popen.pid)

    def poll(self) -> int | None:
        """The exit code once the process has ended, else None. Never blocks."""
        return self._popen.poll()

    def error_output(self) -> str:
        """The last (at most 2000) characters the process printed to ``launch.log``."""
        return _tail(self._launch_log)


class SudoBuildRunner:
    """Starts builds as ``sudo -n -u <owner> <runner> <id> <url> <ref> <machine> <target>``.

    The runner is started in its own session with stdin on /dev/null and its output in
    ``<job_dir>/launch.log``, so it outlives a service restart and never holds a pipe to it;
    the build itself logs to ``logs/build.log`` and ends by writing ``status.json``.
    """

    def __init__(self, runner_path: Path, jobs_root: Path, use_sudo: bool = True) -> None:
        self._runner_path = Path(runner_path)
        self._jobs_root = Path(jobs_root)
        self._use_sudo = use_sudo
        self._cancels: list[subprocess.Popen[bytes]] = []

    def _command(self, job: Job, args: list[str]) -> list[str]:
        return runner_command(self._runner_path, job.owner, args, self._use_sudo)

    def _open_launch_log(self, job: Job) -> int:
        path = self._jobs_root / str(job.id) / "launch.log"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(path, flags, 0o640)

    def _start(self, job: Job, args: list[str]) -> subprocess.Popen[bytes]:
        fd = self._open_launch_log(job)
        try:
            return subprocess.Popen(
                self._command(job, args), stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                start_new_session=True, close_fds=True,
                env=runner_env(self._jobs_root, self._use_sudo))
        finally:
            os.close(fd)

    def launch(self, job: Job) -> RunnerProcess:
        """Start the build of ``job``; raises RunnerError when it cannot be started."""
        if job.id is None:
            raise RunnerError("the job has no id yet")
        args = [str(job.id), job.repo_url, job.ref, job.machine, job.target]
        try:
            popen = self._start(job, args)
        except OSError as exc:
            raise RunnerError(
                f"cannot start the build runner {self._command(job, [])[0]}: "
                f"{exc.strerror or exc}") from exc
        log.info("job %s: runner started as %s (pid %s)", job.id, job.owner, popen.pid)
        return RunnerProcess(popen, self._jobs_root / str(job.id) / "launch.log")

    def cancel(self, job: Job) -> None:
        """Run ``run_job.sh --cancel <id>`` as the owner, without waiting for it to finish.

        The runner escalates SIGINT -> SIGTERM -> SIGKILL over its grace period and the
        build then records CANCELLED; the caller learns the end through poll()/status.json.
        """
        self._cancels = [p for p in self._cancels if p.poll() is None]  # reap finished ones
        try:
            self._cancels.append(self._start(job, ["--cancel", str(job.id)]))
        except OSError as exc:
            raise RunnerError(f"cannot ask the runner to cancel job {job.id}: "
                              f"{exc.strerror or exc}") from exc

    def probe(self, job: Job) -> bool:
        """True while the process recorded for ``job`` runs: ``job.pid`` exists, is not a
        zombie, and started at ``job.pid_start_time`` when that is known (pids get reused)."""
        return procfs.is_alive(job.pid, job.pid_start_time)

    def purge(self, job: Job) -> None:
        """Run ``run_job.sh --purge <id>`` as the owner and wait for it (deleting a workspace
        can take minutes); raises RunnerError with what the runner said when it fails."""
        try:
            result = subprocess.run(
                self._command(job, ["--purge", str(job.id)]), stdin=subprocess.DEVNULL,
                capture_output=True, text=True, errors="replace", timeout=PURGE_TIMEOUT,
                env=runner_env(self._jobs_root, self._use_sudo))
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RunnerError(f"cannot purge job {job.id} as {job.owner}: {exc}") from exc
        if result.returncode != 0:
            said = (result.stderr.strip() or result.stdout.strip())[-ERROR_TAIL_CHARS:]
            raise RunnerError(f"purging job {job.id} as {job.owner} failed "
                              f"(exit {result.returncode}): {said}")
