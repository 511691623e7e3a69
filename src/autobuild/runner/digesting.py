"""The runner keeps the digest of its build's log (domain/digest.py) in ``logs/digest.json``.

It reads every byte the build writes once, as the log grows, so the service never has to read
the whole log to show progress or why a build failed. Written atomically, at most once a
second while the build runs and once more at its end; a failed write (a full disk) is skipped:
the service then reads the bytes after the last digest, or the end of the log.
"""

from __future__ import annotations

import os
import sys
import time

from autobuild.domain.digest import LogDigest
from autobuild.domain.layout import DIGEST

from .fsops import write_atomically

SAVE_SECONDS = 1.0
READ_BYTES = 1024 * 1024
BUDGET_BYTES = 64 * 1024 * 1024  # per look while the build runs: the runner stays responsive


class KeptDigest:
    """The digest of the log open as ``log_fd``, saved in the directory ``logs_fd``."""

    def __init__(self, log_fd: int, logs_fd: int) -> None:
        self.digest = LogDigest()
        self._log, self._logs = log_fd, logs_fd
        self._read_to = 0
        self._saved: int | None = None
        self._due = 0.0
        self._broken = False

    def tick(self) -> None:
        """Digest what the build wrote since the last look and save it, once a second."""
        now = time.monotonic()
        if now >= self._due:
            self._due = now + SAVE_SECONDS
            self._update(BUDGET_BYTES)

    def finish(self) -> None:
        """Digest the log to its end and save it (the build is over)."""
        self._update(None)

    def _update(self, budget: int | None) -> None:
        if self._broken:
            return
        try:
            self._catch_up(budget)
            self._save()
        except Exception as exc:  # noqa: BLE001 -- never in the way of the build or its status
            self._broken = True
            print(f"run_job.sh: stopped keeping the log digest: {type(exc).__name__}: {exc}",
                  file=sys.stderr)

    def _catch_up(self, budget: int | None) -> None:
        read = 0
        while budget is None or read < budget:
            try:
                data = os.pread(self._log, READ_BYTES, self._read_to)
            except OSError:
                return
            if not data:
                return
            self.digest.feed(data)
            self._read_to += len(data)
            read += len(data)

    def _save(self) -> None:
        if self._saved == self._read_to:
            return
        try:
            write_atomically(self._logs, DIGEST, self.digest.to_json())
        except OSError:
            return  # a full disk: the service reads the log after the last saved digest
        self._saved = self._read_to
