"""Per-user limits that keep one engineer from crowding out the others.

Business rules:
- one user holds at most ``limit`` live-log streams at once; others are not affected;
- the limits are far above what a normal team uses (ten engineers with a few tabs each).
"""

from __future__ import annotations

import threading
from collections import Counter


class LimitReached(Exception):
    """A per-user limit stops this request; the message is fit to show (answered with 429)."""


class StreamSlots:
    """Counts each user's open live-log streams. Thread-safe."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def acquire(self, user: str) -> None:
        """Take a slot for ``user``, or raise LimitReached; every acquire needs a release."""
        with self._lock:
            if self._open[user] >= self._limit:
                raise LimitReached(
                    f"You already have {self._limit} live logs open; close some tabs "
                    f"(or wait for them to end) and reload.")
            self._open[user] += 1

    def release(self, user: str) -> None:
        with self._lock:
            self._open[user] -= 1
            if self._open[user] <= 0:
                del self._open[user]

    def held(self, user: str) -> int:
        with self._lock:
            return self._open[user]
