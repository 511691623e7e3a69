"""The job directory, made exclusively by the runner and then used only through descriptors.

See ``autobuild.domain.layout`` for the layout. The jobs root is opened once; ``<owner>`` is
created if missing or else must be a real directory of ours; ``<id>`` is created exclusively
(so nothing in it can have been planted), and so is everything in it.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
from dataclasses import dataclass

from autobuild.domain.layout import (
    ARTIFACTS_DIR, BUILD_LOG, FILE_MODE, JOB_DIR_MODE, LOGS_DIR, MAX_RECORD_BYTES, OWNER_DIR_MODE,
    RUNNER_RECORD, WEB_GROUP, WORK_DIR, WORK_DIR_MODE, is_job_id,
)

from .fsops import (
    Refused, create_file, drop_default_acl, grant_group, make_dir, open_dir, open_regular,
    read_fd, write_atomically,
)


@dataclass(frozen=True)
class Identity:
    """The user we run as, from the passwd database (never from $HOME or $USER)."""

    uid: int
    name: str
    home: str


def whoami() -> Identity:
    uid = os.getuid()
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        raise Refused(f"uid {uid} is not in the passwd database") from None
    return Identity(uid, entry.pw_name, entry.pw_dir)


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def open_jobs_root(path: str) -> int:
    """The jobs root, opened once. Refused when others may write it without the sticky bit
    (then they could rename or replace our directory in it). O_PATH: engineers may search it
    (x) but not list it (no r), so it cannot be opened for reading."""
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise Refused(f"cannot open the jobs root {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        os.close(fd)
        raise Refused(f"the jobs root {path} is writable by others without the sticky bit: "
                      "ask an admin to fix it")
    return fd


def _check_own_dir(fd: int, path: str, me: Identity) -> None:
    info = os.fstat(fd)
    if info.st_uid != me.uid:
        raise Refused(f"{path} belongs to {user_name(info.st_uid)}, not {me.name}: "
                      "ask an admin to remove it")


def _check_owner_dir_mode(fd: int, root_fd: int, path: str) -> None:
    """Our directory must pass the service's group on (setgid, the jobs root's group) and be
    closed to others. Under a setgid jobs root only an admin can mend it: a chmod by its owner,
    who is not in that group, would drop setgid for good."""
    info, root = os.fstat(fd), os.fstat(root_fd)
    mode = stat.S_IMODE(info.st_mode)
    if mode == OWNER_DIR_MODE and (not root.st_mode & stat.S_ISGID or info.st_gid == root.st_gid):
        return
    if root.st_mode & stat.S_ISGID:
        raise Refused(f"{path} has mode {mode:04o} and group {info.st_gid}, not "
                      f"{OWNER_DIR_MODE:04o} and the jobs root's group {root.st_gid}: the service "
                      f"could not read your builds; ask an admin to run: chgrp {root.st_gid} "
                      f"{path} && chmod {OWNER_DIR_MODE:04o} {path}")
    os.fchmod(fd, OWNER_DIR_MODE)


def _refuse_entry(dir_fd: int, name: str, path: str, me: Identity, exc: OSError) -> Refused:
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return Refused(f"cannot open {path}: {exc.strerror}")
    if info.st_uid != me.uid:
        return Refused(f"{path} belongs to {user_name(info.st_uid)}, not {me.name}: "
                       "ask an admin to remove it")
    if stat.S_ISLNK(info.st_mode):
        return Refused(f"{path} is a symbolic link, not a directory: ask an admin to remove it")
    return Refused(f"{path} is not a directory: ask an admin to remove it")


def open_owner_dir(root_fd: int, root_path: str, me: Identity, create: bool) -> int | None:
    """``<jobs root>/<me>``: created (2750) when missing and ``create``; else None when
    missing. It must be a real directory owned by us; a looser mode is tightened."""
    path = f"{root_path.rstrip('/')}/{me.name}"
    try:
        fd = open_dir(root_fd, me.name)
    except FileNotFoundError:
        if not create:
            return None
        try:
            return make_dir(root_fd, me.name, OWNER_DIR_MODE)
        except FileExistsError:  # made meanwhile: check it like any other
            return open_owner_dir(root_fd, root_path, me, create=False)
    except OSError as exc:
        raise _refuse_entry(root_fd, me.name, path, me, exc) from None
    try:
        _check_own_dir(fd, path, me)
        _check_owner_dir_mode(fd, root_fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_job_dir(owner_fd: int, owner_path: str, job_id: int, me: Identity) -> int | None:
    """An existing ``<owner>/<id>`` of ours (for cancel and purge); None when missing."""
    name = str(job_id)
    path = f"{owner_path}/{name}"
    try:
        fd = open_dir(owner_fd, name)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _refuse_entry(owner_fd, name, path, me, exc) from None
    try:
        _check_own_dir(fd, path, me)
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass(frozen=True)
class JobFiles:
    """Descriptors of a freshly made job directory and its parts."""

    path: str  # <jobs root>/<owner>/<id>, for messages only
    job: int
    logs: int
    artifacts: int
    work: int
    log: int  # logs/build.log, opened O_RDWR | O_APPEND
    web_gid: int | None = None  # WEB_GROUP, which may read the log and the artifacts

    def close(self) -> None:
        for fd in (self.log, self.work, self.artifacts, self.logs, self.job):
            try:
                os.close(fd)
            except OSError:
                pass


def web_group() -> int | None:
    """The gid of WEB_GROUP (nginx's workers read downloads through it); None without one."""
    try:
        return grp.getgrnam(WEB_GROUP).gr_gid
    except KeyError:
        return None


def create_job_dir(owner_fd: int, owner_path: str, job_id: int,
                   web_gid: int | None = None) -> JobFiles:
    """Make ``<id>`` and its parts, every one exclusively; Refused when ``<id>`` exists.

    With ``web_gid``, that group may search ``<id>``, ``logs`` and ``artifacts`` and read the
    log: the directories inherit it from a default ACL of ``<owner>`` (an ACL set on them
    would clear their setgid, which passes the service's group on), which they do not keep,
    so nothing else, ``work/`` least of all, inherits anything."""
    if not is_job_id(job_id):
        raise Refused(f"invalid job id: {job_id!r}")
    grant_group(owner_fd, web_gid, 0o1, default=True)
    try:
        job = make_dir(owner_fd, str(job_id), JOB_DIR_MODE)
    except FileExistsError:
        raise Refused(f"job {job_id} has already run ({owner_path}/{job_id} exists)") from None
    logs = make_dir(job, LOGS_DIR, JOB_DIR_MODE)
    drop_default_acl(logs)
    log = create_file(logs, BUILD_LOG, FILE_MODE, append=True)
    grant_group(log, web_gid, 0o4)
    artifacts = make_dir(job, ARTIFACTS_DIR, JOB_DIR_MODE)
    drop_default_acl(artifacts)
    drop_default_acl(job)
    work = make_dir(job, WORK_DIR, WORK_DIR_MODE)
    return JobFiles(f"{owner_path}/{job_id}", job, logs, artifacts, work, log, web_gid)


# --- runner.json --------------------------------------------------------------------------

@dataclass(frozen=True)
class RunnerRecord:
    """The runner's own record of a running build."""

    job_id: int
    pid: int
    pgid: int
    start_time: int

    def to_json(self) -> bytes:
        return (json.dumps({"job_id": self.job_id, "pid": self.pid, "pgid": self.pgid,
                            "start_time": self.start_time}) + "\n").encode()


def write_record(job_fd: int, record: RunnerRecord) -> None:
    write_atomically(job_fd, RUNNER_RECORD, record.to_json())


def read_record(job_fd: int, job_id: int, uid: int) -> RunnerRecord | None:
    """runner.json if it is a regular file of ours naming this job; None when missing;
    Refused when it is anything else (a link, a FIFO, someone else's, malformed)."""
    fd = open_regular(job_fd, RUNNER_RECORD, owner=uid, max_size=MAX_RECORD_BYTES)
    if fd is None:
        return None
    try:
        data = read_fd(fd, MAX_RECORD_BYTES + 1)
    finally:
        os.close(fd)
    try:
        raw = json.loads(data)
        values = {name: raw[name] for name in ("job_id", "pid", "pgid", "start_time")}
    except (ValueError, TypeError, KeyError):
        raise Refused(f"{RUNNER_RECORD} is malformed") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values.values()):
        raise Refused(f"{RUNNER_RECORD} is malformed")
    if values["job_id"] != job_id:
        raise Refused(f"{RUNNER_RECORD} is not the record of job {job_id}")
    return RunnerRecord(**values)
