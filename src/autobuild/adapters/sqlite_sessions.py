"""SessionStore on the service's SQLite database (the ``sessions`` table of sqlite_jobs'
schema: one file, one schema version)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from autobuild.domain.ports import StoredSession

from .sqlite_jobs import SqliteJobRepository, _from_text, _to_text

_COLUMNS = "id, user, csrf, created_at, last_seen_at"


class SqliteSessionStore:
    """Implements SessionStore. Like the job repository, safe to share between threads: each
    thread reuses its own connection; the first call creates or migrates the schema."""

    def __init__(self, db_path: Path) -> None:
        self._db = SqliteJobRepository(db_path)  # owns the connection rules and the schema

    def add(self, session: StoredSession) -> None:
        with self._db.connection() as conn:
            conn.execute(f"INSERT INTO sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                         (session.id, session.user, session.csrf,
                          _to_text(session.created_at), _to_text(session.last_seen_at)))

    def get(self, session_id: str) -> StoredSession | None:
        with self._db.connection() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM sessions WHERE id = ?",
                               (session_id,)).fetchone()
        if row is None:
            return None
        created_at, last_seen_at = _from_text(row["created_at"]), _from_text(row["last_seen_at"])
        assert created_at is not None and last_seen_at is not None  # NOT NULL columns
        return StoredSession(id=row["id"], user=row["user"], csrf=row["csrf"],
                             created_at=created_at, last_seen_at=last_seen_at)

    def touch(self, session_id: str, moment: datetime) -> None:
        with self._db.connection() as conn:
            conn.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?",
                         (_to_text(moment), session_id))

    def delete(self, session_id: str) -> None:
        with self._db.connection() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def delete_user(self, user: str) -> int:
        with self._db.connection() as conn:
            return conn.execute("DELETE FROM sessions WHERE user = ?", (user,)).rowcount

    def delete_unused_since(self, moment: datetime) -> int:
        cutoff = _to_text(moment)
        with self._db.connection() as conn:
            return conn.execute("DELETE FROM sessions WHERE created_at < ? OR last_seen_at < ?",
                                (cutoff, cutoff)).rowcount
