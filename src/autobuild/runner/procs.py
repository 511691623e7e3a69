"""Our own processes: a pid counts only with its start time, and only when it runs as us."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from autobuild.adapters.procfs import PROC, is_alive


def owner_of(pid: int, proc: Path = PROC) -> int | None:
    """The real uid of ``pid`` from its ``status`` (readable by all: the runner makes itself
    non-dumpable, which gives its /proc directory to root)."""
    try:
        text = (proc / str(pid) / "status").read_text()
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
    return None


def is_our_process(pid: int, start_time: int | None, uid: int | None = None,
                   proc: Path = PROC) -> bool:
    """``pid`` runs (not a zombie), started at ``start_time`` and belongs to ``uid``."""
    uid = os.getuid() if uid is None else uid
    return is_alive(pid, start_time, proc) and owner_of(pid, proc) == uid


def group_members(pgid: int, uid: int | None = None, proc: Path = PROC) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid`` that belong to ``uid``."""
    uid = os.getuid() if uid is None else uid
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if fields[0] in ("Z", "X") or int(fields[2]) != pgid:
                continue
        except (OSError, IndexError, ValueError, UnicodeDecodeError):
            continue
        if owner_of(int(entry.name), proc) == uid:
            found.append(int(entry.name))
    return found


def signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name
