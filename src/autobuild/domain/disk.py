"""The disk guard: no build starts while the jobs' filesystem is short of free space."""

from __future__ import annotations

from .ports import DiskSpace

GB = 1000**3  # the unit of AUTO_BUILD_MIN_FREE_GB and of the message: what df -H shows


class DiskGuard:
    """``shortage()`` says why no build may start now, or None when there is room."""

    def __init__(self, space: DiskSpace, path: str, min_free_gb: float) -> None:
        self._space = space
        self._path = str(path)
        self._min_free_gb = min_free_gb

    def shortage(self) -> str | None:
        """None when the check is off (0 GB) or enough is free; else a message fit to show."""
        if self._min_free_gb <= 0:
            return None
        free = self._space.free_bytes(self._path)
        if free >= self._min_free_gb * GB:
            return None
        return (f"Waiting for disk space: {free / GB:.1f} GB free on {self._path}, "
                f"{self._min_free_gb:g} GB needed")
