"""JobFiles on the build tree ``<jobs root>/<owner>/<id>/`` that the runner writes as the owner.

Read-only: the service writes nothing there. Every read goes through BuildTree, which opens
each component by descriptor without following links and only accepts what the job's owner
wrote (see build_tree.py).
"""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from autobuild.domain import layout
from autobuild.domain.artifacts import (
    ArtifactInfo,
    ArtifactList,
    ArtifactNotFound,
    artifact_list,
    is_plain_name,
    parse_checksums,
    resolve_artifact_path,
)
from autobuild.domain.jobs import Job
from autobuild.domain.logs import LogNotFound

from .build_tree import (
    DIR_FLAGS,
    BuildTree,
    is_owned_file,
    open_owned_file,
    owner_uid,
    read_tail,
)

MAX_TASK_LOG_TAIL = 8 * 1024
MAX_TASK_LOGS_SHOWN = 50
MAX_USAGE_DEPTH = 64


class JobDirectory:
    """Implements JobFiles. Reads never raise for a missing or odd file: they report nothing."""

    def __init__(self, jobs_root: Path) -> None:
        self._tree = BuildTree(jobs_root)

    # --- log ---------------------------------------------------------------------------------

    def read_log(self, job: Job, offset: int, limit: int) -> bytes:
        """Up to ``limit`` bytes of ``logs/build.log`` from byte ``offset``; b"" if none."""
        if limit <= 0:
            return b""
        with self._tree.open_file(job.owner, job.id, *layout.LOG_PATH) as fd:
            if fd is None:
                return b""
            chunks: list[bytes] = []
            position, wanted = max(0, offset), limit
            while wanted > 0:
                chunk = os.pread(fd, wanted, position)
                if not chunk:
                    break
                chunks.append(chunk)
                position += len(chunk)
                wanted -= len(chunk)
            return b"".join(chunks)

    def log_size(self, job: Job) -> int:
        with self._tree.open_file(job.owner, job.id, *layout.LOG_PATH) as fd:
            return os.fstat(fd).st_size if fd is not None else 0

    def read_digest(self, job: Job, limit: int) -> bytes | None:
        return self._tree.read_small(job.owner, job.id, *layout.DIGEST_PATH, limit=limit)

    def read_timing(self, job: Job, limit: int) -> bytes | None:
        with self._tree.open_file(job.owner, job.id, layout.TIMING) as fd:
            if fd is None:
                return None
            chunks, size = [], 0
            while size <= limit and (chunk := os.read(fd, min(1 << 20, limit + 1 - size))):
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks)

    # --- logs of failed tasks ----------------------------------------------------------------

    def read_task_logs(self, job: Job) -> dict[str, str]:
        """Name -> the last 8 KiB (from a line start when cut) of each regular file with a
        plain name in ``logs/failed-tasks/``; at most 50 files, by name."""
        tails: dict[str, str] = {}
        uid = owner_uid(job.owner)
        with self._tree.open_dir(job.owner, job.id, *layout.TASK_LOGS_PATH) as dir_fd:
            if dir_fd is None:
                return tails
            with os.scandir(dir_fd) as entries:
                names = sorted(e.name for e in entries if is_plain_name(e.name))
            for name in names:
                if len(tails) >= MAX_TASK_LOGS_SHOWN:
                    break
                tail = read_tail(dir_fd, name, uid, MAX_TASK_LOG_TAIL)
                if tail is not None:
                    tails[name] = tail
        return tails

    # --- artifacts ---------------------------------------------------------------------------

    def list_artifacts(self, job: Job) -> ArtifactList:
        """The owner's regular files in ``artifacts/`` with plain names, sorted by name, each
        with the sha256 the runner recorded in ``artifacts.sha256`` (None if it has none): the
        first MAX_ARTIFACTS_LISTED of them; ``more`` counts the other files.

        Only the listed ones are stat'ed and checked: a build may leave 200k files (4.5 s of
        CPU when each was stat'ed and checked); the names of the rest are read, not looked at
        (``more`` counts them whatever they are, as files of the directory)."""
        raw = self._tree.read_small(job.owner, job.id, layout.CHECKSUMS,
                                    limit=layout.MAX_CHECKSUMS_BYTES)
        sums = parse_checksums(raw.decode("utf-8", errors="replace")) if raw else {}
        uid = owner_uid(job.owner)
        with self._tree.open_dir(job.owner, job.id, layout.ARTIFACTS_DIR) as dir_fd:
            if dir_fd is None:
                return ArtifactList()

            def look(name: str) -> ArtifactInfo | None:
                try:
                    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    return None  # removed while listing
                return (_artifact_info(name, info, sums.get(name))
                        if is_owned_file(info, uid) else None)

            with os.scandir(dir_fd) as entries:
                # is_file without following links: the type from the directory entry (d_type)
                names = [entry.name for entry in entries if entry.is_file(follow_symlinks=False)]
            return artifact_list(names, look)

    def open_artifact(self, job: Job, name: str) -> tuple[BinaryIO, ArtifactInfo]:
        """The open artifact and its size/mtime, both from the same descriptor.

        Raises ArtifactNotFound for anything but the owner's regular file directly inside
        ``artifacts/`` (bad names, links, FIFOs, directories, a linked artifacts dir...)."""
        resolve_artifact_path(PurePosixPath(layout.ARTIFACTS_DIR), name)  # plain names only
        with self._tree.open_dir(job.owner, job.id, layout.ARTIFACTS_DIR) as dir_fd:
            fd = None if dir_fd is None else open_owned_file(dir_fd, name, owner_uid(job.owner))
        if fd is None:
            raise ArtifactNotFound(name)
        try:
            return os.fdopen(fd, "rb"), _artifact_info(name, os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise

    def open_log(self, job: Job) -> tuple[BinaryIO, int]:
        """The open ``logs/build.log`` and its size, from the same descriptor; LogNotFound
        unless it is the owner's regular file with one link (the checks open_artifact makes)."""
        with self._tree.open_dir(job.owner, job.id, layout.LOGS_DIR) as dir_fd:
            fd = (None if dir_fd is None
                  else open_owned_file(dir_fd, layout.BUILD_LOG, owner_uid(job.owner)))
        if fd is None:
            raise LogNotFound(job.id)
        try:
            return os.fdopen(fd, "rb"), os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            raise

    # --- buildhistory ------------------------------------------------------------------------

    def read_buildhistory(self, job: Job, name: str, limit: int) -> bytes | None:
        """``buildhistory/<name>`` if it is one of layout.BUILDHISTORY_IMAGE_FILES and the
        owner's regular file of at most ``limit`` bytes; else None."""
        if name not in layout.BUILDHISTORY_IMAGE_FILES:
            return None
        return self._tree.read_small(job.owner, job.id, layout.BUILDHISTORY_DIR, name,
                                     limit=limit)

    # --- retention ---------------------------------------------------------------------------

    def usage(self, job: Job) -> int:
        """Bytes allocated to the files of the build (like ``du``): links are not followed,
        other filesystems not entered; what cannot be read counts as 0."""
        with self._tree.open_dir(job.owner, job.id) as top:
            if top is None:
                return 0
            return _usage(top, os.fstat(top).st_dev)


def _usage(top: int, device: int) -> int:
    """Like ``du -x`` below ``top``, iteratively, at most MAX_USAGE_DEPTH levels deep (a build
    may leave a tree thousands of levels deep; what lies deeper counts as 0)."""
    total = 0
    stack: list[tuple[int, list[str]]] = [(top, _names(top))]
    try:
        while stack:
            fd, names = stack[-1]
            if not names:
                stack.pop()
                if stack:
                    os.close(fd)
                continue
            name = names.pop()
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            if info.st_dev != device:
                continue
            total += info.st_blocks * 512
            if stat.S_ISDIR(info.st_mode) and len(stack) < MAX_USAGE_DEPTH:
                try:
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue  # work/ is the owner's alone: the service cannot look in
                stack.append((child, _names(child)))
    finally:
        for fd, _ in stack[1:]:
            os.close(fd)
    return total


def _names(dir_fd: int) -> list[str]:
    try:
        return os.listdir(dir_fd)
    except OSError:
        return []


def _artifact_info(name: str, info: os.stat_result, sha256: str | None = None) -> ArtifactInfo:
    return ArtifactInfo(name=name, size=info.st_size,
                        mtime=datetime.fromtimestamp(info.st_mtime, UTC), sha256=sha256)
