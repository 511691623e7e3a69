"""Clock port on the system clock."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """Implements Clock: the current time, timezone-aware in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)
