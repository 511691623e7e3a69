"""JobFiles on the job directory ``<jobs_root>/<id>/`` shared with the runner.

Everything under a job directory except ``job.json`` and ``artifact-patterns`` is written by
the runner as the engineer, so nothing there is trusted: every path component below the jobs
root is opened with O_NOFOLLOW relative to its parent's descriptor, and only regular files
are read.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from autobuild.domain.artifacts import (
    ArtifactInfo,
    ArtifactNotFound,
    is_plain_name,
    parse_checksums,
    resolve_artifact_path,
)
from autobuild.domain.jobs import TERMINAL_STATUSES, Job
from autobuild.domain.ports import RunnerStatus

log = logging.getLogger(__name__)

JOB_DIR_MODE = 0o2770  # setgid: files keep the jobs root's group, which the service reads through
PARAMETER_FILE_MODE = 0o640
LOG_PATH = ("logs", "build.log")
STATUS_PATH = ("status.json",)
ARTIFACTS_DIR = "artifacts"
CHECKSUMS_PATH = ("artifacts.sha256",)  # runner-written, sha256sum format
MAX_CHECKSUMS_BYTES = 1024 * 1024
BUILD_SETTINGS = "build-settings"
_SETTING_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
MAX_STATUS_BYTES = 64 * 1024
TASK_LOGS_DIR = ("logs", "failed-tasks")
MAX_TASK_LOG_TAIL = 8 * 1024
MAX_TASK_LOGS = 50

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted by a build must not hang the service.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _dir_name(job_id: object) -> str | None:
    """The directory name of a job id, or None for anything but a positive int."""
    if isinstance(job_id, int) and not isinstance(job_id, bool) and job_id > 0:
        return str(job_id)
    return None


def _utc_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _write_atomically(directory: Path, name: str, data: bytes, mode: int) -> None:
    """Readers see the old file or the whole new one, never a half-written one."""
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, directory / name)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class JobDirectory:
    """Implements JobFiles. Reads never raise for a missing or odd file: they report nothing."""

    def __init__(self, jobs_root: Path) -> None:
        self._root = Path(jobs_root)

    def path(self, job_id: int) -> Path:
        """The job's directory (it may not exist)."""
        name = _dir_name(job_id)
        if name is None:
            raise ValueError(f"not a job id: {job_id!r}")
        return self._root / name

    def create(self, job: Job, artifact_patterns: list[str],
               build_settings: Mapping[str, str] | None = None) -> None:
        """Make ``<root>/<id>`` (mode 2770) with ``job.json``, ``artifact-patterns`` and
        ``build-settings`` (``KEY=VALUE`` lines: ``build_settings`` plus the job's KAS_FILE),
        all 0640. Raises ValueError for a key or value the runner could not read back.

        Ids are never reused, so a leftover directory means the database was replaced: it is
        moved aside to ``<id>.orphaned-<unix time>`` (kept, never mixed into the new job).
        """
        directory = self.path(job.id)  # type: ignore[arg-type]
        if os.path.lexists(directory):
            aside = directory.with_name(f"{directory.name}.orphaned-{int(datetime.now(UTC).timestamp())}")
            log.warning("job directory %s already exists (database replaced?); moved to %s",
                        directory, aside)
            os.rename(directory, aside)
        directory.mkdir(mode=JOB_DIR_MODE)
        os.chmod(directory, JOB_DIR_MODE)  # mkdir's mode is cut by the umask and drops setgid
        parameters = {
            "id": job.id,
            "owner": job.owner,
            "repo_url": job.repo_url,
            "ref": job.ref,
            "machine": job.machine,
            "target": job.target,
            "created_at": _utc_text(job.created_at),
            "artifact_patterns": list(artifact_patterns),
            "kas_file": job.kas_file,
        }
        settings = dict(build_settings or {})
        if job.kas_file:
            settings["KAS_FILE"] = job.kas_file
        settings_text = _settings_text(settings)
        _write_atomically(directory, "job.json",
                          (json.dumps(parameters, indent=2) + "\n").encode(), PARAMETER_FILE_MODE)
        _write_atomically(directory, "artifact-patterns",
                          "".join(f"{p}\n" for p in artifact_patterns).encode(),
                          PARAMETER_FILE_MODE)
        _write_atomically(directory, BUILD_SETTINGS, settings_text.encode(), PARAMETER_FILE_MODE)

    # --- log ---------------------------------------------------------------------------------

    def read_log(self, job_id: int, offset: int, limit: int) -> bytes:
        """Up to ``limit`` bytes of ``logs/build.log`` from byte ``offset``; b"" if none."""
        if limit <= 0:
            return b""
        with self._open_file(job_id, *LOG_PATH) as fd:
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

    def log_size(self, job_id: int) -> int:
        with self._open_file(job_id, *LOG_PATH) as fd:
            return os.fstat(fd).st_size if fd is not None else 0

    # --- status ------------------------------------------------------------------------------

    def read_status(self, job_id: int) -> RunnerStatus | None:
        """The runner's final status from ``status.json``; None unless complete and terminal."""
        with self._open_file(job_id, *STATUS_PATH) as fd:
            if fd is None:
                return None
            raw = os.read(fd, MAX_STATUS_BYTES + 1)
        if len(raw) > MAX_STATUS_BYTES:
            return None
        try:
            data = json.loads(raw)
        except ValueError:  # also covers bad UTF-8
            return None
        if not isinstance(data, dict):
            return None
        status, exit_code = data.get("status"), data.get("exit_code")
        if not isinstance(status, str) or status not in TERMINAL_STATUSES:
            return None
        if type(exit_code) is not int:  # bool is an int subclass, and not an exit code
            return None
        return RunnerStatus(status=str(status), exit_code=exit_code,
                            finished_at=_parse_time(data.get("finished_at")))

    # --- logs of failed tasks ----------------------------------------------------------------

    def read_task_logs(self, job_id: int) -> dict[str, str]:
        """Name -> the last 8 KiB (from a line start when cut) of each regular file with a
        plain name in ``logs/failed-tasks/``; at most 50 files, by name."""
        tails: dict[str, str] = {}
        with self._open_dir(job_id, *TASK_LOGS_DIR) as dir_fd:
            if dir_fd is None:
                return tails
            with os.scandir(dir_fd) as entries:
                names = sorted(e.name for e in entries if is_plain_name(e.name))
            for name in names:
                if len(tails) >= MAX_TASK_LOGS:
                    break
                tail = _read_tail(dir_fd, name, MAX_TASK_LOG_TAIL)
                if tail is not None:
                    tails[name] = tail
        return tails

    # --- artifacts ---------------------------------------------------------------------------

    def list_artifacts(self, job_id: int) -> list[ArtifactInfo]:
        """Regular files in ``artifacts/`` with plain names, sorted by name, each with the
        sha256 the runner recorded in ``artifacts.sha256`` (None if it has none)."""
        sums = self._read_checksums(job_id)
        with self._open_dir(job_id, ARTIFACTS_DIR) as dir_fd:
            if dir_fd is None:
                return []
            found = []
            with os.scandir(dir_fd) as entries:
                for entry in entries:
                    if not is_plain_name(entry.name):
                        continue
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # removed while listing
                    if stat.S_ISREG(info.st_mode):
                        found.append(_artifact_info(entry.name, info, sums.get(entry.name)))
        return sorted(found, key=lambda item: item.name)

    def _read_checksums(self, job_id: int) -> dict[str, str]:
        with self._open_file(job_id, *CHECKSUMS_PATH) as fd:
            if fd is None:
                return {}
            raw = os.read(fd, MAX_CHECKSUMS_BYTES + 1)
        if len(raw) > MAX_CHECKSUMS_BYTES:
            return {}
        return parse_checksums(raw.decode("utf-8", errors="replace"))

    def open_artifact(self, job_id: int, name: str) -> tuple[BinaryIO, ArtifactInfo]:
        """The open artifact and its size/mtime, both from the same descriptor.

        Raises ArtifactNotFound for anything but a regular file directly inside ``artifacts/``
        (bad names, symlinks, FIFOs, directories, a symlinked artifacts dir, bad job ids).
        """
        resolve_artifact_path(PurePosixPath(ARTIFACTS_DIR), name)  # rejects every non-plain name
        with self._open_dir(job_id, ARTIFACTS_DIR) as dir_fd:
            if dir_fd is None:
                raise ArtifactNotFound(name)
            try:
                fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
            except (OSError, ValueError):
                raise ArtifactNotFound(name) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ArtifactNotFound(name)
            return os.fdopen(fd, "rb"), _artifact_info(name, info)
        except BaseException:
            os.close(fd)
            raise

    # --- retention ---------------------------------------------------------------------------

    def usage(self, job_id: int) -> int:
        """Bytes allocated to the files under the job directory (like ``du``): symlinks are not
        followed and other filesystems not entered; what cannot be read counts as 0."""
        name = _dir_name(job_id)
        if name is None:
            return 0
        top = self._root / name
        try:
            device = os.lstat(top).st_dev
        except OSError:
            return 0
        total = 0
        for directory, dirnames, filenames in os.walk(top, followlinks=False):
            for entry in (*dirnames, *filenames):
                try:
                    info = os.lstat(os.path.join(directory, entry))
                except OSError:
                    continue
                if info.st_dev == device:
                    total += info.st_blocks * 512
            dirnames[:] = [d for d in dirnames
                           if _same_device(os.path.join(directory, d), device)]
        return total

    def remove(self, job_id: int) -> None:
        """Unlink the entries left in the job directory (the runner removed its own first) and
        the directory itself; nothing if it is gone. A directory left inside (the runner's,
        not purged) is never entered: OSError names it and nothing is deleted."""
        name = _dir_name(job_id)
        if name is None:
            raise ValueError(f"not a job id: {job_id!r}")
        root_fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                dir_fd = os.open(name, _DIR_FLAGS, dir_fd=root_fd)
            except FileNotFoundError:
                return
            try:
                with os.scandir(dir_fd) as entries:
                    found = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
                if left := [entry for entry, is_dir in found if is_dir]:
                    # Checked before deleting anything: the job keeps all its files or none.
                    raise OSError(errno.ENOTEMPTY, f"{self._root / name} still holds "
                                  f"{', '.join(sorted(left))}")
                for entry, _ in found:
                    os.unlink(entry, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
            os.rmdir(name, dir_fd=root_fd)
        finally:
            os.close(root_fd)

    # --- safe opening ------------------------------------------------------------------------

    @contextmanager
    def _open_dir(self, job_id: int, *parts: str) -> Iterator[int | None]:
        """A descriptor of ``<root>/<id>/<parts...>`` with no symlink below the root, or None."""
        name = _dir_name(job_id)
        fd = None
        if name is not None:
            try:
                fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                for part in (name, *parts):
                    parent, fd = fd, None
                    try:
                        fd = os.open(part, _DIR_FLAGS, dir_fd=parent)
                    finally:
                        os.close(parent)
            except OSError:
                fd = None
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    def read_runner_pid(self, job_id: int) -> int | None:
        """The first number of ``runner.pid`` ("<runner pid> <build pgid>"), or None."""
        with self._open_file(job_id, "runner.pid") as fd:
            if fd is None:
                return None
            fields = os.read(fd, 64).split()
        if fields and fields[0].isdigit() and 0 < int(fields[0]) < 2**22:
            return int(fields[0])
        return None

    @contextmanager
    def _open_file(self, job_id: int, *parts: str) -> Iterator[int | None]:
        """A descriptor of the regular file ``<root>/<id>/<parts...>``, or None."""
        *dirs, filename = parts
        fd = None
        with self._open_dir(job_id, *dirs) as dir_fd:
            if dir_fd is not None:
                try:
                    fd = os.open(filename, _FILE_FLAGS, dir_fd=dir_fd)
                except OSError:
                    fd = None
                if fd is not None and not stat.S_ISREG(os.fstat(fd).st_mode):
                    os.close(fd)
                    fd = None
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)


def _read_tail(dir_fd: int, name: str, limit: int) -> str | None:
    """The last ``limit`` bytes of the regular file ``name`` in ``dir_fd``, or None."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        start = max(0, info.st_size - limit)
        data = os.pread(fd, limit, start)
    except OSError:
        return None
    finally:
        os.close(fd)
    if start > 0 and b"\n" in data:
        data = data[data.index(b"\n") + 1:]  # the cut line would start mid-way
    return data.decode("utf-8", errors="replace")


def _same_device(path: str, device: int) -> bool:
    try:
        return os.lstat(path).st_dev == device
    except OSError:
        return False


def _artifact_info(name: str, info: os.stat_result, sha256: str | None = None) -> ArtifactInfo:
    return ArtifactInfo(name=name, size=info.st_size,
                        mtime=datetime.fromtimestamp(info.st_mtime, UTC), sha256=sha256)


def _settings_text(settings: Mapping[str, str]) -> str:
    """``KEY=VALUE`` lines; the runner reads them literally (never sourced), one per line."""
    lines = []
    for key, value in settings.items():
        if not _SETTING_KEY.match(key):
            raise ValueError(f"not a build setting name: {key!r}")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise ValueError(f"the build setting {key} has a control character")
        lines.append(f"{key}={value}\n")
    return "".join(lines)
