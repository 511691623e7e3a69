"""`autobuild upgrade-layout` on a temporary jobs tree in the old layout.

The tree is made as root with real owners (Debian's system users stand in: ``daemon`` is the
service, ``bin`` and ``games`` engineers, ``sys`` a colleague who plants things), so the test
runs as root (CI does) and skips otherwise, except for what needs no root.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autobuild import upgrade
from autobuild.domain import layout

SERVICE, OWNER, SQUATTED_OWNER, COLLEAGUE = "daemon", "bin", "games", "sys"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="makes files of other users: needs root")


def uid(name: str) -> int:
    return pwd.getpwnam(name).pw_uid


def gid(name: str) -> int:
    return grp.getgrnam(name).gr_gid


def make_db(path: Path, rows: list[tuple[int, str, str]]) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, repo_url TEXT, "
                 "status TEXT NOT NULL)")
    conn.executemany("INSERT INTO jobs (id, owner, status) VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()
    os.chown(path, uid(SERVICE), gid(SERVICE))  # the service's database, as installed


def put(path: Path, owner: str, data: str | bytes = "x\n", mode: int = 0o664, group: str = "users") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chown(path, uid(owner), gid(group))
    os.chmod(path, mode)
    return path


def mkdir(path: Path, owner: str, mode: int = 0o2775, group: str = "users") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid(owner), gid(group))
    os.chmod(path, mode)
    return path


def legacy_job(root: Path, job_id: int, owner: str, *, finished: bool = True) -> Path:
    """What the old service and the old runner left: autobuild:autobuild-users 2770."""
    d = mkdir(root / str(job_id), SERVICE, 0o2770)
    for name in upgrade.LEGACY_PARAMETER_FILES:
        put(d / name, SERVICE, '{"owner": "%s"}\n' % owner, 0o640)
    put(d / "launch.log", SERVICE, f"sudo said hello for {job_id}\n", 0o640)
    mkdir(d / "logs", owner)
    put(d / "logs" / "build.log", owner, "==> Job\nbuilding\n", 0o640)
    mkdir(d / "logs" / "failed-tasks", owner)
    put(d / "logs" / "failed-tasks" / "task.log", owner, "task failed\n", 0o664)
    mkdir(d / "artifacts", owner)
    put(d / "artifacts" / "image.bin", owner, b"\x7fIMAGE" * 100, 0o640)
    put(d / "artifacts.sha256", owner, "abc  image.bin\n", 0o640)
    mkdir(d / "work", owner)
    put(d / "work" / "src" / "README", owner, "poky\n", 0o664)
    os.chown(d / "work" / "src", uid(owner), gid("users"))
    if finished:
        put(d / "status.json", owner, '{"status": "SUCCESS", "exit_code": 0}\n', 0o640)
        put(d / "exit_code", owner, "0\n", 0o640)
    return d


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def owner_of(path: Path) -> tuple[str, str]:
    st = os.lstat(path)
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name


def snapshot(root: Path) -> list[tuple[str, int, int, int]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            if name.startswith("jobs.db"):
                continue
            st = os.lstat(Path(dirpath, name))
            out.append((str(Path(dirpath, name).relative_to(root)), st.st_uid, st.st_gid, st.st_mode))
    return sorted(out)


def walk(path: Path):
    yield path
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            yield Path(dirpath, name)


@pytest.fixture
def tree():
    """<srv>/jobs (as install.sh leaves it before the migration: daemon:daemon 3753) and
    <srv>/data, in a directory the test's other users can reach (pytest's tmp_path is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="autobuild-upgrade-", dir="/tmp"))
    os.chmod(base, 0o755)
    srv = base / "srv"
    srv.mkdir(mode=0o755)
    jobs = mkdir(srv / "jobs", SERVICE, layout.JOBS_ROOT_MODE, group=SERVICE)
    data = mkdir(srv / "data", SERVICE, 0o750, group=SERVICE)
    try:
        yield srv, jobs, data / "jobs.db"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run(jobs: Path, db: Path, check: bool = False) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = upgrade.run(jobs, db, check_only=check, out=lines.append,
                       service_user=SERVICE, service_group=SERVICE)
    return code, lines


@pytest.fixture
def old_runner():
    """A process that looks like the old bash runner of job 3, running as OWNER."""
    procs = []

    def start(job_id: int) -> subprocess.Popen:
        proc = subprocess.Popen(["/opt/autobuild/runner/run_job.sh", str(job_id), "600"],
                                executable="/bin/sleep", user=uid(OWNER), start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_not_root_is_refused_with_a_message(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("checks the refusal for non-root users")
    lines: list[str] = []
    assert upgrade.run(tmp_path, tmp_path / "jobs.db", out=lines.append) == 2
    assert "root" in lines[0]


@needs_root
def test_owners_come_from_the_database(tree):
    srv, jobs, db = tree
    tmp_path = db.parent
    make_db(db, [(1, "alice", "SUCCESS"), (2, "bob", "RUNNING")])
    assert upgrade.read_owners(db) == {1: upgrade.DbJob("alice", "SUCCESS"),
                                       2: upgrade.DbJob("bob", "RUNNING")}
    assert upgrade.read_owners(tmp_path / "missing.db") == {}
    if os.geteuid() == 0:  # as root, SQLite's -shm/-wal files still belong to the database's owner
        assert all(p.stat().st_uid == uid(SERVICE) for p in tmp_path.glob("jobs.db*"))


@needs_root
def test_nothing_to_do_on_a_new_or_empty_tree(tree):
    srv, jobs, db = tree
    assert run(jobs, db) == (0, ["upgrade-layout: nothing to do"])
    assert run(srv / "missing", db) == (0, ["upgrade-layout: nothing to do"])


@needs_root
def test_a_finished_job_moves_under_its_owner_and_loses_what_others_planted(tree, tmp_path):
    srv, jobs, db = tree
    make_db(db, [(1, OWNER, "SUCCESS")])
    d = legacy_job(jobs, 1, OWNER)
    # The colleague plants things: a file, a FIFO, a link to a secret, a directory with content.
    put(d / "artifacts" / "evil.bin", COLLEAGUE, "backdoor")
    os.mkfifo(d / "logs" / "fifo")
    os.chown(d / "logs" / "fifo", uid(COLLEAGUE), gid("users"))
    os.symlink("/etc/shadow", d / "artifacts" / "shadow.bin")
    os.chown(d / "artifacts" / "shadow.bin", uid(COLLEAGUE), gid("users"), follow_symlinks=False)
    put(mkdir(d / "logs" / "planted", COLLEAGUE) / "deep" / "x", COLLEAGUE)
    put(d / "work" / "src" / ".git" / "hooks" / "post-checkout", COLLEAGUE, "#!/bin/sh\n", 0o775)
    # A hard link of a file the owner has elsewhere: chmod-ing it would change that file too.
    outside = put(tmp_path / "outside-secret", OWNER, "secret", 0o600, group=OWNER)
    os.link(outside, d / "artifacts" / "linked.bin")
    # The owner's own link is theirs to keep; its target must not change.
    os.symlink("/etc/passwd", d / "logs" / "mine")
    os.chown(d / "logs" / "mine", uid(OWNER), gid("users"), follow_symlinks=False)
    passwd_before = os.stat("/etc/passwd")

    code, lines = run(jobs, db)
    assert code == 0, lines
    moved = jobs / OWNER / "1"
    assert not os.path.lexists(jobs / "1")
    assert lines[0].startswith(f"job 1: SUCCESS job of {OWNER}: moved to jobs/{OWNER}/1"), lines
    assert "launch log to launch/1.log" in lines[0]
    assert lines[-1].startswith("upgrade-layout: 1 change(s), 0 problem(s)")

    assert owner_of(jobs / OWNER) == (OWNER, SERVICE) and mode(jobs / OWNER) == layout.OWNER_DIR_MODE
    names = sorted(str(p.relative_to(moved)) for p in walk(moved) if p != moved)
    assert names == ["artifacts", "artifacts.sha256", "artifacts/image.bin", "exit_code", "logs",
                     "logs/build.log", "logs/failed-tasks", "logs/failed-tasks/task.log", "logs/mine",
                     "status.json", "work", "work/src", "work/src/README"]
    for path in walk(moved):
        assert owner_of(path) == (OWNER, SERVICE), path
        if path.is_symlink():
            continue
        if path.is_dir():
            expected = upgrade.WORK_DIR_MODE if path == moved / "work" else (
                None if moved / "work" in path.parents else layout.JOB_DIR_MODE)
            if expected is not None:
                assert mode(path) == expected, path
        assert not mode(path) & 0o027, f"{path} is {mode(path):o}"
    assert (moved / "logs" / "failed-tasks" / "task.log").read_text() == "task failed\n"
    assert os.readlink(moved / "logs" / "mine") == "/etc/passwd"
    after = os.stat("/etc/passwd")
    assert (after.st_uid, after.st_gid, after.st_mode) == (passwd_before.st_uid, passwd_before.st_gid,
                                                           passwd_before.st_mode)
    assert owner_of(outside) == (OWNER, OWNER) and mode(outside) == 0o600
    assert outside.read_text() == "secret"

    launch = srv / "data" / "launch"
    assert owner_of(launch) == (SERVICE, SERVICE) and mode(launch) == 0o750
    assert (launch / "1.log").read_text() == "sudo said hello for 1\n"
    assert owner_of(launch / "1.log") == (SERVICE, SERVICE) and mode(launch / "1.log") == 0o640

    # Idempotent: nothing left to do, nothing changes.
    before = snapshot(srv)
    assert run(jobs, db, check=True) == (0, ["upgrade-layout: nothing to do"])
    assert run(jobs, db) == (0, ["upgrade-layout: nothing to do"])
    assert snapshot(srv) == before


@needs_root
def test_check_only_lists_and_changes_nothing(tree):
    srv, jobs, db = tree
    make_db(db, [(1, OWNER, "FAILED"), (2, OWNER, "PENDING")])
    legacy_job(jobs, 1, OWNER)
    d = mkdir(jobs / "2", SERVICE, 0o2770)
    put(d / "job.json", SERVICE, "{}", 0o640)
    before = snapshot(srv)
    code, lines = run(jobs, db, check=True)
    assert code == 1
    assert lines == [f"job 1: FAILED job of {OWNER}: would be moved to jobs/{OWNER}/1",
                     f"job 2: PENDING job of {OWNER}: would be removed (pending: it runs in the new layout)",
                     "upgrade-layout: 2 thing(s) to do"]
    assert snapshot(srv) == before


@needs_root
def test_the_owner_comes_from_the_database_not_from_job_json(tree):
    srv, jobs, db = tree
    make_db(db, [(8, OWNER, "FAILED")])
    d = legacy_job(jobs, 8, OWNER)
    (d / "job.json").write_text('{"owner": "%s"}\n' % COLLEAGUE)  # forged
    (d / "launch.log").unlink()
    os.symlink("/etc/shadow", d / "launch.log")  # the attack: the service's file swapped
    os.chown(d / "launch.log", uid(OWNER), gid("users"), follow_symlinks=False)
    shadow = os.stat("/etc/shadow")

    code, lines = run(jobs, db)
    assert code == 0, lines
    assert (jobs / OWNER / "8").is_dir() and not (jobs / COLLEAGUE).exists()
    assert not os.path.lexists(srv / "data" / "launch" / "8.log")
    assert not os.path.lexists(jobs / OWNER / "8" / "launch.log")
    assert os.stat("/etc/shadow").st_mode == shadow.st_mode
    assert os.stat("/etc/shadow").st_uid == shadow.st_uid


@needs_root
def test_a_pending_job_loses_its_old_directory(tree):
    srv, jobs, db = tree
    make_db(db, [(5, OWNER, "PENDING")])
    d = mkdir(jobs / "5", SERVICE, 0o2770)
    for name in upgrade.LEGACY_PARAMETER_FILES:
        put(d / name, SERVICE, "{}", 0o640)
    code, lines = run(jobs, db)
    assert code == 0 and lines[0] == (f"job 5: PENDING job of {OWNER}: old directory removed "
                                      "(it runs in the new layout)")
    assert not os.path.lexists(jobs / "5") and not os.path.lexists(jobs / OWNER / "5")


@needs_root
def test_a_squatted_owner_directory_leaves_the_job_in_place_but_locked(tree):
    srv, jobs, db = tree
    make_db(db, [(4, SQUATTED_OWNER, "SUCCESS")])
    mkdir(jobs / SQUATTED_OWNER, COLLEAGUE, 0o777)
    d = legacy_job(jobs, 4, SQUATTED_OWNER)
    code, lines = run(jobs, db)
    assert code == 1
    assert f"jobs/{SQUATTED_OWNER} belongs to {COLLEAGUE}: job left in place" in lines[0]
    assert "sudo rm -r" in lines[0]
    assert d.is_dir() and not (jobs / SQUATTED_OWNER / "4").exists()
    for path in walk(d):
        assert owner_of(path)[0] == SQUATTED_OWNER and not mode(path) & 0o027, path
    assert not (d / "job.json").exists()
    # Reported every time, but nothing more to change: install.sh's second run says no changes.
    code, lines = run(jobs, db, check=True)
    assert (code, lines[-1]) == (0, "upgrade-layout: nothing to do") and "left in place" in lines[0]
    code, lines = run(jobs, db)
    assert code == 1 and "job left in place" in lines[0]
    # Once the admin removes the squatter's directory, the job moves.
    subprocess.run(["rm", "-r", str(jobs / SQUATTED_OWNER)], check=True)
    code, lines = run(jobs, db)
    assert code == 0 and (jobs / SQUATTED_OWNER / "4" / "logs" / "build.log").is_file(), lines


@needs_root
def test_unknown_jobs_and_orphaned_directories_are_locked_in_place(tree):
    srv, jobs, db = tree
    make_db(db, [(6, "nosuchuser", "SUCCESS")])
    legacy_job(jobs, 6, OWNER)
    legacy_job(jobs, 9, OWNER)  # not in the database at all
    orphan = mkdir(jobs / "7.orphaned-1700000000", SERVICE, 0o2770)
    code, lines = run(jobs, db)
    assert code == 1
    assert "job 6: belongs to 'nosuchuser', who is no longer a user" in lines[0]
    assert "job 9: is not in the database" in lines[1]
    assert lines[2].startswith("7.orphaned-1700000000: left by a replaced database")
    for path in (jobs / "6", jobs / "9", orphan):
        assert owner_of(path)[0] == SERVICE and mode(path) == upgrade.LOCKED_MODE
    assert run(jobs, db, check=True)[0] == 0


@needs_root
def test_a_running_job_moves_and_keeps_a_link_until_its_old_runner_ends(tree, old_runner):
    srv, jobs, db = tree
    make_db(db, [(3, OWNER, "RUNNING")])
    d = legacy_job(jobs, 3, OWNER, finished=False)
    runner = old_runner(3)
    put(d / "runner.pid", OWNER, f"{runner.pid} {runner.pid}\n", 0o640)
    # Even a planted, matching runner.pid of a colleague does not count.
    code, lines = run(jobs, db)
    assert code == 0, lines
    assert f"link jobs/3 -> {OWNER}/3 kept until it ends" in lines[0]
    link = jobs / "3"
    assert link.is_symlink() and os.readlink(link) == f"{OWNER}/3"
    assert owner_of(link)[0] == SERVICE  # the jobs root's owner: followed under protected_symlinks
    assert (link / "logs" / "build.log").read_text() == "==> Job\nbuilding\n"
    # The old runner keeps writing through its old paths, as the owner, into the moved directory.
    subprocess.run(["runuser", "-u", OWNER, "--", "sh", "-c",
                    f"echo more >> {link}/logs/build.log && mkdir -m 2775 {link}/logs/failed-tasks/new"],
                   check=True)
    assert (jobs / OWNER / "3" / "logs" / "build.log").read_text().endswith("more\n")

    assert run(jobs, db, check=True) == (0, ["job 3: link kept: the old runner of bin's build is "
                                             "still running", "upgrade-layout: nothing to do"])
    assert run(jobs, db) == (0, ["job 3: link kept: the old runner of bin's build is still running",
                                 "upgrade-layout: nothing to do (1 link(s) kept for builds still running)"])

    runner.kill()
    runner.wait()
    subprocess.run(["runuser", "-u", OWNER, "--", "sh", "-c",
                    f"echo '{{\"status\": \"SUCCESS\"}}' > {link}/status.json"], check=True)
    code, lines = run(jobs, db, check=True)
    assert code == 1 and "link would be removed" in lines[0]
    code, lines = run(jobs, db)
    assert code == 0 and "link removed" in lines[0], lines
    assert not os.path.lexists(link)
    assert mode(jobs / OWNER / "3" / "logs" / "failed-tasks" / "new") == layout.JOB_DIR_MODE
    assert owner_of(jobs / OWNER / "3" / "status.json") == (OWNER, SERVICE)
    assert run(jobs, db) == (0, ["upgrade-layout: nothing to do"])


@needs_root
def test_a_dead_runner_or_a_foreign_pid_does_not_keep_a_link(tree, old_runner):
    srv, jobs, db = tree
    make_db(db, [(10, OWNER, "RUNNING"), (11, OWNER, "RUNNING")])
    d10 = legacy_job(jobs, 10, OWNER, finished=False)
    put(d10 / "runner.pid", OWNER, "999999999 999999999\n", 0o640)
    d11 = legacy_job(jobs, 11, OWNER, finished=False)
    other = old_runner(12)  # a live runner of another job
    put(d11 / "runner.pid", OWNER, f"{other.pid} {other.pid}\n", 0o640)
    # A runner.pid planted by a colleague is not the owner's record.
    os.chown(d11 / "runner.pid", uid(COLLEAGUE), gid("users"))
    code, lines = run(jobs, db)
    assert code == 0, lines
    assert not os.path.lexists(jobs / "10") and not os.path.lexists(jobs / "11")
    assert (jobs / OWNER / "10").is_dir() and (jobs / OWNER / "11").is_dir()
    assert not (jobs / OWNER / "11" / "runner.pid").exists()


@needs_root
def test_planted_links_in_the_jobs_root_are_removed(tree):
    srv, jobs, db = tree
    make_db(db, [(13, OWNER, "SUCCESS")])
    os.symlink("/etc", jobs / "13")
    os.chown(jobs / "13", uid(COLLEAGUE), gid("users"), follow_symlinks=False)
    code, lines = run(jobs, db)
    assert code == 0 and "removed a link to '/etc'" in lines[0]
    assert not os.path.lexists(jobs / "13") and os.path.isdir("/etc")


@needs_root
def test_a_job_directory_an_engineer_made_in_the_jobs_root_is_removed_not_migrated(tree):
    """Old job directories were all the service's: one a colleague made under a future (or
    any) job id is nobody's job, and never becomes the owner's."""
    srv, jobs, db = tree
    make_db(db, [(14, OWNER, "SUCCESS")])
    planted = mkdir(jobs / "14", COLLEAGUE, 0o755, group="users")
    (planted / "logs").mkdir()
    (planted / "logs" / "build.log").write_text("a forged log")
    code, lines = run(jobs, db)
    assert code == 0 and "job 14: made by" in lines[0] and "removed" in lines[0]
    assert not os.path.lexists(jobs / "14")
    assert not os.path.lexists(jobs / OWNER / "14")


@needs_root
def test_the_command_line_reads_the_env_file(tree, tmp_path):
    srv, jobs, db = tree
    make_db(db, [])
    env = tmp_path / "autobuild.env"
    env.write_text(f"AUTO_BUILD_DB={db}\nAUTO_BUILD_JOBS_ROOT={jobs}\n")
    result = subprocess.run([sys.executable, "-m", "autobuild.cli", "upgrade-layout", "--check",
                             "--env-file", str(env)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "upgrade-layout: nothing to do"


@needs_root
def test_a_launch_log_swapped_after_its_check_is_not_adopted_nor_chmod_through(tree, monkeypatch):
    """Until it is migrated an old job directory is writable by every engineer: the launch
    log checked as the service's may be swapped for a colleague's link before it is moved.
    Only the very file checked is kept; nothing is followed."""
    srv, jobs, db = tree
    make_db(db, [(15, OWNER, "SUCCESS")])
    d = legacy_job(jobs, 15, OWNER)
    victim = srv / "precious"
    put(victim, SERVICE, "not a launch log\n", 0o600)
    real_lstat = upgrade._lstat

    def lstat_then_swap(dir_fd, name):
        st = real_lstat(dir_fd, name)
        if name == upgrade.LEGACY_LAUNCH_LOG and st is not None and (d / name).is_file():
            (d / name).unlink()
            os.symlink(victim, d / name)  # the colleague wins the race
        return st

    monkeypatch.setattr(upgrade, "_lstat", lstat_then_swap)
    code, lines = run(jobs, db)
    assert mode(victim) == 0o600 and owner_of(victim)[0] == SERVICE
    assert not os.path.lexists(srv / "data" / "launch" / "15.log")
    assert (jobs / OWNER / "15" / "logs" / "build.log").is_file()  # the job itself moved


def deep_chain(top: Path, owner: str, depth: int) -> None:
    """``top/d/d/.../d`` ``depth`` levels deep, made by descriptor (no path is that short)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", 0o755, dir_fd=fd)
            os.chown("d", uid(owner), gid("users"), dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


@needs_root
def test_a_tree_thousands_of_levels_deep_stops_nothing(tree):
    srv, jobs, db = tree
    make_db(db, [(1, OWNER, "SUCCESS"), (2, OWNER, "SUCCESS")])
    d = legacy_job(jobs, 1, OWNER)
    deep_chain(d / "work", OWNER, 1500)  # the owner's own deep tree: normalised
    deep_chain(mkdir(d / "logs" / "planted", COLLEAGUE), COLLEAGUE, 1500)  # planted: removed
    legacy_job(jobs, 2, OWNER)
    try:
        code, lines = run(jobs, db)
        assert any(line.startswith("job 2: ") and "moved to" in line for line in lines), lines
        assert (jobs / OWNER / "2" / "logs" / "build.log").is_file()
        problems = [line for line in lines if line.startswith("job 1") and "could not" in line]
        if not problems:  # enough descriptors for one per level: all of it was done
            assert code == 0, lines
            assert not os.path.lexists(jobs / OWNER / "1" / "logs" / "planted")
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(jobs)], check=False)
