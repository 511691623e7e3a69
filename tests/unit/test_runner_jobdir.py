"""The runner's job directory: made exclusively, used by descriptor, nothing planted accepted."""

from __future__ import annotations

import json
import os
import pwd
import stat
from pathlib import Path

import pytest

from autobuild.domain import layout
from autobuild.runner.fsops import Refused, atomic_file, remove_tree, write_all
from autobuild.runner.jobdir import (
    Identity, RunnerRecord, create_job_dir, open_job_dir, open_jobs_root, open_owner_dir,
    read_record, write_record,
)


@pytest.fixture
def me(tmp_path) -> Identity:
    return Identity(os.getuid(), pwd.getpwuid(os.getuid()).pw_name, str(tmp_path / "home"))


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "jobs"
    path.mkdir(mode=0o755)
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def owner_fd(root: Path, me: Identity) -> int:
    root_fd = open_jobs_root(str(root))
    try:
        fd = open_owner_dir(root_fd, str(root), me, create=True)
        assert fd is not None
        return fd
    finally:
        os.close(root_fd)


def test_a_fresh_job_directory_has_the_layouts_modes(root, me):
    fd = owner_fd(root, me)
    files = create_job_dir(fd, f"{root}/{me.name}", 7)
    os.close(fd)
    try:
        job = root / me.name / "7"
        assert files.path == str(job)
        assert mode(root / me.name) == layout.OWNER_DIR_MODE
        assert mode(job) == layout.JOB_DIR_MODE
        assert mode(job / layout.LOGS_DIR) == layout.JOB_DIR_MODE
        assert mode(job / layout.ARTIFACTS_DIR) == layout.JOB_DIR_MODE
        assert mode(job / layout.WORK_DIR) == layout.WORK_DIR_MODE
        assert mode(job.joinpath(*layout.LOG_PATH)) == layout.FILE_MODE
        assert sorted(p.name for p in job.iterdir()) == sorted(
            [layout.LOGS_DIR, layout.ARTIFACTS_DIR, layout.WORK_DIR])
        write_all(files.log, b"hello\n")
        assert job.joinpath(*layout.LOG_PATH).read_bytes() == b"hello\n"
    finally:
        files.close()


@pytest.mark.parametrize("kind", ["dir", "file", "symlink", "fifo", "dangling"])
def test_a_job_name_that_exists_in_any_form_is_refused(root, me, tmp_path, kind):
    fd = owner_fd(root, me)
    target = root / me.name / "7"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    {"dir": lambda: target.mkdir(), "file": lambda: target.write_text(""),
     "symlink": lambda: target.symlink_to(elsewhere), "fifo": lambda: os.mkfifo(target),
     "dangling": lambda: target.symlink_to(tmp_path / "nothing")}[kind]()
    try:
        with pytest.raises(Refused, match="job 7 has already run"):
            create_job_dir(fd, f"{root}/{me.name}", 7)
    finally:
        os.close(fd)
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "nothing").exists()


@pytest.mark.parametrize("kind", ["symlink", "file", "fifo"])
def test_an_owner_name_that_is_not_a_directory_is_refused(root, me, tmp_path, kind):
    target = root / me.name
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    {"file": lambda: target.write_text(""), "symlink": lambda: target.symlink_to(elsewhere),
     "fifo": lambda: os.mkfifo(target)}[kind]()
    root_fd = open_jobs_root(str(root))
    try:
        with pytest.raises(Refused, match="ask an admin to remove it") as caught:
            open_owner_dir(root_fd, str(root), me, create=True)
    finally:
        os.close(root_fd)
    assert str(target) in str(caught.value)
    assert ("symbolic link" in str(caught.value)) == (kind == "symlink")


def test_an_owner_directory_of_another_user_is_refused(root, me):
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    (root / me.name).mkdir(mode=0o777)
    os.chown(root / me.name, 65534, 65534)
    root_fd = open_jobs_root(str(root))
    try:
        with pytest.raises(Refused, match=f"belongs to {pwd.getpwuid(65534).pw_name}, "
                                          f"not {me.name}: ask an admin to remove it"):
            open_owner_dir(root_fd, str(root), me, create=True)
    finally:
        os.close(root_fd)


def test_a_loose_owner_directory_is_tightened_and_a_missing_one_not_made_on_request(root, me):
    root_fd = open_jobs_root(str(root))
    try:
        assert open_owner_dir(root_fd, str(root), me, create=False) is None
        assert not (root / me.name).exists()
        (root / me.name).mkdir()
        (root / me.name).chmod(0o777)
        fd = open_owner_dir(root_fd, str(root), me, create=False)
        assert fd is not None
        os.close(fd)
    finally:
        os.close(root_fd)
    assert mode(root / me.name) == layout.OWNER_DIR_MODE


def test_under_a_setgid_jobs_root_an_owner_directory_that_lost_setgid_is_refused(root, me):
    """An engineer cannot give setgid back (a chmod outside the group drops it), and without
    it the service could not read their builds: say so, with the admin's fix."""
    root.chmod(0o3753)
    (root / me.name).mkdir()
    (root / me.name).chmod(0o750)
    root_fd = open_jobs_root(str(root))
    try:
        with pytest.raises(Refused, match="ask an admin to run: chgrp"):
            open_owner_dir(root_fd, str(root), me, create=False)
        (root / me.name).chmod(0o2750)
        fd = open_owner_dir(root_fd, str(root), me, create=False)
        assert fd is not None
        os.close(fd)
    finally:
        os.close(root_fd)


def test_a_job_directory_made_under_a_setgid_owner_directory_keeps_setgid(root, me):
    root.chmod(0o3753)
    root_fd = open_jobs_root(str(root))
    try:
        owner = open_owner_dir(root_fd, str(root), me, create=True)
        assert owner is not None
        files = create_job_dir(owner, str(root / me.name), 5)
        files.close()
        os.close(owner)
    finally:
        os.close(root_fd)
    for path in (root / me.name, root / me.name / "5", root / me.name / "5" / "logs"):
        assert mode(path) & 0o2000, path


@pytest.mark.parametrize("bits,refused", [(0o777, True), (0o775, True), (0o1777, False),
                                          (0o3753, False), (0o755, False)])
def test_a_jobs_root_others_may_write_needs_the_sticky_bit(root, bits, refused):
    root.chmod(bits)
    try:
        if refused:
            with pytest.raises(Refused, match="sticky"):
                open_jobs_root(str(root))
        else:
            os.close(open_jobs_root(str(root)))
    finally:
        root.chmod(0o755)


def test_a_missing_jobs_root_is_refused(tmp_path):
    with pytest.raises(Refused, match="cannot open the jobs root"):
        open_jobs_root(str(tmp_path / "none"))


def test_open_job_dir_finds_only_our_real_directories(root, me, tmp_path):
    fd = owner_fd(root, me)
    try:
        assert open_job_dir(fd, str(root / me.name), 3, me) is None
        (root / me.name / "3").symlink_to(tmp_path)
        with pytest.raises(Refused, match="symbolic link"):
            open_job_dir(fd, str(root / me.name), 3, me)
    finally:
        os.close(fd)


# --- runner.json ----------------------------------------------------------------------------

@pytest.fixture
def job(tmp_path):
    path = tmp_path / "job"
    path.mkdir()
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    yield path, fd
    os.close(fd)


def test_the_record_round_trips_and_is_written_atomically(job, me):
    path, fd = job
    record = RunnerRecord(job_id=5, pid=123, pgid=124, start_time=999)
    write_record(fd, record)
    assert read_record(fd, 5, me.uid) == record
    assert mode(path / layout.RUNNER_RECORD) == layout.FILE_MODE
    assert [p.name for p in path.iterdir()] == [layout.RUNNER_RECORD]
    assert json.loads((path / layout.RUNNER_RECORD).read_text()) == {
        "job_id": 5, "pid": 123, "pgid": 124, "start_time": 999}


def test_a_missing_record_is_none(job, me):
    assert read_record(job[1], 5, me.uid) is None


@pytest.mark.parametrize("content,message", [
    ("{", "malformed"), ("[]", "malformed"), ('{"job_id": 5}', "malformed"),
    ('{"job_id": 5, "pid": "1", "pgid": 2, "start_time": 3}', "malformed"),
    ('{"job_id": 5, "pid": true, "pgid": 2, "start_time": 3}', "malformed"),
    ('{"job_id": 5, "pid": -1, "pgid": 2, "start_time": 3}', "malformed"),
    ('{"job_id": 6, "pid": 1, "pgid": 2, "start_time": 3}', "not the record of job 5"),
    ("x" * (layout.MAX_RECORD_BYTES + 1), "too large"),
])
def test_a_bad_record_is_refused(job, me, content, message):
    path, fd = job
    (path / layout.RUNNER_RECORD).write_text(content)
    with pytest.raises(Refused, match=message):
        read_record(fd, 5, me.uid)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "dir"])
def test_a_record_that_is_not_a_regular_file_is_refused_without_blocking(job, me, tmp_path, kind):
    path, fd = job
    target = path / layout.RUNNER_RECORD
    real = tmp_path / "real.json"
    real.write_text('{"job_id": 5, "pid": 1, "pgid": 2, "start_time": 3}')
    {"symlink": lambda: target.symlink_to(real), "fifo": lambda: os.mkfifo(target),
     "dir": lambda: target.mkdir()}[kind]()
    with pytest.raises(Refused, match="not a regular file"):
        read_record(fd, 5, me.uid)


def test_a_record_of_another_user_is_refused(job, me):
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    path, fd = job
    (path / layout.RUNNER_RECORD).write_text('{"job_id": 5, "pid": 1, "pgid": 2, "start_time": 3}')
    os.chown(path / layout.RUNNER_RECORD, 65534, 65534)
    with pytest.raises(Refused, match="not ours"):
        read_record(fd, 5, me.uid)


# --- descriptor helpers ---------------------------------------------------------------------

def test_atomic_file_leaves_nothing_behind_on_failure(job):
    path, fd = job
    (path / "target").write_text("old")
    with pytest.raises(RuntimeError), atomic_file(fd, "target") as out:
        write_all(out, b"new")
        raise RuntimeError("disk full")
    assert [p.name for p in path.iterdir()] == ["target"]
    assert (path / "target").read_text() == "old"


def test_atomic_file_replaces_a_planted_link_instead_of_writing_through_it(job, tmp_path):
    path, fd = job
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (path / "target").symlink_to(victim)
    with atomic_file(fd, "target") as out:
        write_all(out, b"mine")
    assert victim.read_text() == "precious"
    assert not (path / "target").is_symlink() and (path / "target").read_text() == "mine"


def test_remove_tree_makes_read_only_dirs_writable_and_never_follows_links(job, tmp_path):
    path, fd = job
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("x")
    tree = path / "work" / "gomod" / "pkg"
    tree.mkdir(parents=True)
    (tree / "f.go").write_text("package f\n")
    (path / "work" / "out").symlink_to(elsewhere)
    tree.chmod(0o555)
    tree.parent.chmod(0o555)

    remove_tree(fd, "work")

    assert not (path / "work").exists()
    assert (elsewhere / "keep").read_text() == "x"
