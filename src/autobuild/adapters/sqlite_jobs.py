"""JobRepository on sqlite3: one file, WAL, one connection per thread, reused."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autobuild.domain.jobs import Job, JobStatus, Submission
from autobuild.domain.orders import BuildSettings
from autobuild.domain.ports import JobFilter, RecentBuild, StorageFull

from .sqlite_errors import DISK_FULL_MESSAGE, is_disk_full

BUSY_TIMEOUT_MS = 5000

# MIGRATIONS[n] takes a database from user_version n to n + 1. Append, never edit a shipped step.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            owner TEXT NOT NULL,
            repo_url TEXT NOT NULL,
            ref TEXT NOT NULL,
            machine TEXT NOT NULL,
            target TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            exit_code INTEGER,
            reason TEXT,
            pid INTEGER,
            cancel_requested_by TEXT
        )
        """,
        "CREATE INDEX jobs_status ON jobs (status)",
        "CREATE INDEX jobs_created_at ON jobs (created_at)",
    ),
    (
        # 2: the runner's start time (pid + start time identify it after a restart), the kas
        # file a build uses, and why a queued job is waiting.
        "ALTER TABLE jobs ADD COLUMN pid_start_time INTEGER",
        "ALTER TABLE jobs ADD COLUMN kas_file TEXT",
        "ALTER TABLE jobs ADD COLUMN waiting_reason TEXT",
    ),
    (
        # 3: when `autobuild gc` removed the job's logs and artifacts (retention).
        "ALTER TABLE jobs ADD COLUMN purged_at TEXT",
    ),
    (
        # 4: the runner adapter's own reference replaces pid + start time (kept, for builds
        # started before, as "pid:<pid>:<start time>"); what the runner is given (artifact
        # patterns, build settings) is stored with the job before its launch.
        "ALTER TABLE jobs ADD COLUMN runner_ref TEXT",
        "UPDATE jobs SET runner_ref = 'pid:' || pid || ':' || COALESCE(pid_start_time, '') "
        "WHERE pid IS NOT NULL",
        "ALTER TABLE jobs DROP COLUMN pid",
        "ALTER TABLE jobs DROP COLUMN pid_start_time",
        "ALTER TABLE jobs ADD COLUMN artifact_patterns TEXT",
        "ALTER TABLE jobs ADD COLUMN build_settings TEXT",
    ),
    (
        # 5: signed-in sessions, kept by the service so that signing out or leaving the users
        # group ends them (adapters/sqlite_sessions.py).
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            user TEXT NOT NULL,
            csrf TEXT NOT NULL,
            created_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL
        ) WITHOUT ROWID
        """,
        "CREATE INDEX sessions_user ON sessions (user)",
        "CREATE INDEX sessions_created_at ON sessions (created_at)",
    ),
    (
        # 6: job lists filtered by owner, and by owner and status, walk an index in id order
        # (an index entry ends with the rowid; jobs_status already serves a status alone).
        "CREATE INDEX jobs_owner ON jobs (owner)",
        "CREATE INDEX jobs_owner_status ON jobs (owner, status)",
    ),
    (
        # 7: the list's text filter: a trigram index of the fields it searches, kept by
        # triggers, read in id order (a substring LIKE would read the whole table).
        "CREATE VIRTUAL TABLE jobs_text USING fts5(repo_url, ref, machine, target, "
        "content='jobs', content_rowid='id', tokenize='trigram')",
        "CREATE TRIGGER jobs_text_insert AFTER INSERT ON jobs BEGIN "
        "INSERT INTO jobs_text (rowid, repo_url, ref, machine, target) "
        "VALUES (new.id, new.repo_url, new.ref, new.machine, new.target); END",
        "CREATE TRIGGER jobs_text_delete AFTER DELETE ON jobs BEGIN "
        "INSERT INTO jobs_text (jobs_text, rowid, repo_url, ref, machine, target) "
        "VALUES ('delete', old.id, old.repo_url, old.ref, old.machine, old.target); END",
        "CREATE TRIGGER jobs_text_update AFTER UPDATE OF repo_url, ref, machine, target ON jobs "
        "WHEN old.repo_url IS NOT new.repo_url OR old.ref IS NOT new.ref "
        "OR old.machine IS NOT new.machine OR old.target IS NOT new.target BEGIN "
        "INSERT INTO jobs_text (jobs_text, rowid, repo_url, ref, machine, target) "
        "VALUES ('delete', old.id, old.repo_url, old.ref, old.machine, old.target); "
        "INSERT INTO jobs_text (rowid, repo_url, ref, machine, target) "
        "VALUES (new.id, new.repo_url, new.ref, new.machine, new.target); END",
        "INSERT INTO jobs_text (jobs_text) VALUES ('rebuild')",
    ),
    (
        # 8: the host a build runs on when a cluster runs it (Slurm's node).
        "ALTER TABLE jobs ADD COLUMN node TEXT",
    ),
    (
        # 9: personal API tokens, only their sha256 (adapters/sqlite_api_tokens.py).
        """
        CREATE TABLE api_tokens (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            name TEXT NOT NULL,
            digest TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT,
            last_used_at TEXT,
            revoked_at TEXT
        ) WITHOUT ROWID
        """,
        "CREATE INDEX api_tokens_owner ON api_tokens (owner)",
    ),
    (
        # 10: the commit a build's ref resolved to (provenance), recorded when it ends; the
        # list's commit filter (a prefix) reads a range of this index.
        "ALTER TABLE jobs ADD COLUMN built_commit TEXT",
        "CREATE INDEX jobs_built_commit ON jobs (built_commit)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = ("owner", "repo_url", "ref", "machine", "target", "status", "created_at",
            "started_at", "finished_at", "exit_code", "reason", "runner_ref",
            "cancel_requested_by", "kas_file", "waiting_reason", "purged_at",
            "artifact_patterns", "build_settings", "node", "built_commit")
_SELECT = f"SELECT id, {', '.join(_COLUMNS)} FROM jobs"
_QUALIFIED = ", ".join(f"jobs.{column}" for column in ("id", *_COLUMNS))


def _to_text(value: datetime | None) -> str | None:
    """Fixed-width ISO-8601 in UTC, so text order is time order."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: jobs keep timezone-aware UTC times")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _from_text(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _filter_sql(where: JobFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if where.owner is not None:
        clauses.append("owner = ?")
        params.append(where.owner)
    if where.status is not None:
        clauses.append("status = ?")
        params.append(str(where.status))
    if where.text and _uses_text_index(where):
        clauses.append("jobs_text MATCH ?")
        params.append('"' + where.text.replace('"', '""') + '"')  # one phrase: a substring
    elif where.text:
        pattern = "%" + "".join("\\" + c if c in "%_\\" else c for c in where.text) + "%"
        clauses.append("(" + " OR ".join(f"{column} LIKE ? ESCAPE '\\'" for column in
                                         ("repo_url", "ref", "machine", "target")) + ")")
        params.extend([pattern] * 4)
    if where.commit:
        # A prefix as a range of the index: every id starting with it sorts below it + "g".
        clauses.append("built_commit >= ? AND built_commit < ?")
        params.extend([where.commit, where.commit + "g"])
    return clauses, params


def _uses_text_index(where: JobFilter) -> bool:
    """Trigrams need 3 characters; with an owner, that owner's jobs (an index) are fewer to
    read than the jobs a common text matches."""
    return where.text is not None and len(where.text) >= 3 and where.owner is None


def _row_to_job(row: sqlite3.Row) -> Job:
    created_at = _from_text(row["created_at"])
    assert created_at is not None  # NOT NULL column
    return Job(
        id=row["id"],
        owner=row["owner"],
        repo_url=row["repo_url"],
        ref=row["ref"],
        machine=row["machine"],
        target=row["target"],
        status=JobStatus(row["status"]),
        created_at=created_at,
        started_at=_from_text(row["started_at"]),
        finished_at=_from_text(row["finished_at"]),
        exit_code=row["exit_code"],
        reason=row["reason"],
        runner_ref=row["runner_ref"],
        cancel_requested_by=row["cancel_requested_by"],
        kas_file=row["kas_file"],
        waiting_reason=row["waiting_reason"],
        purged_at=_from_text(row["purged_at"]),
        artifact_patterns=_patterns_from_text(row["artifact_patterns"]),
        settings=_settings_from_text(row["build_settings"]),
        node=row["node"],
        commit=row["built_commit"],
    )


def _patterns_from_text(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(json.loads(value))


def _settings_from_text(value: str | None) -> BuildSettings | None:
    return None if value is None else BuildSettings.from_dict(json.loads(value))


def _job_values(job: Job) -> tuple[Any, ...]:
    return (job.owner, job.repo_url, job.ref, job.machine, job.target, str(job.status),
            _to_text(job.created_at), _to_text(job.started_at), _to_text(job.finished_at),
            job.exit_code, job.reason, job.runner_ref, job.cancel_requested_by,
            job.kas_file, job.waiting_reason, _to_text(job.purged_at),
            None if job.artifact_patterns is None else json.dumps(list(job.artifact_patterns)),
            None if job.settings is None else json.dumps(job.settings.as_dict()),
            job.node, job.commit)


class SqliteJobRepository:
    """Implements JobRepository.

    Safe to share between threads and processes: each thread reuses its own connection
    (opened on its first call, dropped after an error). Nothing touches the file until the
    first call (or ``ensure_schema``), which creates or migrates the schema. Ids come from AUTOINCREMENT and are never reused.
    """

    def __init__(self, db_path: Path) -> None:
        self._db_path = Path(db_path)
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._local = threading.local()  # .conn, .depth: this thread's connection, nesting

    # --- JobRepository ---------------------------------------------------------------------

    def add(self, submission: Submission) -> Job:
        """Stores a new PENDING job in one statement and returns it with its id."""
        job = Job.from_submission(0, submission)  # the id is the row's, once inserted
        placeholders = ", ".join("?" * len(_COLUMNS))
        with self._connect() as conn:
            cursor = conn.execute(
                f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                _job_values(job),
            )
        assert cursor.lastrowid is not None
        job.id = cursor.lastrowid
        return job

    def get(self, job_id: int) -> Job | None:
        with self._connect() as conn:
            row = conn.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
        return _row_to_job(row) if row is not None else None

    def save(self, job: Job) -> None:
        """Writes every field of a stored job; raises LookupError if it was never added."""
        assignments = ", ".join(f"{column} = ?" for column in _COLUMNS)
        with self._connect() as conn:
            cursor = conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?",
                                  (*_job_values(job), job.id))
        if cursor.rowcount != 1:
            raise LookupError(f"job {job.id} is not stored")

    def list_page(self, limit: int, offset: int) -> list[Job]:
        """Jobs newest first (highest id first)."""
        with self._connect() as conn:
            rows = conn.execute(f"{_SELECT} ORDER BY id DESC LIMIT ? OFFSET ?",
                                (max(0, limit), max(0, offset))).fetchall()
        return [_row_to_job(row) for row in rows]

    def list_keyset(self, where: JobFilter, limit: int, before: int | None = None,
                    after: int | None = None) -> list[Job]:
        """Jobs matching ``where`` newest first, below ``before`` or the oldest above
        ``after``; every filter walks an index in id order (migrations 6 and 7), but a commit
        reads its range of the commit index (migration 10)."""
        clauses, params = _filter_sql(where)
        if _uses_text_index(where):  # the trigram index gives its matches in id order
            key = "jobs_text.rowid"
            source = f"SELECT {_QUALIFIED} FROM jobs_text JOIN jobs ON jobs.id = jobs_text.rowid"
        elif where.commit:  # the few builds of a commit, not a walk of every id below a cursor
            key, source = "id", f"{_SELECT} INDEXED BY jobs_built_commit"
        else:
            key, source = "id", _SELECT
        if after is not None:
            clauses.append(f"{key} > ?")
            params.append(after)
            order = "ASC"
        else:
            if before is not None:
                clauses.append(f"{key} < ?")
                params.append(before)
            order = "DESC"
        sql = source
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY {key} {order} LIMIT ?"
        with self._connect() as conn:
            rows = conn.execute(sql, (*params, max(0, limit))).fetchall()
        jobs = [_row_to_job(row) for row in rows]
        return jobs[::-1] if order == "ASC" else jobs

    def count(self) -> int:
        with self._connect() as conn:
            return conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]

    def with_status(self, *statuses: JobStatus) -> list[Job]:
        """Jobs in any of ``statuses``, oldest first (queue order)."""
        if not statuses:
            return []
        marks = ", ".join("?" * len(statuses))
        with self._connect() as conn:
            rows = conn.execute(f"{_SELECT} WHERE status IN ({marks}) ORDER BY id ASC",
                                tuple(str(s) for s in statuses)).fetchall()
        return [_row_to_job(row) for row in rows]

    def recent_builds(self, owner: str | None, limit: int) -> list[RecentBuild]:
        """The newest builds' parameters: the rowid order, or the owner index (whose entries
        end with the rowid) walked backwards; ``limit`` rows read, no sort."""
        sql = "SELECT id, owner, repo_url, ref, machine, target, kas_file FROM jobs"
        params: tuple[Any, ...] = ()
        if owner is not None:
            sql += " WHERE owner = ?"
            params = (owner,)
        with self._connect() as conn:
            rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?",
                                (*params, max(0, limit))).fetchall()
        return [RecentBuild(id=row["id"], owner=row["owner"], repo_url=row["repo_url"],
                            ref=row["ref"], machine=row["machine"], target=row["target"],
                            kas_file=row["kas_file"]) for row in rows]

    # --- schema ------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create or migrate the schema now (otherwise the first call does it).

        Raises RuntimeError naming the path when the database cannot be opened or was
        written by a newer version of Autobuild.
        """
        with self._schema_lock:
            if self._schema_ready:
                return
            with closing(self._open()) as conn:
                # WAL is a property of the file: readers never block the writer (SSE polls a lot).
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")  # another process may be migrating right now
                try:
                    version = conn.execute("PRAGMA user_version").fetchone()[0]
                    if version > SCHEMA_VERSION:
                        raise RuntimeError(
                            f"{self._db_path} has schema version {version}, newer than this "
                            f"Autobuild understands ({SCHEMA_VERSION}); upgrade Autobuild")
                    for number in range(version, SCHEMA_VERSION):
                        for statement in MIGRATIONS[number]:
                            conn.execute(statement)
                        conn.execute(f"PRAGMA user_version = {number + 1}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            self._schema_ready = True

    def _open(self) -> sqlite3.Connection:
        if not self._db_path.parent.is_dir():
            raise RuntimeError(
                f"cannot open the jobs database {self._db_path}: the directory "
                f"{self._db_path.parent} does not exist (the deployment creates it; "
                f"AUTO_BUILD_DB sets another path)")
        try:
            # Autocommit: every operation is one statement; the migration opens its own transaction.
            conn = sqlite3.connect(self._db_path, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None)
        except sqlite3.OperationalError as exc:
            raise RuntimeError(f"cannot open the jobs database {self._db_path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return conn

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection; a full disk on any statement becomes StorageFull (SQLite
        rolled the statement back: nothing was stored, and the next call works once there is
        room). After an error the connection is closed and the next call opens a fresh one."""
        self.ensure_schema()
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = self._open()
            local.depth = 0
        local.depth += 1
        try:
            yield conn
        except BaseException as exc:
            if local.depth == 1:  # the outermost user: nothing else holds this connection
                local.conn = None
                conn.close()  # also rolls back a transaction the caller left open
            if isinstance(exc, sqlite3.Error) and is_disk_full(exc, self._db_path.parent):
                raise StorageFull(DISK_FULL_MESSAGE) from exc
            raise
        else:
            if local.depth == 1 and conn.in_transaction:  # never carried into the next call
                conn.rollback()
        finally:
            local.depth -= 1

    def connection(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """This thread's autocommit connection to the same file, schema ready (for other
        adapters on this database, such as the session store): reused, so use it in a
        ``with`` and leave no transaction open; never close it."""
        return self._connect()
