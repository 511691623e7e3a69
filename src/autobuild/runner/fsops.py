"""File operations relative to directory descriptors: no path is resolved twice, no link followed.

Every helper takes a directory descriptor and a single name (never a path with ``/``), opens
with ``O_NOFOLLOW`` (and ``O_NONBLOCK`` where a FIFO could be waiting), and checks what it got
with ``fstat``. Temp files are made with ``O_EXCL`` next to their target and renamed over it.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from autobuild.domain.layout import FILE_MODE

from . import acl

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class Refused(Exception):
    """The runner will not go on; the message says why (shown to the user as is)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a single file name: {name!r}")


def open_dir(dir_fd: int | None, name: str) -> int:
    """Open directory ``name`` in ``dir_fd`` without following a link (OSError otherwise)."""
    _check_name(name)
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def make_dir(dir_fd: int, name: str, mode: int) -> int:
    """Create directory ``name`` exclusively (FileExistsError if the name is taken), open it,
    and give it ``mode``. Inside a setgid directory it inherits setgid and the group by itself;
    it is chmod-ed only when its mode differs, since a chmod by someone outside the group (an
    engineer in the service's group directory) drops setgid."""
    _check_name(name)
    os.mkdir(name, mode & 0o777, dir_fd=dir_fd)
    fd = open_dir(dir_fd, name)
    if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
        os.fchmod(fd, mode)
    return fd


def exists(dir_fd: int, name: str) -> bool:
    """True when anything (a link included) has this name."""
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def create_file(dir_fd: int, name: str, mode: int = FILE_MODE, append: bool = False) -> int:
    """Create ``name`` exclusively for writing (O_EXCL: never an existing file or link)."""
    _check_name(name)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(name, flags | (os.O_APPEND if append else 0), mode, dir_fd=dir_fd)
    os.fchmod(fd, mode)
    return fd


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@contextmanager
def atomic_file(dir_fd: int, name: str, mode: int = FILE_MODE) -> Iterator[int]:
    """Yield a descriptor of a new temp file that becomes ``name`` when the block succeeds."""
    _check_name(name)
    temp = f".{name}.{secrets.token_hex(6)}"
    fd = create_file(dir_fd, temp, mode)
    try:
        yield fd
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with _ignore_missing():
            os.unlink(temp, dir_fd=dir_fd)
        raise
    os.close(fd)
    try:
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with _ignore_missing():
            os.unlink(temp, dir_fd=dir_fd)
        raise


def write_atomically(dir_fd: int, name: str, data: bytes, mode: int = FILE_MODE) -> None:
    with atomic_file(dir_fd, name, mode) as fd:
        write_all(fd, data)


@contextmanager
def _ignore_missing() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        pass


def open_regular(dir_fd: int | None, name: str, owner: int | None = None,
                 max_size: int | None = None) -> int | None:
    """Open ``name`` for reading if it is a regular file (owned by ``owner`` when given, at
    most ``max_size`` bytes); None when missing; Refused when it is anything else."""
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise Refused(f"{name} is not a regular file") from None
        raise
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file"
    elif owner is not None and info.st_uid != owner:
        problem = "is not ours"
    elif max_size is not None and info.st_size > max_size:
        problem = "is too large"
    if problem:
        os.close(fd)
        raise Refused(f"{name} {problem}")
    return fd


def grant_group(fd: int, gid: int | None, perm: int, default: bool = False) -> bool:
    """Give group ``gid`` ``perm`` (rwx bits) on the open file or directory ``fd`` with a POSIX
    ACL (with ``default``, the default ACL of a directory, which what is made in it inherits);
    False, nothing changed, when ``gid`` is None or the filesystem has no ACLs.

    Setting an access ACL, like a chmod, clears setgid when we are not in the owning group:
    a setgid directory gets its grant by inheriting it from its parent's default ACL."""
    if gid is None:
        return False
    mode = os.fstat(fd).st_mode
    if not default and mode & stat.S_ISGID:
        raise ValueError("a setgid directory gets its grant through its parent's default ACL")
    value = acl.with_group(mode, gid, perm)
    try:
        os.setxattr(fd, acl.DEFAULT if default else acl.ACCESS, value)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            return False
        raise
    return True


def drop_default_acl(dir_fd: int) -> None:
    """Remove the default ACL of a directory (what is made in it then follows the umask)."""
    try:
        os.removexattr(dir_fd, acl.DEFAULT)
    except OSError as exc:
        if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise


def read_fd(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(fd, min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def fd_path(fd: int) -> str:
    """The path of an open directory as the kernel knows it (for programs that need a path)."""
    return os.readlink(f"/proc/self/fd/{fd}")


def tree_size(dir_fd: int) -> int:
    """Bytes used by everything below ``dir_fd`` on its own filesystem (links not followed;
    what cannot be read counts 0). Iterative: a tree may be thousands of levels deep."""
    device = os.fstat(dir_fd).st_dev
    total = 0
    for parent, name, info in _walk(dir_fd, device, make_searchable=False):
        total += info.st_blocks * 512
    return total


def _walk(top: int, device: int, make_searchable: bool):
    """Yield (dir fd, name, lstat) for every entry below ``top``, children before their
    directory, without recursion and with one open descriptor per level. Directories on
    another filesystem are yielded but not entered; unreadable ones are skipped (or made
    searchable, with ``make_searchable``, which only works on our own)."""
    stack: list[tuple[int, list[str]]] = [(top, listdir(top))]
    pending: list[tuple[str, os.stat_result]] = []  # the directory each level was entered from
    try:
        while stack:
            fd, names = stack[-1]
            if not names:
                stack.pop()
                if pending:
                    os.close(fd)
                    name, info = pending.pop()
                    yield stack[-1][0], name, info
                continue
            name = names.pop()
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(info.st_mode) or info.st_dev != device:
                yield fd, name, info
                continue
            if make_searchable and info.st_mode & 0o700 != 0o700:
                os.chmod(name, stat.S_IMODE(info.st_mode) | 0o700, dir_fd=fd)
            try:
                child = open_dir(fd, name)
            except OSError:
                if make_searchable:
                    raise
                yield fd, name, info
                continue
            stack.append((child, listdir(child)))
            pending.append((name, info))
    finally:
        for fd, _ in stack[1:]:
            os.close(fd)


def listdir(dir_fd: int) -> list[str]:
    # os.listdir(fd) would share (and move) the descriptor's position: list a duplicate.
    dup = os.dup(dir_fd)
    try:
        return os.listdir(dup)
    finally:
        os.close(dup)


def remove_tree(dir_fd: int, name: str) -> None:
    """Delete ``name`` in ``dir_fd`` and everything below it: never following a link, never
    entering another filesystem, making read-only directories writable first (Yocto leaves
    some). Raises OSError when something could not be removed."""
    _check_name(name)
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    device = os.fstat(dir_fd).st_dev
    if info.st_dev != device:
        raise OSError(errno.EXDEV, f"{name} is on another filesystem")
    child = open_dir(dir_fd, name)
    try:
        opened = os.fstat(child)
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            raise OSError(errno.EAGAIN, f"{name} changed while being removed")
        _empty(child, device)
    finally:
        os.close(child)
    os.rmdir(name, dir_fd=dir_fd)


def _empty(dir_fd: int, device: int) -> None:
    info = os.fstat(dir_fd)
    if info.st_mode & 0o700 != 0o700:
        os.fchmod(dir_fd, stat.S_IMODE(info.st_mode) | 0o700)
    for parent, name, entry in _walk(dir_fd, device, make_searchable=True):
        if not stat.S_ISDIR(entry.st_mode):
            os.unlink(name, dir_fd=parent)
        elif entry.st_dev != device:
            raise OSError(errno.EXDEV, f"{name} is on another filesystem")
        else:
            os.rmdir(name, dir_fd=parent)


def human_size(size: int) -> str:
    """``12 KiB``, ``340 MiB``, ``1.5 GiB`` (as the log has always said it)."""
    kib = size // 1024
    if kib >= 1048576:
        return f"{kib // 1048576}.{kib % 1048576 * 10 // 1048576} GiB"
    if kib >= 1024:
        return f"{kib // 1024} MiB"
    return f"{kib} KiB"
