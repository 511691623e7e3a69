"""Hand-written fakes of the ports: they keep state, and tests assert on that state."""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from autobuild.domain.artifacts import ArtifactInfo, ArtifactNotFound, is_plain_name
from autobuild.domain.jobs import Job, JobStatus
from autobuild.domain.ports import RunnerError, RunnerStatus


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

    def add(self, job: Job) -> Job:
        job.id = self._next_id
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

    def with_status(self, *statuses: JobStatus) -> list[Job]:
        return [copy.deepcopy(j) for j in sorted(self.rows.values(), key=lambda j: j.id)
                if j.status in statuses]


@dataclass
class FakeJobFiles:
    created: dict[int, list[str]] = field(default_factory=dict)
    logs: dict[int, bytes] = field(default_factory=dict)
    statuses: dict[int, RunnerStatus] = field(default_factory=dict)
    artifacts: dict[int, dict[str, bytes]] = field(default_factory=dict)
    task_logs: dict[int, dict[str, str]] = field(default_factory=dict)
    build_settings: dict[int, dict[str, str]] = field(default_factory=dict)
    checksums: dict[int, dict[str, str]] = field(default_factory=dict)
    runner_pids: dict[int, int] = field(default_factory=dict)
    mtime: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    def read_runner_pid(self, job_id: int) -> int | None:
        return self.runner_pids.get(job_id)

    def create(self, job: Job, artifact_patterns: list[str],
               build_settings: Mapping[str, str] | None = None) -> None:
        self.created[job.id] = list(artifact_patterns)  # type: ignore[index]
        self.build_settings[job.id] = dict(build_settings or {})  # type: ignore[index]

    def append_log(self, job_id: int, data: bytes) -> None:
        self.logs[job_id] = self.logs.get(job_id, b"") + data

    def read_log(self, job_id: int, offset: int, limit: int) -> bytes:
        return self.logs.get(job_id, b"")[offset:offset + limit]

    def log_size(self, job_id: int) -> int:
        return len(self.logs.get(job_id, b""))

    def read_status(self, job_id: int) -> RunnerStatus | None:
        return self.statuses.get(job_id)

    def read_task_logs(self, job_id: int) -> dict[str, str]:
        return dict(self.task_logs.get(job_id, {}))

    def list_artifacts(self, job_id: int) -> list[ArtifactInfo]:
        sums = self.checksums.get(job_id, {})
        return [ArtifactInfo(name, len(data), self.mtime, sums.get(name))
                for name, data in sorted(self.artifacts.get(job_id, {}).items())]

    def usage(self, job_id: int) -> int:
        return self.log_size(job_id) + sum(len(d) for d in self.artifacts.get(job_id, {}).values())

    def remove(self, job_id: int) -> None:
        """What the service removes once the runner purged: the directory is then gone.
        Raises OSError while the build's log or artifacts (the runner's files) are there."""
        if self.logs.get(job_id) or self.artifacts.get(job_id):
            raise OSError(39, "Directory not empty")
        for files in (self.logs, self.statuses, self.artifacts, self.task_logs, self.created):
            files.pop(job_id, None)

    def open_artifact(self, job_id: int, name: str):
        files = self.artifacts.get(job_id, {})
        if not is_plain_name(name) or name not in files:
            raise ArtifactNotFound(name)
        data = files[name]
        return io.BytesIO(data), ArtifactInfo(name, len(data), self.mtime)


class FakeProcess:
    def __init__(self, pid: int, start_time: int | None = None) -> None:
        self.pid = pid
        self.start_time = start_time
        self.exit_code: int | None = None
        self.stderr = ""

    def poll(self) -> int | None:
        return self.exit_code

    def error_output(self) -> str:
        return self.stderr


class FakeRunner:
    """Launches nothing; tests end builds with ``finish(job_id, code)``."""

    def __init__(self, files: FakeJobFiles, clock: FakeClock) -> None:
        self.files = files
        self.clock = clock
        self.processes: dict[int, FakeProcess] = {}
        self.cancelled: list[int] = []
        self.alive: set[int] = set()
        self.refuse: str | None = None
        self.purged: list[int] = []
        self.refuse_purge: str | None = None
        self._next_pid = 1000

    def launch(self, job: Job) -> FakeProcess:
        if self.refuse:
            raise RunnerError(self.refuse)
        self._next_pid += 1
        process = FakeProcess(self._next_pid, start_time=self._next_pid * 100)
        self.processes[job.id] = process  # type: ignore[index]
        self.alive.add(job.id)  # type: ignore[arg-type]
        return process

    def cancel(self, job: Job) -> None:
        self.cancelled.append(job.id)  # type: ignore[arg-type]

    def purge(self, job: Job) -> None:
        """Deletes what the build wrote (its log and artifacts); ``refuse_purge`` makes it fail."""
        if self.refuse_purge:
            raise RunnerError(self.refuse_purge)
        self.purged.append(job.id)  # type: ignore[arg-type]
        self.files.logs.pop(job.id, None)  # type: ignore[arg-type]
        self.files.artifacts.pop(job.id, None)  # type: ignore[arg-type]

    def probe(self, job: Job) -> bool:
        """Alive as the real runner sees it: the job's process runs, and (when the job
        recorded one) with the start time it was launched with: a reused pid is not it."""
        if job.id not in self.alive:
            return False
        process = self.processes.get(job.id)  # type: ignore[arg-type]
        return (process is None or job.pid_start_time is None
                or process.start_time == job.pid_start_time)

    def finish(self, job_id: int, exit_code: int, status: str | None = None) -> None:
        """The build ends: the runner writes status.json, then the process exits."""
        final = status or ("SUCCESS" if exit_code == 0 else "FAILED")
        self.files.statuses[job_id] = RunnerStatus(final, exit_code, self.clock.now())
        self.processes[job_id].exit_code = exit_code
        self.alive.discard(job_id)


class FakeEvents:
    def __init__(self, patterns: list[str] | None = None) -> None:
        self.patterns = patterns if patterns is not None else ["*.bin", "*.mtd"]
        self.changes: list[tuple[int, JobStatus, JobStatus]] = []

    def artifact_patterns(self, job: Job) -> list[str]:
        return list(self.patterns)

    def job_status_changed(self, job: Job, old: JobStatus, new: JobStatus) -> None:
        self.changes.append((job.id, old, new))  # type: ignore[arg-type]


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


class FakeWorld:
    """A JobService wired to a fresh fake of every port; attributes are the fakes themselves."""

    def __init__(self, max_running: int = 1, **service_kwargs) -> None:
        from autobuild.domain.services import JobService

        self.clock = FakeClock()
        self.repo = FakeJobRepository()
        self.files = FakeJobFiles()
        self.events = FakeEvents()
        self.runner = FakeRunner(self.files, self.clock)
        self.service = JobService(self.repo, self.files, self.runner, self.events, self.clock,
                                  max_running=max_running, **service_kwargs)
