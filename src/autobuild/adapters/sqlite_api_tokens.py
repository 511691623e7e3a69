"""ApiTokenStore on the service's SQLite database (the ``api_tokens`` table of sqlite_jobs'
schema: one file, one schema version). Only a token's sha256 is stored, never the token."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from autobuild.domain.ports import StoredApiToken

from .sqlite_jobs import SqliteJobRepository, _from_text, _to_text

_COLUMNS = "id, owner, name, digest, created_at, expires_at, last_used_at, revoked_at"


def _row_to_token(row: sqlite3.Row) -> StoredApiToken:
    created_at = _from_text(row["created_at"])
    assert created_at is not None  # a NOT NULL column
    return StoredApiToken(id=row["id"], owner=row["owner"], name=row["name"],
                          digest=row["digest"], created_at=created_at,
                          expires_at=_from_text(row["expires_at"]),
                          last_used_at=_from_text(row["last_used_at"]),
                          revoked_at=_from_text(row["revoked_at"]))


class SqliteApiTokenStore:
    """Implements ApiTokenStore. Like the job repository, safe to share between threads: each
    thread reuses its own connection; the first call creates or migrates the schema."""

    def __init__(self, db_path: Path) -> None:
        self._db = SqliteJobRepository(db_path)  # owns the connection rules and the schema

    def add(self, token: StoredApiToken) -> None:
        with self._db.connection() as conn:
            conn.execute(f"INSERT INTO api_tokens ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (token.id, token.owner, token.name, token.digest,
                          _to_text(token.created_at), _to_text(token.expires_at),
                          _to_text(token.last_used_at), _to_text(token.revoked_at)))

    def get(self, token_id: str) -> StoredApiToken | None:
        with self._db.connection() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE id = ?",
                               (token_id,)).fetchone()
        return None if row is None else _row_to_token(row)

    def of_owner(self, owner: str) -> list[StoredApiToken]:
        with self._db.connection() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE owner = ? "
                                "ORDER BY created_at DESC, id", (owner,)).fetchall()
        return [_row_to_token(row) for row in rows]

    def live_at(self, moment: datetime, owner: str | None = None) -> list[StoredApiToken]:
        # Timestamps are stored as fixed-width UTC ISO text: they compare as text in order.
        where = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"
        arguments: tuple[str, ...] = (_to_text(moment) or "",)
        if owner is not None:
            where, arguments = f"owner = ? AND {where}", (owner, *arguments)
        with self._db.connection() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE {where} "
                                "ORDER BY owner, created_at DESC, id", arguments).fetchall()
        return [_row_to_token(row) for row in rows]

    def mark_used(self, token_id: str, moment: datetime) -> None:
        with self._db.connection() as conn:
            conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?",
                         (_to_text(moment), token_id))

    def revoke(self, token_id: str, owner: str, moment: datetime) -> bool:
        with self._db.connection() as conn:
            return conn.execute(
                "UPDATE api_tokens SET revoked_at = ? "
                "WHERE id = ? AND owner = ? AND revoked_at IS NULL",
                (_to_text(moment), token_id, owner)).rowcount == 1

    def delete_ended_before(self, owner: str, moment: datetime) -> int:
        cutoff = _to_text(moment)
        with self._db.connection() as conn:
            return conn.execute(
                "DELETE FROM api_tokens WHERE owner = ? AND (revoked_at < ? OR expires_at < ?)",
                (owner, cutoff, cutoff)).rowcount
