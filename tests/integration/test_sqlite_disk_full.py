"""A full disk under SQLite is recognised (and the connection stays healthy after it)."""

from __future__ import annotations

import sqlite3

import pytest

from autobuild.adapters.sqlite_errors import DISK_FULL_MESSAGE, is_disk_full


def test_a_write_that_does_not_fit_is_recognised_and_the_connection_goes_on(tmp_path):
    conn = sqlite3.connect(tmp_path / "jobs.db")
    conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, blob BLOB)")
    conn.commit()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 1}")  # what a full filesystem looks like to SQLite
    with pytest.raises(sqlite3.OperationalError) as raised:
        with conn:
            conn.execute("INSERT INTO jobs (blob) VALUES (?)", (b"x" * 1_000_000,))
    assert is_disk_full(raised.value), raised.value
    assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)  # nothing created
    with conn:
        conn.execute("INSERT INTO jobs (blob) VALUES (?)", (b"small",))  # still usable
    assert "disk is full" in DISK_FULL_MESSAGE


def test_other_errors_are_not_taken_for_a_full_disk():
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))
    assert not is_disk_full(OSError(28, "No space left on device"))  # not SQLite's
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
