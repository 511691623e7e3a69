"""`autobuild upgrade-layout`: bring job directories of the old layout under the new rules.

Before, every build had ``<jobs root>/<id>/``, made by the service, ``autobuild:autobuild-users
2770``: the service's parameter files and launch log next to what the engineer's runner wrote,
all of it writable by every engineer. Now a build lives in ``<jobs root>/<owner>/<id>/``, owned
by the engineer, readable by the service through group ``autobuild``, writable by nobody else,
and the service's launch log lives in ``<data dir>/launch/<id>.log`` (see domain/layout.py).

For every legacy ``<jobs root>/<digits>`` directory this, as root with the service stopped:

1. finds the owner in the database (``jobs.owner``; never in ``job.json``, which any engineer
   could have rewritten);
2. removes what the owner did not write: entries owned by neither the owner nor the service
   (planted by colleagues), hard-linked files, FIFOs, sockets and devices (outside ``work/``);
3. moves the service's files out: ``launch.log`` to ``<data dir>/launch/<id>.log`` when it is
   the service's own regular file; ``job.json``, ``artifact-patterns`` and ``build-settings``
   are deleted (their content is in the database);
4. gives the rest to ``<owner>:autobuild``: directories 2750 (``work/`` 2700), files without
   group-write and without access for others;
5. renames it to ``<owner>/<id>`` (creating ``<owner>/``, ``<owner>:autobuild 2750``, when
   missing; a ``<owner>/`` that belongs to anyone else is reported and the job left in place).

A job whose old runner is still running (no ``status.json``, and the pid in ``runner.pid`` is
that user's ``run_job.sh`` for that job) keeps going: a symbolic link ``<id> -> <owner>/<id>``
is left where it was, so the old runner's paths still resolve and its writes land in the moved
directory. The link belongs to the service user, the owner of the jobs root: in a sticky,
world-writable directory the kernel (fs.protected_symlinks) lets others follow only links
owned by the directory's owner (or by themselves). A later run removes the link once the job
has ended, and tightens what the runner wrote meanwhile.

Everything works on file descriptors: no symbolic link is ever followed, no other filesystem
entered. Pending jobs lose their directory (it holds only the service's parameter files): the
new runner makes a fresh one when they start. Running it again changes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import re
import sqlite3
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .domain import layout
from .runner.fsops import remove_tree

SERVICE_USER = "autobuild"
SERVICE_GROUP = "autobuild"

# What the service wrote into a legacy job directory.
LEGACY_LAUNCH_LOG = "launch.log"
LEGACY_PARAMETER_FILES = ("job.json", "artifact-patterns", "build-settings")
LEGACY_RUNNER_PID = "runner.pid"
LEGACY_DIR = re.compile(r"^[1-9][0-9]{0,11}$")
ORPHANED_DIR = re.compile(r"^[1-9][0-9]{0,11}\.orphaned-[0-9]+$")
# An old runner still running moves its artifacts from a temporary file in work/ into
# artifacts/: with the setgid bit they keep the group the service reads through.
WORK_DIR_MODE = layout.WORK_DIR_MODE | stat.S_ISGID
LOCKED_MODE = 0o700  # a legacy directory left in place: nobody but its owner (the service)

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
MAX_LAUNCH_LOG_COPY = 16 << 20  # only when data/ and jobs/ are on different filesystems


class UpgradeError(Exception):
    """Something that stops one job's upgrade; the message says what and where."""


@dataclass
class Line:
    """One job's (or link's) outcome, as printed."""

    name: str
    text: str
    changed: bool = False
    error: bool = False


@dataclass
class Report:
    lines: list[Line] = field(default_factory=list)

    def add(self, name: str, text: str, *, changed: bool = False, error: bool = False) -> Line:
        line = Line(name, text, changed, error)
        self.lines.append(line)
        return line

    @property
    def changed(self) -> int:
        return sum(line.changed for line in self.lines)

    @property
    def errors(self) -> int:
        return sum(line.error for line in self.lines)

    def summary(self, check: bool = False) -> str:
        if check:
            todo = self.changed
            return (f"upgrade-layout: {todo} thing(s) to do" if todo
                    else "upgrade-layout: nothing to do")
        if not self.changed and not self.errors:
            kept = sum(1 for line in self.lines if line.text.startswith("link kept"))
            return "upgrade-layout: nothing to do" + (
                f" ({kept} link(s) kept for builds still running)" if kept else "")
        return (f"upgrade-layout: {self.changed} change(s), {self.errors} problem(s)"
                + (" (see above)" if self.errors else ""))


@dataclass(frozen=True)
class Identity:
    uid: int
    name: str


@dataclass(frozen=True)
class DbJob:
    owner: str
    status: str


# --- the database ---------------------------------------------------------------------------

@contextlib.contextmanager
def _effective(uid: int, gid: int) -> Iterator[None]:
    """Act as ``uid``/``gid`` (root only): SQLite may create -wal/-shm files, and they must
    belong to the database's owner, not to root."""
    if os.geteuid() != 0 or uid == 0:
        yield
        return
    os.setegid(gid)
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def read_owners(db_path: Path) -> dict[int, DbJob]:
    """Every job's owner and status from the database (empty when there is none yet)."""
    try:
        st = os.stat(db_path)
    except FileNotFoundError:
        return {}
    with _effective(st.st_uid, st.st_gid):
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute("SELECT id, owner, status FROM jobs").fetchall()
        finally:
            conn.close()
    return {int(job_id): DbJob(str(owner), str(status)) for job_id, owner, status in rows}


# --- /proc ------------------------------------------------------------------------------------

def _old_runner_alive(pid: int, uid: int, job_id: int, proc: Path = Path("/proc")) -> bool:
    """Whether ``pid`` is the old bash runner of this job, running as ``uid``."""
    try:
        status = (proc / str(pid) / "status").read_text()
        cmdline = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if fields.get("State", "").strip().startswith("Z"):
        return False
    real_uid = fields.get("Uid", "").split()[:1]
    if real_uid != [str(uid)]:
        return False
    args = [arg.decode(errors="replace") for arg in cmdline if arg]
    return any(arg.endswith("run_job.sh") for arg in args) and str(job_id) in args


# --- file descriptor helpers ------------------------------------------------------------------

def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _open_dir(dir_fd: int, name: str, expect: os.stat_result | None = None) -> int:
    fd = os.open(name, _DIR, dir_fd=dir_fd)
    if expect is not None:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (expect.st_dev, expect.st_ino):
            os.close(fd)
            raise UpgradeError(f"{name} was replaced while being upgraded")
    return fd


def _read_small(dir_fd: int, name: str, uid: int, limit: int = layout.MAX_RECORD_BYTES) -> bytes | None:
    """A regular file ``uid`` owns, not following links and never blocking; None otherwise."""
    try:
        fd = os.open(name, _FILE, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != uid or st.st_size > limit:
            return None
        return os.read(fd, limit)
    finally:
        os.close(fd)


class Tree:
    """Operations below one open directory, on one filesystem, never following links."""

    def __init__(self, device: int) -> None:
        self.device = device

    def remove(self, dir_fd: int, name: str, st: os.stat_result | None = None) -> None:
        """Remove ``name`` and what is below it; iterative, so no depth stops it."""
        st = st or _lstat(dir_fd, name)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode) and st.st_dev != self.device:
            raise UpgradeError(f"{name} is on another filesystem (a mount point?): not removed")
        try:
            remove_tree(dir_fd, name)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                raise UpgradeError(f"{name} holds another filesystem (a mount point?): "
                                   "not removed") from None
            raise


@dataclass
class Normaliser:
    """Gives a job directory to its owner under the new modes, removing what others planted."""

    tree: Tree
    owner_uid: int
    service_uid: int
    group_gid: int
    removed: list[str] = field(default_factory=list)

    def job_dir(self, fd: int, path: str) -> None:
        """Normalise the job directory open as ``fd`` and everything below it: depth first,
        with a stack instead of recursion (a tree may be thousands of levels deep)."""
        self._fix_dir(fd, layout.JOB_DIR_MODE)
        stack = [(fd, path, False, sorted(os.listdir(fd), reverse=True))]
        try:
            while stack:
                dir_fd, dir_path, in_work, names = stack[-1]
                if not names:
                    stack.pop()
                    if dir_fd != fd:
                        os.close(dir_fd)
                    continue
                name = names.pop()
                child = self._entry(dir_fd, name, f"{dir_path}/{name}", in_work=in_work)
                if child is not None:
                    child_fd, child_in_work = child
                    stack.append((child_fd, f"{dir_path}/{name}", child_in_work,
                                  sorted(os.listdir(child_fd), reverse=True)))
        finally:
            for dir_fd, *_ in stack:
                if dir_fd != fd:
                    os.close(dir_fd)

    def _fix_dir(self, fd: int, mode: int | None) -> None:
        st = os.fstat(fd)
        if mode is None:  # inside work/: keep the owner's bits, drop group-write and others
            mode = stat.S_IMODE(st.st_mode) & ~0o027
        if (st.st_uid, st.st_gid) != (self.owner_uid, self.group_gid):
            os.fchown(fd, self.owner_uid, self.group_gid)
        if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.fchmod(fd, mode)

    def _entry(self, dir_fd: int, name: str, path: str, *,
               in_work: bool) -> tuple[int, bool] | None:
        """Normalise one entry; for a directory to enter: (its descriptor, inside work/)."""
        st = _lstat(dir_fd, name)
        if st is None:
            return None
        kind = stat.S_IFMT(st.st_mode)
        planted = st.st_uid not in (self.owner_uid, self.service_uid)
        special = kind not in (stat.S_IFDIR, stat.S_IFREG, stat.S_IFLNK)
        linked = kind == stat.S_IFREG and st.st_nlink > 1
        if planted or (not in_work and (special or linked)):
            self.tree.remove(dir_fd, name, st)
            why = ("not written by the owner" if planted else
                   "a hard link" if linked else "not a file or directory")
            self.removed.append(f"{path} ({why})")
            return None
        if kind == stat.S_IFDIR:
            if st.st_dev != self.tree.device:
                raise UpgradeError(f"{path} is on another filesystem (a mount point?)")
            fd = _open_dir(dir_fd, name, st)
            try:
                top_work = not in_work and path.count("/") == 1 and name == layout.WORK_DIR
                if top_work:  # setgid too: what an old runner still writes there keeps the group
                    self._fix_dir(fd, WORK_DIR_MODE)
                else:
                    self._fix_dir(fd, None if in_work else layout.JOB_DIR_MODE)
            except BaseException:
                os.close(fd)
                raise
            return fd, in_work or top_work
        elif kind == stat.S_IFLNK or special:  # kept only inside work/ (or a link anywhere)
            if (st.st_uid, st.st_gid) != (self.owner_uid, self.group_gid):
                os.chown(name, self.owner_uid, self.group_gid, dir_fd=dir_fd, follow_symlinks=False)
        elif linked:  # inside work/: a build's own hard links (Yocto makes many); left as they are
            return
        else:
            fd = os.open(name, _FILE, dir_fd=dir_fd)
            try:
                now = os.fstat(fd)
                if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
                    raise UpgradeError(f"{path} was replaced while being upgraded")
                if (now.st_uid, now.st_gid) != (self.owner_uid, self.group_gid):
                    os.fchown(fd, self.owner_uid, self.group_gid)  # clears setuid/setgid
                want = stat.S_IMODE(now.st_mode) & 0o750
                if stat.S_IMODE(os.fstat(fd).st_mode) != want:
                    os.fchmod(fd, want)
            finally:
                os.close(fd)


# --- the upgrade ------------------------------------------------------------------------------

@dataclass
class Upgrade:
    jobs_root: Path
    db_path: Path
    check_only: bool = False
    service_user: str = SERVICE_USER
    service_group: str = SERVICE_GROUP
    proc: Path = Path("/proc")
    report: Report = field(default_factory=Report)

    @property
    def launch_dir(self) -> Path:
        return self.db_path.parent / layout.LAUNCH_DIR

    def run(self) -> Report:
        try:
            root_fd = os.open(self.jobs_root, _DIR)
        except FileNotFoundError:
            return self.report
        try:
            names = os.listdir(root_fd)
            legacy = sorted((n for n in names if LEGACY_DIR.match(n)), key=int)
            orphans = sorted(n for n in names if ORPHANED_DIR.match(n))
            if not legacy and not orphans:
                return self.report
            service = pwd.getpwnam(self.service_user)
            self.service_uid = service.pw_uid
            self.group_gid = grp.getgrnam(self.service_group).gr_gid
            self.tree = Tree(os.fstat(root_fd).st_dev)
            owners = read_owners(self.db_path) if legacy else {}
            for name in legacy:
                try:
                    self._one(root_fd, name, owners.get(int(name)))
                except (OSError, UpgradeError) as exc:
                    self.report.add(name, f"could not be upgraded: {exc}", error=True)
            for name in orphans:
                try:
                    self._orphan(root_fd, name)
                except (OSError, UpgradeError) as exc:
                    self.report.add(name, f"could not be locked: {exc}", error=True)
        finally:
            os.close(root_fd)
        return self.report

    # -- one legacy entry --

    def _one(self, root_fd: int, name: str, row: DbJob | None) -> None:
        job_id = int(name)
        st = _lstat(root_fd, name)
        if st is None:
            return
        if stat.S_ISLNK(st.st_mode):
            self._link(root_fd, name, st, row)
            return
        if not stat.S_ISDIR(st.st_mode):
            self.report.add(name, "is not a directory: left in place (remove it by hand)", error=True)
            return
        if st.st_dev != self.tree.device:
            raise UpgradeError("is on another filesystem (a mount point?): left in place")
        user = self._user(row.owner) if row else None
        if st.st_uid != self.service_uid and (user is None or st.st_uid != user.uid):
            # Old job directories were made by the service (and a job left in place is made
            # its owner's): this one was planted by another engineer, and is nobody's job.
            if self.check_only:
                self.report.add(name, f"made by {_user_name(st.st_uid)}, not by the service: "
                                "would be removed", changed=True)
                return
            self.tree.remove(root_fd, name, st)
            self.report.add(name, f"made by {_user_name(st.st_uid)}, not by the service: "
                            "removed", changed=True)
            return
        if user is None:
            why = ("is not in the database" if row is None
                   else f"belongs to {row.owner!r}, who is no longer a user of this machine")
            self._lock(root_fd, name, st, f"{why}: locked (0700, {self.service_user} only) and left in place")
            return
        owner_st = _lstat(root_fd, user.name)
        squatted = owner_st is not None and (not stat.S_ISDIR(owner_st.st_mode) or owner_st.st_uid != user.uid)
        if squatted:
            what = ("is not a directory" if not stat.S_ISDIR(owner_st.st_mode)
                    else f"belongs to {_user_name(owner_st.st_uid)}")
            fix = f"sudo rm -r {self.jobs_root / user.name}"
            self._secure_in_place(root_fd, name, st, user,
                                  f"{user.name}'s directory jobs/{user.name} {what}: job left "
                                  f"in place; remove it ({fix}) and run upgrade-layout again")
            return
        if owner_st is not None and _lstat_in(root_fd, user.name, name) is not None:
            self._secure_in_place(root_fd, name, st, user,
                                  f"jobs/{user.name}/{name} already exists: job left in place")
            return

        running = self._running(root_fd, name, st, user.uid, job_id)
        pending = row is not None and row.status == "PENDING" and not running
        if self.check_only:
            self.report.add(name, f"{row.status if row else '?'} job of {user.name}: would be "
                            + ("removed (pending: it runs in the new layout)" if pending else
                               f"moved to jobs/{user.name}/{name}"), changed=True)
            return

        fd = _open_dir(root_fd, name, st)
        try:
            moved_log = self._service_files(fd, job_id)
            if pending:
                self.tree.remove(root_fd, name, st)
                self.report.add(name, f"PENDING job of {user.name}: old directory removed (it "
                                "runs in the new layout)", changed=True)
                return
            normaliser = Normaliser(self.tree, user.uid, self.service_uid, self.group_gid)
            normaliser.job_dir(fd, name)
        finally:
            os.close(fd)
        owner_fd = self._owner_dir(root_fd, user)
        try:
            if _lstat(owner_fd, name) is not None:
                raise UpgradeError(f"jobs/{user.name}/{name} appeared meanwhile: left in place")
            os.rename(name, name, src_dir_fd=root_fd, dst_dir_fd=owner_fd)
        finally:
            os.close(owner_fd)
        notes = [f"{row.status} job of {user.name}: moved to jobs/{user.name}/{name}"]
        if moved_log:
            notes.append(f"launch log to {self.launch_dir.name}/{job_id}.log")
        if normaliser.removed:
            notes.append(f"removed {len(normaliser.removed)} entr(ies) the owner did not write: "
                         + ", ".join(normaliser.removed[:5])
                         + (" ..." if len(normaliser.removed) > 5 else ""))
        if running:
            self._make_link(root_fd, name, user.name)
            notes.append(f"its old runner is still running: link jobs/{name} -> {user.name}/{name} "
                         "kept until it ends")
        self.report.add(name, "; ".join(notes), changed=True)

    def _user(self, name: str) -> Identity | None:
        if not layout.is_user_name(name) or name in ("root", self.service_user):
            return None
        try:
            return Identity(pwd.getpwnam(name).pw_uid, name)
        except KeyError:
            return None

    def _running(self, parent_fd: int, name: str, st: os.stat_result, uid: int, job_id: int) -> bool:
        fd = _open_dir(parent_fd, name, st)
        try:
            if _lstat(fd, layout.STATUS) is not None:
                return False
            record = _read_small(fd, LEGACY_RUNNER_PID, uid)
        finally:
            os.close(fd)
        if record is None:
            return False
        fields = record.decode(errors="replace").split()
        if not fields or not fields[0].isdigit():
            return False
        return _old_runner_alive(int(fields[0]), uid, job_id, self.proc)

    def _service_files(self, fd: int, job_id: int) -> bool:
        """Remove the service's parameter files; move its launch log; True when one was moved."""
        for name in LEGACY_PARAMETER_FILES:
            self.tree.remove(fd, name)
        st = _lstat(fd, LEGACY_LAUNCH_LOG)
        if st is None:
            return False
        ours = stat.S_ISREG(st.st_mode) and st.st_uid == self.service_uid and st.st_nlink == 1
        if not ours:  # replaced by someone: not the service's file any more
            self.tree.remove(fd, LEGACY_LAUNCH_LOG, st)
            return False
        launch_fd = self._launch_dir()
        try:
            target = layout.launch_log_name(job_id)
            if _lstat(launch_fd, target) is not None:
                os.unlink(LEGACY_LAUNCH_LOG, dir_fd=fd)
                return False
            checked: tuple[int, int] | None = (st.st_dev, st.st_ino)
            try:
                os.rename(LEGACY_LAUNCH_LOG, target, src_dir_fd=fd, dst_dir_fd=launch_fd)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self._copy_launch_log(fd, launch_fd, target, st)  # a new file of ours
                os.unlink(LEGACY_LAUNCH_LOG, dir_fd=fd)
                checked = None
            # The old directory was writable by every engineer until now: what was renamed may not
            # be what was checked. Only the very file checked is kept, and fixed by descriptor.
            try:
                moved = os.open(target, _FILE, dir_fd=launch_fd)
            except OSError:
                moved = None
            try:
                info = None if moved is None else os.fstat(moved)
                same = (info is not None and stat.S_ISREG(info.st_mode) and info.st_nlink == 1
                        and checked in (None, (info.st_dev, info.st_ino)))
                if not same:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(target, dir_fd=launch_fd)
                    return False
                os.fchown(moved, self.service_uid, self.group_gid)
                os.fchmod(moved, layout.FILE_MODE)
            finally:
                if moved is not None:
                    os.close(moved)
        finally:
            os.close(launch_fd)
        return True

    def _copy_launch_log(self, fd: int, launch_fd: int, target: str,
                         checked: os.stat_result) -> None:
        """Copy the checked launch log (nothing, if the name now holds another file)."""
        src = os.open(LEGACY_LAUNCH_LOG, _FILE, dir_fd=fd)
        try:
            info = os.fstat(src)
            if (info.st_dev, info.st_ino) != (checked.st_dev, checked.st_ino):
                return
            size = info.st_size
            if size > MAX_LAUNCH_LOG_COPY:
                os.lseek(src, size - MAX_LAUNCH_LOG_COPY, os.SEEK_SET)
            dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                          layout.FILE_MODE, dir_fd=launch_fd)
            try:
                while chunk := os.read(src, 1 << 20):
                    os.write(dst, chunk)
            finally:
                os.close(dst)
        finally:
            os.close(src)

    def _launch_dir(self) -> int:
        """<data dir>/launch, made (autobuild:autobuild 0750) if missing, opened by descriptor."""
        data_fd = os.open(self.db_path.parent, _DIR)
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(layout.LAUNCH_DIR, 0o750, dir_fd=data_fd)
            fd = os.open(layout.LAUNCH_DIR, _DIR, dir_fd=data_fd)
        finally:
            os.close(data_fd)
        st = os.fstat(fd)
        if st.st_uid not in (0, self.service_uid):
            os.close(fd)
            raise UpgradeError(f"{self.launch_dir} belongs to uid {st.st_uid}, not {self.service_user}")
        if (st.st_uid, st.st_gid) != (self.service_uid, self.group_gid):
            os.fchown(fd, self.service_uid, self.group_gid)
        if stat.S_IMODE(st.st_mode) != 0o750:
            os.fchmod(fd, 0o750)
        return fd

    def _owner_dir(self, root_fd: int, user: Identity) -> int:
        """jobs/<owner>, made (<owner>:autobuild 2750) if missing; must be the owner's."""
        try:
            os.mkdir(user.name, 0o700, dir_fd=root_fd)
            fd = os.open(user.name, _DIR, dir_fd=root_fd)
            os.fchown(fd, user.uid, self.group_gid)
            os.fchmod(fd, layout.OWNER_DIR_MODE)
            return fd
        except FileExistsError:
            pass
        fd = os.open(user.name, _DIR, dir_fd=root_fd)
        if os.fstat(fd).st_uid != user.uid:
            os.close(fd)
            raise UpgradeError(f"jobs/{user.name} belongs to someone else: left in place")
        return fd

    def _make_link(self, root_fd: int, name: str, owner: str) -> None:
        os.symlink(f"{owner}/{name}", name, dir_fd=root_fd)
        os.chown(name, self.service_uid, self.group_gid, dir_fd=root_fd, follow_symlinks=False)

    def _secure_in_place(self, root_fd: int, name: str, st: os.stat_result, user: Identity, why: str) -> None:
        secured = (st.st_uid == user.uid and st.st_gid == self.group_gid
                   and stat.S_IMODE(st.st_mode) == layout.JOB_DIR_MODE)
        if secured or self.check_only:
            self.report.add(name, why, changed=not secured, error=True)
            return
        fd = _open_dir(root_fd, name, st)
        try:
            self._service_files(fd, int(name))
            normaliser = Normaliser(self.tree, user.uid, self.service_uid, self.group_gid)
            normaliser.job_dir(fd, name)
        finally:
            os.close(fd)
        self.report.add(name, why + f" (made {user.name}'s, 2750, nothing writable by others)",
                        changed=True, error=True)

    def _lock(self, root_fd: int, name: str, st: os.stat_result, why: str) -> None:
        locked = st.st_uid == self.service_uid and stat.S_IMODE(st.st_mode) == LOCKED_MODE
        if not locked and not self.check_only:
            fd = _open_dir(root_fd, name, st)
            try:
                os.fchown(fd, self.service_uid, self.group_gid)
                os.fchmod(fd, LOCKED_MODE)
            finally:
                os.close(fd)
        self.report.add(name, why, changed=not locked, error=True)

    def _orphan(self, root_fd: int, name: str) -> None:
        st = _lstat(root_fd, name)
        if st is None or not stat.S_ISDIR(st.st_mode):
            return
        locked = st.st_uid == self.service_uid and stat.S_IMODE(st.st_mode) == LOCKED_MODE
        if locked:
            return  # reported by `autobuild check`, nothing to do here
        self._lock(root_fd, name, st, "left by a replaced database: locked (0700, "
                   f"{self.service_user} only); remove it when nobody needs it "
                   f"(sudo rm -r {self.jobs_root / name})")
        self.report.lines[-1].error = False

    # -- a link left for a running build --

    def _link(self, root_fd: int, name: str, st: os.stat_result, row: DbJob | None) -> None:
        target = os.readlink(name, dir_fd=root_fd)
        owner, _, rest = target.partition("/")
        ours = (st.st_uid in (0, self.service_uid) and rest == name
                and layout.is_user_name(owner) and (row is None or row.owner == owner))
        if not ours:
            if not self.check_only:
                os.unlink(name, dir_fd=root_fd)
            self.report.add(name, f"removed a link to {target!r} that upgrade-layout did not make",
                            changed=True)
            return
        user = self._user(owner)
        owner_fd = None
        try:
            owner_fd = os.open(owner, _DIR, dir_fd=root_fd)
            if user is None or os.fstat(owner_fd).st_uid != user.uid:
                raise UpgradeError(f"jobs/{owner} is not {owner}'s")
            job_st = _lstat(owner_fd, name)
            if job_st is None or not stat.S_ISDIR(job_st.st_mode) or job_st.st_uid != user.uid:
                running = False
            else:
                running = self._running(owner_fd, name, job_st, user.uid, int(name))
            if running:
                self.report.add(name, f"link kept: the old runner of {owner}'s build is still running")
                return
            if self.check_only:
                self.report.add(name, "its old runner has ended: the link would be removed", changed=True)
                return
            os.unlink(name, dir_fd=root_fd)
            removed: list[str] = []
            if job_st is not None and stat.S_ISDIR(job_st.st_mode) and job_st.st_uid == user.uid:
                fd = _open_dir(owner_fd, name, job_st)
                try:
                    normaliser = Normaliser(self.tree, user.uid, self.service_uid, self.group_gid)
                    normaliser.job_dir(fd, name)
                    removed = normaliser.removed
                finally:
                    os.close(fd)
            self.report.add(name, f"the old runner of {owner}'s build has ended: link removed, "
                            f"jobs/{owner}/{name} tightened"
                            + (f" (removed {', '.join(removed)})" if removed else ""), changed=True)
        finally:
            if owner_fd is not None:
                os.close(owner_fd)


def _lstat_in(root_fd: int, directory: str, name: str) -> os.stat_result | None:
    try:
        fd = os.open(directory, _DIR, dir_fd=root_fd)
    except OSError:
        return None
    try:
        return _lstat(fd, name)
    finally:
        os.close(fd)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def run(jobs_root: Path, db_path: Path, *, check_only: bool = False,
        out: Callable[[str], None] = print, **options) -> int:
    """Upgrade (or with ``check_only`` only list what would change); prints one line per job and
    a summary. 0 when everything is under the new rules (or, checking, nothing is to do), 1 when
    something could not be done (or, checking, when something is to do), 2 when not root."""
    if os.geteuid() != 0:
        out("autobuild upgrade-layout: run me as root (sudo), with the service stopped")
        return 2
    started = time.monotonic()
    report = Upgrade(Path(jobs_root), Path(db_path), check_only=check_only, **options).run()
    for line in report.lines:
        out(f"job {line.name}: {line.text}" if LEGACY_DIR.match(line.name) else f"{line.name}: {line.text}")
    summary = report.summary(check=check_only)
    if report.changed and not check_only:
        summary += f" in {time.monotonic() - started:.1f} s"
    out(summary)
    if check_only:
        return 1 if report.changed else 0
    return 1 if report.errors else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(Path(sys.argv[1]), Path(sys.argv[2])))
