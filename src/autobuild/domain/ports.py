"""The ports: what the core needs from the outside world, as typing.Protocols."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

from .artifacts import ArtifactInfo, ArtifactList
from .jobs import Job, JobStatus, Submission


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a list shows; None matches any. ``text`` is a case-insensitive substring of
    the repository URL, ref, MACHINE or target; ``commit`` the start of the commit a job
    built (provenance.commit_prefix: lower-case hex)."""

    owner: str | None = None
    status: JobStatus | None = None
    text: str | None = None
    commit: str | None = None


@dataclass(frozen=True)
class RecentBuild:
    """What a build was asked to build, as stored (not validated again): for suggestions."""

    id: int
    owner: str
    repo_url: str
    ref: str
    machine: str
    target: str
    kas_file: str | None = None


class JobRepository(Protocol):
    """Stores jobs. ``add`` stores a submission whole and assigns the id."""

    def add(self, submission: Submission) -> Job: ...

    def get(self, job_id: int) -> Job | None: ...

    def save(self, job: Job) -> None: ...

    def list_page(self, limit: int, offset: int) -> list[Job]:
        """Jobs newest first."""
        ...

    def count(self) -> int: ...

    def list_keyset(self, where: JobFilter, limit: int, before: int | None = None,
                    after: int | None = None) -> list[Job]:
        """Up to ``limit`` jobs matching ``where``, newest first: those with an id below
        ``before`` (the newest ones when neither is given), or the ``limit`` oldest with an id
        above ``after``. Costs the same at any depth (no offset)."""
        ...

    def with_status(self, *statuses: JobStatus) -> list[Job]:
        """Jobs in any of ``statuses``, oldest first (queue order)."""
        ...

    def recent_builds(self, owner: str | None, limit: int) -> list[RecentBuild]:
        """The parameters of the ``limit`` newest builds (of ``owner``'s only, if given),
        newest first; reads no more rows than that."""
        ...


class Authenticator(Protocol):
    def authenticate(self, username: str, password: str) -> bool:
        """True only for a user who may use the service and gave the right password."""
        ...


@dataclass(frozen=True)
class Running:
    """The build's runner is at work (``runner_ref``: how to find it, when the adapter had to
    find it without one; ``where``: the host it runs on, when it is not this one)."""

    runner_ref: str | None = None
    where: str | None = None


@dataclass(frozen=True)
class Waiting:
    """The build was handed to a batch scheduler (a cluster) that has not started it yet:
    ``reason`` is the scheduler's, fit to show (``runner_ref`` as for Running)."""

    reason: str
    runner_ref: str | None = None


@dataclass(frozen=True)
class Ended:
    """The runner finished and said how: ``status`` is SUCCESS, FAILED or CANCELLED."""

    status: JobStatus
    exit_code: int


@dataclass(frozen=True)
class Lost:
    """No runner works on the build and it left no end: ``started`` says whether it began
    (False: it never did, so running it now runs it exactly once). ``reason`` is fit to show."""

    reason: str
    started: bool


RunnerState = Running | Waiting | Ended | Lost


class BuildRunner(Protocol):
    """Runs builds as their owners, wherever the builds run (this host, a cluster...).

    It speaks of jobs only: how it finds a build again (processes, files, a scheduler's job
    id) is its own business, kept in ``Job.runner_ref``.

    ``queues``: False when a launched build runs at once (this host: the service decides how
    many run at a time); True when launch hands it to a batch scheduler with a queue of its
    own (a cluster): the build then waits there (state Waiting) until the scheduler starts
    it, and how many run at once is the scheduler's business."""

    queues: bool

    def launch(self, job: Job) -> str | None:
        """Start the build of ``job`` as its owner with the parameters stored in it; returns
        the reference to keep in ``job.runner_ref``. Raises RunnerError if it cannot start."""
        ...

    def state(self, job: Job) -> RunnerState:
        """Where the build of ``job`` is now. Never blocks on anything a build wrote."""
        ...

    def cancel(self, job: Job) -> None:
        """Ask the build of ``job`` to stop; it then ends CANCELLED. Raises RunnerError when
        the request did not reach it (the build then goes on)."""
        ...

    def purge(self, job: Job) -> None:
        """Delete, as the owner, everything the ended build of ``job`` left (logs, artifacts,
        workspace, and the runner's own records of it); waits until done. Raises
        RunnerError if it could not."""
        ...

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from any thread) as soon as a build may have ended."""
        ...


class Administrators(Protocol):
    """Who administers the service (may cancel anyone's build, revoke anyone's API token)."""

    def is_admin(self, username: str) -> bool: ...


class StorageFull(Exception):
    """The service's storage is full: nothing was stored; the message is fit to show."""


class RunnerError(Exception):
    """The runner could not be started or refused the request; the message is fit to show."""


class TokenStore(Protocol):
    """Each user's GitLab token, kept in the user's own home and never read back by the service."""

    def store(self, username: str, token: str) -> None: ...

    def has_token(self, username: str) -> bool: ...


class JobFiles(Protocol):
    """What a build left for people to read: its log, the logs of failed tasks, its
    artifacts. Read-only: only the build writes them."""

    def read_log(self, job: Job, offset: int, limit: int) -> bytes:
        """Up to ``limit`` bytes of the build log from byte ``offset`` (b"" if none yet)."""
        ...

    def log_size(self, job: Job) -> int: ...

    def read_digest(self, job: Job, limit: int) -> bytes | None:
        """The runner's digest of the log (layout.DIGEST_PATH) if it is at most ``limit``
        bytes; None when there is none (a build from before digests, or none yet)."""
        ...

    def read_task_logs(self, job: Job) -> dict[str, str]:
        """The logs of failed tasks the runner saved: name -> the end of the file (at most
        8 KiB, from a line start when cut), decoded; {} if none."""
        ...

    def list_artifacts(self, job: Job) -> ArtifactList:
        """The job's artifacts by name, at most MAX_ARTIFACTS_LISTED (the rest counted)."""
        ...

    def open_artifact(self, job: Job, name: str) -> tuple[BinaryIO, ArtifactInfo]:
        """Open a regular file among the job's artifacts; raises ArtifactNotFound otherwise."""
        ...

    def open_log(self, job: Job) -> tuple[BinaryIO, int]:
        """The open build log and its size then; raises LogNotFound when there is none."""
        ...

    def usage(self, job: Job) -> int:
        """Bytes the build's files take on disk (links not followed; 0 if they are gone)."""
        ...

    def read_buildhistory(self, job: Job, name: str, limit: int) -> bytes | None:
        """The buildhistory file ``name`` (one of layout.BUILDHISTORY_IMAGE_FILES) the runner
        kept of the built image, if it is at most ``limit`` bytes; None when there is none."""
        ...

    def read_timing(self, job: Job, limit: int) -> bytes | None:
        """The condensed buildstats (layout.TIMING): None when there is none; of a bigger
        file only its first ``limit`` + 1 bytes (so the caller sees it is too big)."""
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


class Checkpoints(Protocol):
    """Named steps of submitting and starting a build (see commands.py and supervision.py).
    Production does nothing there; tests stop the service at one to prove that no step
    leaves a job half made."""

    def reached(self, name: str) -> None: ...


class NoCheckpoints:
    def reached(self, name: str) -> None:
        return None


@dataclass(frozen=True)
class StoredSession:
    """A signed-in session as stored: ``id`` is the random value the cookie carries."""

    id: str
    user: str
    csrf: str
    created_at: datetime
    last_seen_at: datetime


class SessionStore(Protocol):
    """Signed-in sessions, kept by the service (not in the cookie), so they can be ended."""

    def add(self, session: StoredSession) -> None: ...

    def get(self, session_id: str) -> StoredSession | None: ...

    def touch(self, session_id: str, moment: datetime) -> None:
        """Record that the session was used at ``moment``."""
        ...

    def delete(self, session_id: str) -> None: ...

    def delete_user(self, user: str) -> int:
        """End every session of ``user``; returns how many there were."""
        ...

    def delete_unused_since(self, moment: datetime) -> int:
        """End every session created or last used before ``moment``; returns how many."""
        ...


@dataclass(frozen=True)
class StoredApiToken:
    """A personal API token as stored: never the token itself, only its sha256 (``digest``,
    hex) and ``id``, the first characters after the prefix (not secret: shown in Settings)."""

    id: str
    owner: str
    name: str
    digest: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiTokenStore(Protocol):
    """Personal API tokens, kept by the service."""

    def add(self, token: StoredApiToken) -> None: ...

    def get(self, token_id: str) -> StoredApiToken | None: ...

    def of_owner(self, owner: str) -> list[StoredApiToken]:
        """Every token of ``owner`` (revoked ones too), newest first."""
        ...

    def live_at(self, moment: datetime, owner: str | None = None) -> list[StoredApiToken]:
        """Every token neither revoked nor expired at ``moment``, of ``owner`` only when
        given, else of everybody; by owner, then newest first."""
        ...

    def mark_used(self, token_id: str, moment: datetime) -> None: ...

    def revoke(self, token_id: str, owner: str, moment: datetime) -> bool:
        """Revoke ``owner``'s token ``token_id`` unless already revoked; False if there was
        none such (another owner's token is none such)."""
        ...

    def delete_ended_before(self, owner: str, moment: datetime) -> int:
        """Forget ``owner``'s tokens revoked or expired before ``moment``; returns how many."""
        ...


class Members(Protocol):
    """Who may use the service now (the users group)."""

    def is_member(self, username: str) -> bool:
        """True while ``username`` may use the service; may lag a change by a short, fixed
        time (a cache), never longer."""
        ...
