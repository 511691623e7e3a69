"""Process identity from Linux /proc: a pid names a process only together with its start time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    """What /proc/<pid>/stat says about one process."""

    state: str  # R, S, D, Z (zombie), T...
    start_time: int  # field 22: clock ticks since boot; unique per pid at any moment

    @property
    def is_zombie(self) -> bool:
        return self.state in ("Z", "X")


def process_info(pid: int, proc: Path = PROC) -> ProcessInfo | None:
    """The state and start time of ``pid``, or None when there is no such process."""
    if pid <= 0:
        return None
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except (OSError, UnicodeDecodeError):
        return None
    # The command name (field 2) may hold spaces and ')': split after its last ')'.
    fields = stat.rpartition(")")[2].split()
    try:
        return ProcessInfo(state=fields[0], start_time=int(fields[19]))
    except (IndexError, ValueError):
        return None


def start_time(pid: int, proc: Path = PROC) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if it is gone."""
    info = process_info(pid, proc)
    return None if info is None else info.start_time


def is_alive(pid: int | None, expected_start: int | None, proc: Path = PROC) -> bool:
    """True when ``pid`` runs, is not a zombie, and (when given) started at ``expected_start``.

    A zombie counts as dead: after a service restart the runner is nobody's child, and in a
    container without an init that reaps orphans it would stay a zombie for ever. A different
    start time means the pid was reused by another process.
    """
    if pid is None:
        return False
    info = process_info(pid, proc)
    if info is None or info.is_zombie:
        return False
    return expected_start is None or info.start_time == expected_start
