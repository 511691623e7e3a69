"""The query plans of a SqliteJobRepository's own SELECTs, for tests that check an index is
walked (EXPLAIN QUERY PLAN of each query, as it runs)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from autobuild.adapters.sqlite_jobs import SqliteJobRepository


def traced_plans(repo: SqliteJobRepository, db_path: Path) -> list[str]:
    """From now on, each SELECT ``repo`` runs on this thread appends its plan to the list."""
    plans: list[str] = []
    real_execute = sqlite3.Connection.execute

    class Tracing(sqlite3.Connection):  # records the plan of the repository's own query
        def execute(self, sql, params=()):  # type: ignore[no-untyped-def]
            if sql.startswith("SELECT"):
                plans.append(" ".join(row[-1] for row in real_execute(
                    self, f"EXPLAIN QUERY PLAN {sql}", params)))
            return real_execute(self, sql, params)

    repo._local.conn = sqlite3.connect(db_path, factory=Tracing, isolation_level=None)
    repo._local.conn.row_factory = sqlite3.Row
    repo._local.depth = 0
    return plans
