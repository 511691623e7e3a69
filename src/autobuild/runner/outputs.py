"""What a build leaves for people: its images (with checksums), the logs of failed tasks, and
buildhistory's files about the built image (when the build inherits buildhistory).

Both read from the private workspace (``work/``, 0700) and write into the job directory
through its descriptors. A link in the deploy directory is followed only when it stays inside
the build tree, a task log only when it is a regular file inside the workspace: neither a
repository nor a log line can make the runner publish, say, ``~/.ssh/id_rsa``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator

from autobuild.domain.artifacts import is_plain_name, matches_any
from autobuild.domain.failures import disk_full, failure_logfile, task_log_name
from autobuild.domain.layout import (
    BUILDHISTORY_DIR, BUILDHISTORY_IMAGE_FILES, BUILDHISTORY_IMAGES, CHECKSUMS, FILE_MODE,
    JOB_DIR_MODE, MAX_BUILDHISTORY_FILE_BYTES, MAX_BUILDHISTORY_LIBCS, MAX_TASK_LOG_BYTES,
    MAX_TASK_LOGS, TASK_LOGS_DIR, TASK_LOGS_PATH, WORK_DIR, machine_arch,
)

from .fsops import (
    READ_FLAGS, listdir, atomic_file, exists, fd_path, grant_group, make_dir, open_dir,
    write_all, write_atomically,
)

Say = Callable[[str], None]
CHUNK = 1 << 20


def _inside(path: str, tree: str) -> bool:
    return path.startswith(tree.rstrip("/") + "/")


def _resolve(path: str) -> str | None:
    try:
        return os.path.realpath(path, strict=True)
    except OSError:
        return None


def _open_inside(path: str, tree: str) -> int | None:
    """Open ``path`` for reading if what was opened is a regular file inside ``tree``: checked
    on the descriptor (where the kernel says it is), so a directory of the path that a
    leftover build process swaps for a link after the path was resolved cannot lead out."""
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode) and _inside(fd_path(fd), tree):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def deploy_subdir(build_rel: str, machine: str) -> str:
    """``<build dir>/tmp/deploy/images/<machine>`` relative to the workspace."""
    return f"{build_rel}/tmp/deploy/images/{machine}"


def collect_artifacts(work_fd: int, build_rel: str, machine: str, patterns: tuple[str, ...],
                      artifacts_fd: int, job_fd: int, job_path: str, say: Say,
                      web_gid: int | None = None) -> list[str]:
    """Copy the deployed images matching ``patterns`` into artifacts/ (0640, temp + rename;
    readable by group ``web_gid`` too when given) and write artifacts.sha256; returns the
    names collected."""
    deploy_rel = deploy_subdir(build_rel, machine)
    shown = f"{job_path}/{WORK_DIR}/{deploy_rel}"
    work = fd_path(work_fd)
    tree = _resolve(f"{work}/{build_rel}")
    deploy = _resolve(f"{work}/{deploy_rel}")
    if tree is None or deploy is None or not os.path.isdir(deploy):
        say(f"no artifacts matched: {shown} does not exist")
        return []
    if not _inside(tree, work) or not _inside(deploy, tree):
        say(f"no artifacts collected: {shown} is not inside the build's workspace")
        return []
    deploy_fd = os.open(deploy, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if not _inside(fd_path(deploy_fd), tree):  # swapped for a link since it was resolved
        os.close(deploy_fd)
        say(f"no artifacts collected: {shown} is not inside the build's workspace")
        return []
    sums: list[tuple[str, str]] = []
    try:
        for name in sorted(listdir(deploy_fd)):
            if not is_plain_name(name) or not matches_any(name, patterns):
                continue
            source = _open_artifact(deploy_fd, deploy, tree, name, say)
            if source is None:
                continue
            try:
                digest, size = _copy(source, artifacts_fd, name, web_gid=web_gid)
            finally:
                os.close(source)
            say(f"collected {name} ({size} bytes)")
            sums.append((name, digest))
    finally:
        os.close(deploy_fd)
    if not sums:
        say(f"no artifacts matched {' '.join(patterns) or '(no patterns)'} in {shown}")
        return []
    write_atomically(job_fd, CHECKSUMS, "".join(f"{d}  {n}\n" for n, d in sums).encode())
    say(f"sha256 of {len(sums)} artifact(s) in {CHECKSUMS}")
    return [name for name, _ in sums]


def _open_artifact(deploy_fd: int, deploy: str, tree: str, name: str, say: Say) -> int | None:
    info = os.stat(name, dir_fd=deploy_fd, follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        target = _resolve(f"{deploy}/{name}")
        if target is None:
            say(f"skipped {name}: its link leads nowhere")
            return None
        if not _inside(target, tree):
            say(f"skipped {name}: its link leads outside the build tree")
            return None
        fd = _open_inside(target, tree)
        if fd is None:
            say(f"skipped {name}: not a regular file inside the build tree")
            return None
    else:
        try:
            fd = os.open(name, READ_FLAGS, dir_fd=deploy_fd)
        except OSError:
            say(f"skipped {name}: not a regular file")
            return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        say(f"skipped {name}: not a regular file")
        return None
    return fd


def _copy(source: int, dir_fd: int, name: str, offset: int = 0,
          web_gid: int | None = None, limit: int | None = None) -> tuple[str, int]:
    """Copy ``source`` from ``offset`` on (at most ``limit`` bytes: a file still growing is
    cut there) into ``dir_fd/name`` atomically; its sha256 and size."""
    digest, size = hashlib.sha256(), 0
    with atomic_file(dir_fd, name, FILE_MODE) as out:
        grant_group(out, web_gid, 0o4)  # before the rename: published with it
        while chunk := os.pread(source, CHUNK if limit is None else min(CHUNK, limit - size),
                                offset + size):
            digest.update(chunk)
            write_all(out, chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# --- logs of failed tasks -----------------------------------------------------------------

def log_lines(log_fd: int) -> Iterator[str]:
    """The lines of the build log, read through its descriptor from the start."""
    offset, pending = 0, b""
    while chunk := os.pread(log_fd, CHUNK, offset):
        offset += len(chunk)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield line.decode("utf-8", "replace")
    if pending:
        yield pending.decode("utf-8", "replace")


def log_says_disk_full(log_fd: int) -> bool:
    return any(disk_full(line) for line in log_lines(log_fd))


def save_task_logs(log_fd: int, work_fd: int, logs_fd: int, job_path: str, say: Say) -> int:
    """Copy (the end of) every task log named in a "Logfile of failure" line into
    logs/failed-tasks/<task_log_name>; returns how many were tried."""
    # Read them all first: this function's own messages go to the same log.
    named = [p for p in map(failure_logfile, log_lines(log_fd)) if p]
    work = fd_path(work_fd)
    dest_fd: int | None = None
    tried = 0
    try:
        for path in dict.fromkeys(named):
            if not path.startswith("/"):
                continue
            real = _resolve(path)
            if real is None or not _inside(real, work):
                say(f"not saving the task log {path}: it is not inside the build's workspace")
                continue
            opened = _open_inside(real, work)
            if opened is None:
                say(f"not saving the task log {path}: not a regular file inside the workspace")
                continue
            source = opened
            try:
                name = task_log_name(path)
                if dest_fd is None:
                    dest_fd = _task_logs_dir(logs_fd)
                    if dest_fd is None:
                        say(f"not saving task logs: cannot create "
                            f"{job_path}/{'/'.join(TASK_LOGS_PATH)}")
                        return tried
                if exists(dest_fd, name):
                    continue
                size = os.fstat(source).st_size
                try:
                    _copy(source, dest_fd, name, offset=max(0, size - MAX_TASK_LOG_BYTES))
                    say(f"saved the log of the failed task as {'/'.join(TASK_LOGS_PATH)}/{name}")
                except OSError:
                    say(f"could not save the task log {path}")
            finally:
                os.close(source)
            tried += 1
            if tried >= MAX_TASK_LOGS:
                break
    finally:
        if dest_fd is not None:
            os.close(dest_fd)
    return tried


def _task_logs_dir(logs_fd: int) -> int | None:
    try:
        return open_dir(logs_fd, TASK_LOGS_DIR)
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        return make_dir(logs_fd, TASK_LOGS_DIR, JOB_DIR_MODE)
    except OSError:
        return None


# --- buildhistory of the built image ------------------------------------------------------

def buildhistory_subdir(build_rel: str, machine: str) -> str:
    """``<build dir>/buildhistory/images/<MACHINE_ARCH>`` relative to the workspace (the
    <TCLIBC>/<image> directories are below it)."""
    return f"{build_rel}/{BUILDHISTORY_DIR}/{BUILDHISTORY_IMAGES}/{machine_arch(machine)}"


def collect_buildhistory(work_fd: int, build_rel: str, machine: str, target: str,
                         job_fd: int, say: Say) -> list[str]:
    """Copy buildhistory's files about the image ``target`` (layout.BUILDHISTORY_IMAGE_FILES,
    each a regular file of at most MAX_BUILDHISTORY_FILE_BYTES, never through a link) into
    <job>/buildhistory/; returns the names copied. Nothing there is not an error: most builds
    do not inherit buildhistory."""
    work = fd_path(work_fd)
    tree = _resolve(f"{work}/{build_rel}")
    images = _resolve(f"{work}/{buildhistory_subdir(build_rel, machine)}")
    if tree is None or images is None or not _inside(tree, work) or not _inside(images, tree):
        return []
    if not is_plain_name(target):
        return []
    try:
        images_fd = os.open(images, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        if not _inside(fd_path(images_fd), tree):  # swapped for a link since it was resolved
            return []
        image_fd = _image_dir(images_fd, target)
        if image_fd is None:
            return []
        try:
            return _copy_buildhistory(image_fd, job_fd, say)
        finally:
            os.close(image_fd)
    finally:
        os.close(images_fd)


def _image_dir(images_fd: int, target: str) -> int | None:
    """``<TCLIBC>/<target>`` below images/<MACHINE_ARCH>: the first libc (by name) that has it."""
    libcs = sorted(name for name in listdir(images_fd) if is_plain_name(name))
    for libc in libcs[:MAX_BUILDHISTORY_LIBCS]:
        try:
            libc_fd = open_dir(images_fd, libc)
        except (OSError, ValueError):
            continue
        try:
            return open_dir(libc_fd, target)
        except (OSError, ValueError):
            continue
        finally:
            os.close(libc_fd)
    return None


def _copy_buildhistory(image_fd: int, job_fd: int, say: Say) -> list[str]:
    copied: list[str] = []
    dest_fd: int | None = None
    try:
        for name in BUILDHISTORY_IMAGE_FILES:
            try:
                source = os.open(name, READ_FLAGS, dir_fd=image_fd)
            except OSError:
                continue  # absent, or a link
            try:
                info = os.fstat(source)
                if not stat.S_ISREG(info.st_mode):
                    continue
                if info.st_size > MAX_BUILDHISTORY_FILE_BYTES:
                    say(f"not keeping buildhistory's {name}: {info.st_size} bytes, more than "
                        f"{MAX_BUILDHISTORY_FILE_BYTES}")
                    continue
                if dest_fd is None:
                    dest_fd = make_dir(job_fd, BUILDHISTORY_DIR, JOB_DIR_MODE)
                _copy(source, dest_fd, name, limit=MAX_BUILDHISTORY_FILE_BYTES)
                copied.append(name)
            except OSError as exc:
                say(f"could not keep buildhistory's {name}: {exc.strerror or exc}")
            finally:
                os.close(source)
    finally:
        if dest_fd is not None:
            os.close(dest_fd)
    if copied:
        say(f"kept buildhistory's {' '.join(copied)} in {BUILDHISTORY_DIR}/")
    return copied
