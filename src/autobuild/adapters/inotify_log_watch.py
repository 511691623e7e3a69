"""LogWatches with inotify: wakes a job's tailer as soon as its build log is written.

The watch is put on the job's ``logs/`` directory as BuildTree opened and checked it (through
``/proc/self/fd/<descriptor>``, so the kernel watches exactly the owner's directory reached
without following links, never a path looked up again). The watch only says *when* to look:
every byte is still read through JobFiles. Where inotify cannot see writes (a network
filesystem written by another host: NFS, CIFS, 9p, FUSE...) or cannot be had (no directory
yet, out of inotify instances), ``open`` gives None and the tailer polls instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from asyncinotify import Inotify, Mask

from autobuild.domain import layout
from autobuild.domain.jobs import Job

from .build_tree import BuildTree

# Filesystems whose files another host may write: inotify hears nothing of those writes.
REMOTE_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "afs",
    "gpfs", "ocfs2", "gfs2", "beegfs", "virtiofs",
})
_MASK = (Mask.MODIFY | Mask.CREATE | Mask.MOVED_TO | Mask.CLOSE_WRITE | Mask.ATTRIB
         | Mask.DELETE_SELF | Mask.MOVE_SELF)
_GONE = Mask.DELETE_SELF | Mask.MOVE_SELF | Mask.IGNORED | Mask.UNMOUNT


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem holding ``path`` (from /proc/self/mountinfo), or None."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    target = os.path.realpath(path)
    best, found = -1, None
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not rest:
            continue
        point = parts[4].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:
            best, found = len(point), rest.split()[0]
    return found


def is_remote(fstype: str | None) -> bool:
    return fstype is not None and (fstype in REMOTE_FILESYSTEMS or fstype.startswith("fuse"))


class LogWatch:
    """One job's watch; calls ``on_change`` (in the event loop) on every write to its log."""

    def __init__(self, inotify: Inotify, on_change: Callable[[], None]) -> None:
        self._inotify = inotify
        self._on_change = on_change
        self.alive = True
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in self._inotify:
                if event.mask & _GONE:
                    self.alive = False  # the directory went: the tailer opens a new watch
                    self._on_change()
                    return
                if event.name is None or str(event.name) == layout.BUILD_LOG:
                    self._on_change()
        except OSError:
            self.alive = False
            self._on_change()

    def close(self) -> None:
        self.alive = False
        self._task.cancel()
        with contextlib.suppress(OSError):
            self._inotify.close()


class InotifyLogWatches:
    """Implements LogWatches for the build tree under ``jobs_root``."""

    def __init__(self, jobs_root: Path) -> None:
        self._tree = BuildTree(jobs_root)
        self.remote = is_remote(filesystem_type(Path(jobs_root)))

    def open(self, job: Job, on_change: Callable[[], None]) -> LogWatch | None:
        """A watch on the job's log (call in the event loop), or None: poll instead."""
        if self.remote:
            return None
        with self._tree.open_dir(job.owner, job.id, *layout.LOG_PATH[:-1]) as dir_fd:
            if dir_fd is None:
                return None  # no logs/ yet (or not the owner's): look again later
            try:
                inotify = Inotify()
            except OSError:
                return None  # out of inotify instances: poll
            try:
                inotify.add_watch(f"/proc/self/fd/{dir_fd}", _MASK | Mask.ONLYDIR)
            except OSError:
                inotify.close()
                return None
        return LogWatch(inotify, on_change)
