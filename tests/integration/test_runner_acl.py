"""The runner's grants to the web group, read back with getfacl: what it says is what we meant;
a job's directories get theirs by inheritance (setgid kept), ``work/`` gets nothing."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from autobuild.runner import fsops
from autobuild.runner.jobdir import create_job_dir

pytestmark = pytest.mark.skipif(not shutil.which("getfacl"), reason="getfacl (acl) not installed")
GID = 4242  # any gid: ACL entries name ids, the group need not exist


def getfacl(path, default=False) -> list[str]:
    args = ["getfacl", "-n", "-c", "-p"] + (["-d"] if default else []) + [str(path)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [line.split("\t")[0] for line in out.splitlines() if line]


@pytest.fixture
def acl_dir(tmp_path):
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    fd = os.open(probe, os.O_RDONLY)
    try:
        if not fsops.grant_group(fd, GID, 0o4):
            pytest.skip("this filesystem has no POSIX ACLs")
    finally:
        os.close(fd)
    return tmp_path


def test_a_file_grant_is_what_setfacl_would_have_made(acl_dir):
    path = acl_dir / "image.bin"
    path.write_bytes(b"x")
    path.chmod(0o640)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert fsops.grant_group(fd, GID, 0o4)
    finally:
        os.close(fd)

    assert getfacl(path) == ["user::rw-", "group::r--", f"group:{GID}:r--", "mask::r--",
                             "other::---"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_no_group_or_no_acls_changes_nothing(acl_dir):
    path = acl_dir / "plain"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert fsops.grant_group(fd, None, 0o4) is False
    finally:
        os.close(fd)
    assert getfacl(path) == ["user::rw-", "group::r--", "other::r--"]


def test_a_jobs_directories_inherit_search_the_log_gets_read_and_work_nothing(acl_dir):
    owner = acl_dir / "owner"
    owner.mkdir()
    owner.chmod(0o2750)
    owner_fd = os.open(owner, os.O_RDONLY | os.O_DIRECTORY)
    old = os.umask(0o027)
    try:
        files = create_job_dir(owner_fd, str(owner), 7, web_gid=GID)
        files.close()
    finally:
        os.umask(old)
        os.close(owner_fd)

    job = owner / "7"
    search = ["user::rwx", "group::r-x", f"group:{GID}:--x", "mask::r-x", "other::---"]
    assert getfacl(owner, default=True) == search
    for path in (job, job / "logs", job / "artifacts"):
        assert getfacl(path) == search, path
        assert getfacl(path, default=True) == [], path  # nothing below inherits
        assert stat.S_IMODE(path.stat().st_mode) == 0o2750, path
    assert getfacl(job / "work") == ["user::rwx", "group::---", "other::---"]
    assert getfacl(job / "logs" / "build.log") == [
        "user::rw-", "group::r--", f"group:{GID}:r--", "mask::r--", "other::---"]
