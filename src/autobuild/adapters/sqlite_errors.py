"""Which sqlite3 errors mean "the disk is full", for the SQLite adapters to turn into the
domain's own error (the web layer answers it with 507 and a clear message, never a 500).

SQLite reports a full filesystem (ENOSPC) and a database at its page limit alike as
SQLITE_FULL, "database or disk is full"; a failed write may also surface as SQLITE_IOERR
when the journal cannot grow. After either, the transaction is rolled back and the
connection stays usable.
"""

from __future__ import annotations

import sqlite3

DISK_FULL_MESSAGE = "the build server's disk is full"
_SQLITE_FULL = 13
_FULL_TEXTS = ("database or disk is full", "no space left on device")


def is_disk_full(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == _SQLITE_FULL:
        return True
    return any(text in str(exc).lower() for text in _FULL_TEXTS)
