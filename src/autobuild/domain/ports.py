"""The ports: what the core needs from the outside world, as typing.Protocols."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

from .artifacts import ArtifactInfo
from .jobs import Job, JobStatus


class JobRepository(Protocol):
    """Stores jobs. ``add`` assigns the id."""

    def add(self, job: Job) -> Job: ...

    def get(self, job_id: int) -> Job | None: ...

    def save(self, job: Job) -> None: ...

    def list_page(self, limit: int, offset: int) -> list[Job]:
        """Jobs newest first."""
        ...

    def count(self) -> int: ...

    def with_status(self, *statuses: JobStatus) -> list[Job]:
        """Jobs in any of ``statuses``, oldest first (queue order)."""
        ...


class Authenticator(Protocol):
    def authenticate(self, username: str, password: str) -> bool:
        """True only for a user who may use the service and gave the right password."""
        ...


class BuildProcess(Protocol):
    """A launched runner process."""

    pid: int
    # When it started (on Linux: clock ticks since boot); with the pid it tells the process
    # apart from a later one that got the same pid. None when it could not be read.
    start_time: int | None

    def poll(self) -> int | None:
        """The exit code once the process has ended, else None. Never blocks."""
        ...

    def error_output(self) -> str:
        """The tail of what the process printed outside the build log (e.g. sudo's refusal)."""
        ...


class BuildRunner(Protocol):
    """Starts and stops builds. Narrow on purpose: another scheduler (Slurm...) fits behind it."""

    def launch(self, job: Job) -> BuildProcess:
        """Start the build of ``job`` as its owner; raises RunnerError if it cannot start."""
        ...

    def cancel(self, job: Job) -> None:
        """Ask the build of ``job`` to stop (it still writes its status when it ends)."""
        ...

    def probe(self, job: Job) -> bool:
        """True while the process that runs ``job`` is alive (used after a service restart)."""
        ...

    def purge(self, job: Job) -> None:
        """Delete, as the owner, what the build wrote in the job directory of the ended ``job``
        (logs, artifacts, workspace); waits until done. Raises RunnerError if it could not."""
        ...


class Administrators(Protocol):
    """Who administers the service (may cancel anyone's build)."""

    def is_admin(self, username: str) -> bool: ...


class RunnerError(Exception):
    """The runner could not be started or refused the request; the message is fit to show."""


class TokenStore(Protocol):
    """Each user's GitLab token, kept in the user's own home and never read back by the service."""

    def store(self, username: str, token: str) -> None: ...

    def has_token(self, username: str) -> bool: ...


@dataclass(frozen=True)
class RunnerStatus:
    """What the runner wrote in ``status.json`` when it ended."""

    status: str
    exit_code: int | None
    finished_at: datetime | None


class JobFiles(Protocol):
    """The job directory: parameters, log, status and artifacts on disk."""

    def create(self, job: Job, artifact_patterns: list[str],
               build_settings: Mapping[str, str] | None = None) -> None:
        """Make the job's directory and write its parameters for the runner, with the
        service's ``build_settings`` (KEY -> value) in ``build-settings``."""
        ...

    def read_log(self, job_id: int, offset: int, limit: int) -> bytes:
        """Up to ``limit`` bytes of ``build.log`` from byte ``offset`` (b"" if none yet)."""
        ...

    def log_size(self, job_id: int) -> int: ...

    def read_status(self, job_id: int) -> RunnerStatus | None:
        """The runner's final status, or None while there is none (or it is unreadable)."""
        ...

    def read_runner_pid(self, job_id: int) -> int | None:
        """The runner's own pid from ``runner.pid`` (written as it starts), or None."""
        ...

    def read_task_logs(self, job_id: int) -> dict[str, str]:
        """The logs of failed tasks the runner saved in ``logs/failed-tasks/``: name -> the
        end of the file (at most 8 KiB, from a line start when cut), decoded; {} if none."""
        ...

    def list_artifacts(self, job_id: int) -> list[ArtifactInfo]: ...

    def open_artifact(self, job_id: int, name: str) -> tuple[BinaryIO, ArtifactInfo]:
        """Open a regular file in the job's artifacts dir; raises ArtifactNotFound otherwise."""
        ...

    def usage(self, job_id: int) -> int:
        """Bytes the job directory takes on disk (symlinks not followed; 0 if it is gone)."""
        ...

    def remove(self, job_id: int) -> None:
        """Delete what is left of the job directory once the runner purged its part (the
        service's own files) and the directory itself; nothing if it is gone. Raises OSError
        when something stays."""
        ...


class DiskSpace(Protocol):
    def free_bytes(self, path: str) -> int:
        """Bytes available to unprivileged users on the filesystem holding ``path``."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC now."""
        ...


class JobEvents(Protocol):
    """What the core asks of plugins (the typed facade over the plugin manager)."""

    def artifact_patterns(self, job: Job) -> list[str]: ...

    def job_status_changed(self, job: Job, old: JobStatus, new: JobStatus) -> None: ...
