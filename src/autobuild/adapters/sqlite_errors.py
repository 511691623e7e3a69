"""Which sqlite3 errors mean "the disk is full", for the SQLite adapters to turn into the
domain's own error (the web layer answers it with 507 and a clear message, never a 500).

SQLite reports a full filesystem (ENOSPC) and a database at its page limit alike as
SQLITE_FULL, "database or disk is full"; a failed write may also surface as SQLITE_IOERR
when the journal cannot grow. After either, the transaction is rolled back and the
connection stays usable.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

DISK_FULL_MESSAGE = "the build server's disk is full"
_SQLITE_FULL = 13
_SQLITE_IOERR = 10
_NEARLY_FULL_BYTES = 64 * 1024
_FULL_TEXTS = ("database or disk is full", "no space left on device")


def is_disk_full(exc: BaseException, directory: Path | None = None) -> bool:
    """SQLITE_FULL; or, given the database's ``directory``, an I/O error while that filesystem
    has no space left (in WAL mode even a read needs to write its shared-memory index, and
    fails so when the disk is full)."""
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == _SQLITE_FULL:
        return True
    if any(text in str(exc).lower() for text in _FULL_TEXTS):
        return True
    io_error = (code is not None and code & 0xFF == _SQLITE_IOERR) or "disk i/o error" in str(exc).lower()
    return io_error and directory is not None and _no_space(directory)


def _no_space(directory: Path) -> bool:
    try:
        info = os.statvfs(directory)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < _NEARLY_FULL_BYTES
