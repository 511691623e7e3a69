"""Hand-written fakes of the ports: they keep state, and tests assert on that state."""

from __future__ import annotations

import copy
import dataclasses
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from autobuild.domain.artifacts import (
    ArtifactInfo, ArtifactList, ArtifactNotFound, artifact_list, is_plain_name,
)
from autobuild.domain.commands import JobCommands
from autobuild.domain.jobs import Job, JobStatus, Submission
from autobuild.domain.logs import LogNotFound
from autobuild.domain.permissions import Permissions
from autobuild.domain.ports import (
    Ended,
    JobFilter,
    Lost,
    RecentBuild,
    Running,
    RunnerError,
    RunnerState,
    StoredApiToken,
    StoredSession,
    Waiting,
)
from autobuild.domain.queries import JobQueries
from autobuild.domain.supervision import Supervisor


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class FakeJobRepository:
    def __init__(self) -> None:
        self.rows: dict[int, Job] = {}
        self._next_id = 1
        self.fail_add: Exception | None = None  # raised by add (a full disk...), nothing stored

    def add(self, submission: Submission) -> Job:
        if self.fail_add is not None:
            raise self.fail_add
        job = Job.from_submission(self._next_id, submission)
        self._next_id += 1
        self.rows[job.id] = copy.deepcopy(job)
        return job

    def get(self, job_id: int) -> Job | None:
        row = self.rows.get(job_id)
        return copy.deepcopy(row) if row else None

    def save(self, job: Job) -> None:
        assert job.id in self.rows
        self.rows[job.id] = copy.deepcopy(job)

    def list_page(self, limit: int, offset: int) -> list[Job]:
        ordered = sorted(self.rows.values(), key=lambda j: j.id, reverse=True)
        return [copy.deepcopy(j) for j in ordered[offset:offset + limit]]

    def count(self) -> int:
        return len(self.rows)

    def list_keyset(self, where: JobFilter, limit: int, before: int | None = None,
                    after: int | None = None) -> list[Job]:
        text = (where.text or "").lower()
        matching = [j for j in sorted(self.rows.values(), key=lambda j: j.id, reverse=True)
                    if where.owner in (None, j.owner) and where.status in (None, j.status)
                    and any(text in field.lower()
                            for field in (j.repo_url, j.ref, j.machine, j.target))
                    and (where.commit is None
                         or (j.commit or "").startswith(where.commit))]
        if after is not None:
            above = [j for j in matching if j.id > after]
            return [copy.deepcopy(j) for j in above[max(0, len(above) - limit):]]
        return [copy.deepcopy(j) for j in matching
                if before is None or j.id < before][:limit]

    def with_status(self, *statuses: JobStatus) -> list[Job]:
        return [copy.deepcopy(j) for j in sorted(self.rows.values(), key=lambda j: j.id)
                if j.status in statuses]

    def recent_builds(self, owner: str | None, limit: int) -> list[RecentBuild]:
        newest = sorted(self.rows.values(), key=lambda j: j.id, reverse=True)
        return [RecentBuild(j.id, j.owner, j.repo_url, j.ref, j.machine, j.target, j.kas_file)
                for j in newest if owner in (None, j.owner)][:max(0, limit)]


@dataclass
class FakeJobFiles:
    """What builds left, by job id; the methods take the job, as the port does."""

    logs: dict[int, bytes] = field(default_factory=dict)
    artifacts: dict[int, dict[str, bytes]] = field(default_factory=dict)
    task_logs: dict[int, dict[str, str]] = field(default_factory=dict)
    checksums: dict[int, dict[str, str]] = field(default_factory=dict)
    digests: dict[int, bytes] = field(default_factory=dict)
    buildhistory: dict[int, dict[str, bytes]] = field(default_factory=dict)
    timings: dict[int, bytes] = field(default_factory=dict)  # layout.TIMING
    mtime: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    def append_log(self, job_id: int, data: bytes) -> None:
        self.logs[job_id] = self.logs.get(job_id, b"") + data

    def read_log(self, job: Job, offset: int, limit: int) -> bytes:
        return self.logs.get(job.id, b"")[offset:offset + limit]

    def log_size(self, job: Job) -> int:
        return len(self.logs.get(job.id, b""))

    def read_digest(self, job: Job, limit: int) -> bytes | None:
        data = self.digests.get(job.id)
        return None if data is None or len(data) > limit else data

    def read_task_logs(self, job: Job) -> dict[str, str]:
        return dict(self.task_logs.get(job.id, {}))

    def read_timing(self, job: Job, limit: int) -> bytes | None:
        data = self.timings.get(job.id)
        return None if data is None else data[:limit + 1]

    def list_artifacts(self, job: Job) -> ArtifactList:
        sums = self.checksums.get(job.id, {})
        stored = self.artifacts.get(job.id, {})
        return artifact_list(stored, lambda name: ArtifactInfo(
            name, len(stored[name]), self.mtime, sums.get(name)))

    def usage(self, job: Job) -> int:
        return self.log_size(job) + sum(len(d) for d in self.artifacts.get(job.id, {}).values())

    def open_artifact(self, job: Job, name: str):
        files = self.artifacts.get(job.id, {})
        if not is_plain_name(name) or name not in files:
            raise ArtifactNotFound(name)
        data = files[name]
        return io.BytesIO(data), ArtifactInfo(name, len(data), self.mtime)

    def read_buildhistory(self, job: Job, name: str, limit: int) -> bytes | None:
        data = self.buildhistory.get(job.id, {}).get(name)
        return None if data is None or len(data) > limit else data

    def open_log(self, job: Job):
        if job.id not in self.logs:
            raise LogNotFound(job.id)
        return io.BytesIO(self.logs[job.id]), len(self.logs[job.id])


class FakeRunner:
    """The BuildRunner port: launches nothing; tests end builds with ``finish`` or ``lose``.
    With ``queues`` (a cluster), launched builds wait (``state`` Waiting) until ``run``."""

    queues = False

    def __init__(self, files: FakeJobFiles, clock: FakeClock) -> None:
        self.files, self.clock = files, clock
        self.states: dict[int, RunnerState] = {}  # what state() answers, by job id
        self.orders: dict[int, tuple[tuple[str, ...] | None, object]] = {}  # patterns, settings
        self.launches: list[int] = []
        self.cancelled: list[int] = []
        self.purged: list[int] = []
        self.refuse: str | None = None  # launch raises RunnerError with this
        self.refuse_cancel: str | None = None
        self.refuse_purge: str | None = None
        self.listeners: list[Callable[[], None]] = []

    def launch(self, job: Job) -> str:
        if self.refuse:
            raise RunnerError(self.refuse)
        self.launches.append(job.id)
        self.orders[job.id] = (job.artifact_patterns, job.settings)
        self.states[job.id] = Waiting("Priority") if self.queues else Running()
        return f"fake-{job.id}"

    def state(self, job: Job) -> RunnerState:
        return self.states.get(job.id, Lost("the runner did not start", started=False))

    def cancel(self, job: Job) -> None:
        if self.refuse_cancel:
            raise RunnerError(self.refuse_cancel)
        self.cancelled.append(job.id)

    def purge(self, job: Job) -> None:
        """Deletes what the build wrote (its log and artifacts); ``refuse_purge`` makes it fail."""
        if self.refuse_purge:
            raise RunnerError(self.refuse_purge)
        self.purged.append(job.id)
        self.files.logs.pop(job.id, None)
        self.files.artifacts.pop(job.id, None)

    def on_change(self, callback: Callable[[], None]) -> None:
        self.listeners.append(callback)

    def finish(self, job_id: int, exit_code: int, status: str | None = None) -> None:
        """The build ends and says how (as the runner's status.json does)."""
        final = JobStatus(status or ("SUCCESS" if exit_code == 0 else "FAILED"))
        self.states[job_id] = Ended(final, exit_code)
        for listener in self.listeners:
            listener()

    def run(self, job_id: int, where: str | None = "node1") -> None:
        """The scheduler starts the build (on ``where``)."""
        self.states[job_id] = Running(f"fake-{job_id}", where)

    def wait(self, job_id: int, reason: str) -> None:
        """The scheduler keeps the build waiting, for ``reason``."""
        self.states[job_id] = Waiting(reason)

    def lose(self, job_id: int, reason: str = "killed", started: bool = True) -> None:
        """The runner vanishes without an end (``started``: whether the build had begun)."""
        self.states[job_id] = Lost(reason, started)
        for listener in self.listeners:
            listener()


class FakeEvents:
    def __init__(self, patterns: list[str] | None = None) -> None:
        self.patterns = patterns if patterns is not None else ["*.bin", "*.mtd"]
        self.changes: list[tuple[int, JobStatus, JobStatus]] = []
        self.commits: dict[int, str | None] = {}  # the job's commit when it was last told

    def artifact_patterns(self, job: Job) -> list[str]:
        return list(self.patterns)

    def job_status_changed(self, job: Job, old: JobStatus, new: JobStatus) -> None:
        self.changes.append((job.id, old, new))  # type: ignore[arg-type]
        self.commits[job.id] = job.commit


class FakeAuthenticator:
    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.users = users if users is not None else {"alice": "alice-pw", "bob": "bob-pw"}

    def authenticate(self, username: str, password: str) -> bool:
        return self.users.get(username) == password and password != ""


class FakeTokenStore:
    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}

    def store(self, username: str, token: str) -> None:
        self.tokens[username] = token

    def has_token(self, username: str) -> bool:
        return username in self.tokens


class FakeAdministrators:
    """The Administrators port: ``admins`` holds the names of the administrators."""

    def __init__(self, admins: set[str] | None = None) -> None:
        self.admins = admins if admins is not None else set()

    def is_admin(self, username: str) -> bool:
        return username in self.admins


class FakeDiskSpace:
    """The DiskSpace port: ``free`` bytes on every path; ``asked`` records the paths."""

    def __init__(self, free: int = 10**15) -> None:
        self.free = free
        self.asked: list[str] = []

    def free_bytes(self, path: str) -> int:
        self.asked.append(path)
        return self.free


class ServiceStopped(Exception):
    """Raised by FakeCheckpoints at the chosen step: the service is gone from there on."""


class FakeCheckpoints:
    """The Checkpoints port: ``stop_at`` a step name stops the service there, once (as
    ``kill -9`` does: the exception is never caught by the core); ``passed`` lists the steps."""

    def __init__(self) -> None:
        self.stop_at: str | None = None
        self.passed: list[str] = []

    def reached(self, name: str) -> None:
        self.passed.append(name)
        if name == self.stop_at:
            self.stop_at = None
            raise ServiceStopped(name)


class FakeWorld:
    """The core wired to a fresh fake of every port; attributes are the pieces and the fakes."""

    def __init__(self, max_running: int = 1, admins: FakeAdministrators | None = None,
                 allowed_hosts: frozenset[str] = frozenset(), **supervisor_kwargs) -> None:
        self.clock = FakeClock()
        self.repo = FakeJobRepository()
        self.files = FakeJobFiles()
        self.events = FakeEvents()
        self.runner = FakeRunner(self.files, self.clock)
        self.checkpoints = FakeCheckpoints()
        self._admins, self._allowed_hosts = admins, allowed_hosts
        self._max_running, self._supervisor_kwargs = max_running, supervisor_kwargs
        self.restart()

    def restart(self, **supervisor_kwargs) -> FakeWorld:
        """The service starts again (after a crash, say): new core objects with no memory,
        over the same database, runner, build files, plugins and clock; ``supervisor_kwargs``
        change its configuration from then on (``build_settings=``...). Returns self."""
        self._supervisor_kwargs.update(supervisor_kwargs)
        lock = threading.RLock()
        self.permissions = Permissions(self._admins)
        self.queries = JobQueries(self.repo, self.files)
        self.commands = JobCommands(self.repo, self.runner, self.events, self.clock,
                                    self.permissions, lock, self._allowed_hosts,
                                    checkpoints=self.checkpoints)
        self.supervisor = Supervisor(self.repo, self.runner, self.events, self.clock, lock,
                                     max_running=self._max_running,
                                     checkpoints=self.checkpoints,
                                     **{"provenance": self.queries.provenance,
                                        **self._supervisor_kwargs})
        return self


class FakeSessionStore:
    """The SessionStore port in a dict (``rows``: id -> StoredSession)."""

    def __init__(self) -> None:
        self.rows: dict[str, StoredSession] = {}

    def add(self, session: StoredSession) -> None:
        assert session.id not in self.rows
        self.rows[session.id] = session

    def get(self, session_id: str) -> StoredSession | None:
        return self.rows.get(session_id)

    def touch(self, session_id: str, moment: datetime) -> None:
        if session_id in self.rows:
            self.rows[session_id] = dataclasses.replace(self.rows[session_id],
                                                        last_seen_at=moment)

    def delete(self, session_id: str) -> None:
        self.rows.pop(session_id, None)

    def delete_user(self, user: str) -> int:
        gone = [sid for sid, s in self.rows.items() if s.user == user]
        for sid in gone:
            del self.rows[sid]
        return len(gone)

    def delete_unused_since(self, moment: datetime) -> int:
        gone = [sid for sid, s in self.rows.items()
                if s.created_at < moment or s.last_seen_at < moment]
        for sid in gone:
            del self.rows[sid]
        return len(gone)

    def of(self, user: str) -> list[StoredSession]:
        return [s for s in self.rows.values() if s.user == user]


class FakeApiTokenStore:
    """The ApiTokenStore port in a dict (``rows``: id -> StoredApiToken)."""

    def __init__(self) -> None:
        self.rows: dict[str, StoredApiToken] = {}
        self.writes = 0  # every add, mark_used and revoke

    def add(self, token: StoredApiToken) -> None:
        assert token.id not in self.rows
        self.rows[token.id] = token
        self.writes += 1

    def get(self, token_id: str) -> StoredApiToken | None:
        return self.rows.get(token_id)

    def of_owner(self, owner: str) -> list[StoredApiToken]:
        mine = [t for t in self.rows.values() if t.owner == owner]
        return sorted(mine, key=lambda t: t.created_at, reverse=True)

    def live_at(self, moment: datetime, owner: str | None = None) -> list[StoredApiToken]:
        live = [t for t in self.rows.values() if (owner is None or t.owner == owner)
                and t.revoked_at is None and (t.expires_at is None or t.expires_at > moment)]
        by_id = sorted(live, key=lambda t: t.id)  # stable sorts: owner, newest first, id
        newest_first = sorted(by_id, key=lambda t: t.created_at, reverse=True)
        return sorted(newest_first, key=lambda t: t.owner)

    def mark_used(self, token_id: str, moment: datetime) -> None:
        self.rows[token_id] = dataclasses.replace(self.rows[token_id], last_used_at=moment)
        self.writes += 1

    def revoke(self, token_id: str, owner: str, moment: datetime) -> bool:
        token = self.rows.get(token_id)
        if token is None or token.owner != owner or token.revoked_at is not None:
            return False
        self.rows[token_id] = dataclasses.replace(token, revoked_at=moment)
        self.writes += 1
        return True

    def delete_ended_before(self, owner: str, moment: datetime) -> int:
        gone = [t.id for t in self.rows.values() if t.owner == owner and (
            (t.revoked_at is not None and t.revoked_at < moment)
            or (t.expires_at is not None and t.expires_at < moment))]
        for token_id in gone:
            del self.rows[token_id]
        return len(gone)


class FakeMembers:
    """The Members port: ``members`` are the users group (no cache: changes apply at once)."""

    def __init__(self, members: set[str] | None = None) -> None:
        self.members = members if members is not None else {"alice", "bob"}

    def is_member(self, username: str) -> bool:
        return username in self.members


class FakeTimer:
    """The login pacer's Timer: ``now`` only moves when someone sleeps or calls ``advance``;
    ``slept`` lists every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TimedAuthenticator(FakeAuthenticator):
    """A FakeAuthenticator that takes time on ``timer`` as sudo + PAM do: ``fail_seconds``
    for a member's wrong password (pam_unix's failure delay), ``quick_seconds`` otherwise;
    ``members`` are the users sudo lets through (others are refused at once)."""

    def __init__(self, timer: FakeTimer, members: set[str], users: dict[str, str] | None = None,
                 fail_seconds: float = 2.0, quick_seconds: float = 0.01,
                 sleep: Callable[[float], None] | None = None) -> None:
        super().__init__(users)
        self.timer, self.members = timer, members
        self.fail_seconds, self.quick_seconds = fail_seconds, quick_seconds
        self.sleep = sleep  # also really sleep (time.sleep), for measurements
        self.calls: list[str] = []

    def authenticate(self, username: str, password: str) -> bool:
        self.calls.append(username)
        ok = super().authenticate(username, password) and username in self.members
        took = self.fail_seconds if username in self.members and not ok else self.quick_seconds
        self.timer.advance(took)
        if self.sleep is not None:
            self.sleep(took)
        return ok
