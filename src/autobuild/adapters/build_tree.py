"""Safe reading of what a build wrote under ``<jobs root>/<owner>/<id>/`` (see domain/layout.py).

Nothing a build wrote is trusted: every path component below the jobs root is opened relative
to its parent's descriptor with O_NOFOLLOW, must be owned by the job's owner, and must not be
writable by anyone else; files are opened with O_NONBLOCK (a FIFO never blocks the service)
and read only when they are regular files owned by the owner (a hard link to someone else's
file is refused). A user name that is not a Linux user has no build tree.
"""

from __future__ import annotations

import os
import pwd
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from autobuild.domain import layout

_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted by a build must not hang the service.
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


UID_TTL = 60.0  # a user's uid is looked up once a minute, not for every file opened
_uids: dict[str, tuple[int, float]] = {}
_uids_lock = threading.Lock()


def owner_uid(owner: str) -> int | None:
    """The uid of the Linux user ``owner``, or None (no such user, or not a user name)."""
    if not layout.is_user_name(owner):
        return None
    now = time.monotonic()
    with _uids_lock:
        cached = _uids.get(owner)
    if cached is not None and now < cached[1]:
        return cached[0]
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        return None  # not kept: a user made a moment later is found at once
    with _uids_lock:
        if len(_uids) > 10_000:
            _uids.clear()
        _uids[owner] = (uid, now + UID_TTL)
    return uid


def _trusted(info: os.stat_result, uid: int) -> bool:
    """Owned by ``uid`` and writable by nobody else (no group or other write bit)."""
    return info.st_uid == uid and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def is_owned_file(info: os.stat_result, uid: int | None) -> bool:
    """A regular file of ``uid``'s alone: one link, no group or other write bit."""
    return (uid is not None and stat.S_ISREG(info.st_mode) and _trusted(info, uid)
            and info.st_nlink == 1)


class BuildTree:
    """Opens the files of one job's build directory for reading."""

    def __init__(self, jobs_root: Path) -> None:
        self.jobs_root = Path(jobs_root)

    @contextmanager
    def open_dir(self, owner: str, job_id: int, *parts: str) -> Iterator[int | None]:
        """A descriptor of ``<root>/<owner>/<id>/<parts...>``, or None when any component is
        missing, a link, not a directory, not the owner's, or writable by others."""
        fd = self._open_dir(owner, job_id, parts)
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    def _open_dir(self, owner: str, job_id: int, parts: tuple[str, ...]) -> int | None:
        if not layout.is_job_id(job_id):
            return None
        return self._walk(owner, (str(job_id), *parts))

    def _walk(self, owner: str, parts: tuple[str, ...]) -> int | None:
        """A descriptor of ``<root>/<owner>/<parts...>``, each component the owner's directory
        and writable by nobody else (opened by descriptor, no link followed); or None."""
        uid = owner_uid(owner)
        if uid is None:
            return None
        try:
            fd = os.open(self.jobs_root, _ROOT_FLAGS)
        except OSError:
            return None
        for part in (owner, *parts):
            parent = fd
            try:
                fd = _open_checked(parent, part, DIR_FLAGS, lambda info: _trusted(info, uid))
            finally:
                os.close(parent)
            if fd is None:
                return None
        return fd

    @contextmanager
    def open_file(self, owner: str, job_id: int, *parts: str) -> Iterator[int | None]:
        """A descriptor of the owner's regular file ``<root>/<owner>/<id>/<parts...>``, or None."""
        *dirs, name = parts
        fd = None
        with self.open_dir(owner, job_id, *dirs) as dir_fd:
            if dir_fd is not None:
                fd = open_owned_file(dir_fd, name, owner_uid(owner))
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    def read_owner_tail(self, owner: str, name: str, limit: int) -> str | None:
        """The end (``limit`` bytes, decoded) of the owner's regular file ``<root>/<owner>/<name>``,
        beside the job directories (a batch scheduler's output), with open_file's checks; or None."""
        if not name or "/" in name or name in (".", ".."):
            return None
        fd = self._walk(owner, ())
        if fd is None:
            return None
        try:
            return read_tail(fd, name, owner_uid(owner), limit)
        finally:
            os.close(fd)

    def read_small(self, owner: str, job_id: int, *parts: str, limit: int) -> bytes | None:
        """The whole content of a regular file of at most ``limit`` bytes, or None."""
        with self.open_file(owner, job_id, *parts) as fd:
            if fd is None:
                return None
            data = os.read(fd, limit + 1)
        return None if len(data) > limit else data


def open_owned_file(dir_fd: int, name: str, uid: int | None) -> int | None:
    """Open ``name`` in ``dir_fd`` for reading if it is a regular file owned by ``uid`` with a
    single link and no group/other write bit; else None. Never follows a link, never blocks."""
    if uid is None:
        return None
    return _open_checked(dir_fd, name, FILE_FLAGS, lambda info: is_owned_file(info, uid))


def _open_checked(dir_fd: int, name: str, flags: int,
                  check: Callable[[os.stat_result], bool]) -> int | None:
    """A descriptor of ``name`` in ``dir_fd`` opened with ``flags`` if ``check`` accepts what
    it is (checked on the open descriptor), else None."""
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except (OSError, ValueError):
        return None
    try:
        ok = check(os.fstat(fd))
    except OSError:
        ok = False
    if not ok:
        os.close(fd)
        return None
    return fd


def read_tail(dir_fd: int, name: str, uid: int | None, limit: int) -> str | None:
    """The last ``limit`` bytes (from a line start when cut) of an owned regular file, decoded."""
    fd = open_owned_file(dir_fd, name, uid)
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - limit)
        data = os.pread(fd, limit, start)
    except OSError:
        return None
    finally:
        os.close(fd)
    if start > 0 and b"\n" in data:
        data = data[data.index(b"\n") + 1:]  # the cut line would start mid-way
    return data.decode("utf-8", errors="replace")
