"""JobDirectory against real files in <root>/<owner>/<id>/: the log and path-safe artifacts."""

from __future__ import annotations

import os
import pwd
import stat
import threading
from datetime import UTC, datetime

import pytest

from autobuild.domain.artifacts import ArtifactNotFound
from autobuild.domain.jobs import Job

JOB_ID = 12
OWNER = pwd.getpwuid(os.getuid()).pw_name  # the tests' files are the owner's


@pytest.fixture(autouse=True)
def plain_umask():
    """Files as a build writes them: nothing writable by group or others."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def artifacts(root):
    path = root / OWNER / str(JOB_ID) / "artifacts"
    path.mkdir(parents=True)
    return path


def make_job(job_id: int = JOB_ID, owner: str = OWNER) -> Job:
    return Job(id=job_id, owner=owner, repo_url="https://git.example.com/bsp/poky.git",
               ref="v1.2", machine="qemux86-64", target="core-image-minimal",
               created_at=datetime(2026, 1, 1, 12, 0, 5, 123, tzinfo=UTC))


JOB = make_job()


def write_log(root, data: bytes) -> None:
    logs = root / OWNER / str(JOB_ID) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "build.log").write_bytes(data)


def test_a_missing_log_is_empty(files, root):
    assert files.read_log(JOB, 0, 100) == b""
    assert files.log_size(JOB) == 0
    (root / OWNER / str(JOB_ID)).mkdir(parents=True)
    assert files.read_log(JOB, 0, 100) == b""


def test_log_is_read_by_byte_offset(files, root):
    data = "NOTE: Running task 1 of 2\nÜmlaut line\n".encode()
    write_log(root, data)

    assert files.log_size(JOB) == len(data)
    assert files.read_log(JOB, 0, 5) == b"NOTE:"
    assert files.read_log(JOB, 5, 1000) == data[5:]
    assert files.read_log(JOB, 27, 1) == data[27:28]  # half of the two-byte "Ü"
    assert files.read_log(JOB, len(data), 10) == b""
    assert files.read_log(JOB, len(data) + 50, 10) == b""


def test_a_log_that_grows_is_read_from_where_the_reader_stopped(files, root):
    write_log(root, b"line 1\n")
    first = files.read_log(JOB, 0, 1000)
    with open(root / OWNER / str(JOB_ID) / "logs" / "build.log", "ab") as log:
        log.write(b"line 2\n")
    assert first + files.read_log(JOB, len(first), 1000) == b"line 1\nline 2\n"


def test_a_log_that_is_a_symlink_is_treated_as_missing(files, root, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"not for the web")
    (root / OWNER / str(JOB_ID) / "logs").mkdir(parents=True)
    (root / OWNER / str(JOB_ID) / "logs" / "build.log").symlink_to(secret)

    assert files.read_log(JOB, 0, 100) == b""
    assert files.log_size(JOB) == 0


def test_a_logs_dir_that_is_a_symlink_is_treated_as_missing(files, root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "build.log").write_bytes(b"not for the web")
    (root / OWNER / str(JOB_ID)).mkdir(parents=True)
    (root / OWNER / str(JOB_ID) / "logs").symlink_to(elsewhere)

    assert files.read_log(JOB, 0, 100) == b""


def finishes_quickly(call, fifo) -> list:
    """[result or exception] of ``call()``; fails the test if it blocks on ``fifo``."""
    outcome: list = []

    def attempt() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=5)
    if thread.is_alive():  # unblock the stuck open so the test run can finish
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"opening the FIFO {fifo} hung")
    return outcome


def test_a_log_that_is_a_fifo_does_not_hang(files, root):
    fifo = root / OWNER / str(JOB_ID) / "logs" / "build.log"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    assert finishes_quickly(lambda: files.read_log(JOB, 0, 100), fifo) == [b""]
    assert finishes_quickly(lambda: files.log_size(JOB), fifo) == [0]


@pytest.mark.parametrize("job", [
    make_job(job_id=bad) for bad in (0, -1, True, "12", "../12", None, 1.5)] + [
    make_job(owner=bad) for bad in ("", "..", "../" + OWNER, "Root", "no-such-user-zz", "a/b")])
def test_an_invalid_job_id_or_owner_reads_as_nothing(files, root, job):
    write_log(root, b"data")
    assert files.read_log(job, 0, 100) == b""
    assert files.log_size(job) == 0
    assert files.list_artifacts(job) == []
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(job, "image.bin")


# --- artifacts ------------------------------------------------------------------------------


def test_artifacts_lists_regular_files_only_sorted_by_name(files, artifacts, tmp_path):
    (artifacts / "zImage.bin").write_bytes(b"z" * 10)
    (artifacts / "flash.mtd").write_bytes(b"m" * 3)
    (artifacts / "subdir").mkdir()
    (artifacts / "link.bin").symlink_to(artifacts / "zImage.bin")
    (artifacts / "passwd").symlink_to("/etc/passwd")
    (artifacts / ".partial.bin").write_bytes(b"copy in progress")
    os.mkfifo(artifacts / "pipe.bin")
    os.utime(artifacts / "flash.mtd", (1767268800, 1767268800))

    listed = files.list_artifacts(JOB)

    assert [(a.name, a.size) for a in listed] == [("flash.mtd", 3), ("zImage.bin", 10)]
    assert listed[0].mtime == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_a_crowded_artifacts_dir_lists_the_first_files_by_name_and_counts_the_rest(
        files, artifacts, monkeypatch):
    """A build may leave 200k files: only those listed are looked at (one stat each), the
    rest are counted; any of them is still served by its name."""
    from autobuild.adapters import job_files
    from autobuild.domain import artifacts as rules
    monkeypatch.setattr(rules, "MAX_ARTIFACTS_LISTED", 10)
    for i in range(30):
        (artifacts / f"f{i:02d}.bin").write_bytes(b"x" * i)
    (artifacts / "a-link.bin").symlink_to(artifacts / "f00.bin")  # not a file: neither
    (artifacts / "a-dir").mkdir()
    os.mkfifo(artifacts / "a-fifo")
    stats = []
    real_stat = os.stat

    def counted(path, *args, **kwargs):
        stats.append(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(job_files.os, "stat", counted)
    listed = files.list_artifacts(JOB)
    monkeypatch.setattr(job_files.os, "stat", real_stat)

    assert [a.name for a in listed] == [f"f{i:02d}.bin" for i in range(10)]
    assert listed.more == 20
    assert len(stats) <= 10
    handle, info = files.open_artifact(JOB, "f29.bin")
    with handle:
        assert handle.read() == b"x" * 29


def test_a_listing_within_the_limit_counts_nothing_more(files, artifacts):
    (artifacts / "image.bin").write_bytes(b"x")
    listed = files.list_artifacts(JOB)
    assert [a.name for a in listed] == ["image.bin"] and listed.more == 0


def test_no_artifacts_dir_lists_nothing(files, root):
    assert files.list_artifacts(JOB) == []


def test_a_regular_artifact_is_served_byte_identical(files, artifacts):
    data = os.urandom(300_000)
    (artifacts / "core-image.bin").write_bytes(data)

    handle, info = files.open_artifact(JOB, "core-image.bin")
    with handle:
        assert handle.read() == data
    assert (info.name, info.size) == ("core-image.bin", len(data))
    assert info.mtime.tzinfo is not None


def test_the_artifact_is_served_from_the_descriptor_that_was_checked(files, artifacts):
    (artifacts / "image.bin").write_bytes(b"original")
    handle, info = files.open_artifact(JOB, "image.bin")
    # Swapping the name for a symlink after the check cannot change what is served.
    os.unlink(artifacts / "image.bin")
    (artifacts / "image.bin").symlink_to("/etc/passwd")
    with handle:
        assert handle.read() == b"original"
    assert info.size == len(b"original")


@pytest.mark.parametrize("name", [
    "../evil", "%2e%2e/x", "/etc/passwd", "image\x00.bin", ".", "..", "", "sub/image.bin",
    "..\\evil", "missing.bin",
])
def test_unsafe_or_unknown_names_are_not_found(files, artifacts, root, name):
    (root / OWNER / str(JOB_ID) / "evil").write_bytes(b"outside the artifacts dir")
    (artifacts / "sub").mkdir()
    (artifacts / "sub" / "image.bin").write_bytes(b"in a subdirectory")
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB, name)


def test_a_literal_percent_name_is_only_a_file_name(files, artifacts):
    (artifacts / "%2e%2e").write_bytes(b"odd but plain")
    handle, _ = files.open_artifact(JOB, "%2e%2e")
    with handle:
        assert handle.read() == b"odd but plain"


def test_a_symlink_to_etc_passwd_is_not_served(files, artifacts):
    (artifacts / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB, "passwd")


def test_a_symlink_to_a_file_inside_artifacts_is_not_served(files, artifacts):
    (artifacts / "real.bin").write_bytes(b"data")
    (artifacts / "alias.bin").symlink_to("real.bin")
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB, "alias.bin")


def test_a_directory_is_not_served(files, artifacts):
    (artifacts / "dir.bin").mkdir()
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB, "dir.bin")


def test_a_fifo_is_not_served_and_does_not_hang(files, artifacts):
    os.mkfifo(artifacts / "pipe.bin")
    outcome = finishes_quickly(lambda: files.open_artifact(JOB, "pipe.bin"),
                               artifacts / "pipe.bin")
    assert len(outcome) == 1 and isinstance(outcome[0], ArtifactNotFound)


def test_an_artifacts_dir_that_is_a_symlink_lists_and_serves_nothing(files, root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "image.bin").write_bytes(b"not an artifact of this job")
    (root / OWNER / str(JOB_ID)).mkdir(parents=True)
    (root / OWNER / str(JOB_ID) / "artifacts").symlink_to(elsewhere)

    assert files.list_artifacts(JOB) == []
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB, "image.bin")


def test_a_job_dir_that_is_a_symlink_serves_nothing(files, root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "artifacts").mkdir(parents=True)
    (elsewhere / "artifacts" / "image.bin").write_bytes(b"x")
    (root / OWNER).mkdir(exist_ok=True)
    (root / OWNER / str(JOB_ID)).symlink_to(elsewhere)

    assert files.list_artifacts(JOB) == []
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB, "image.bin")


# --- only what the owner wrote, and nobody else could change, is read -----------------------


def test_files_writable_by_the_group_or_others_are_not_read(files, root, artifacts):
    write_log(root, b"a forged log")
    (artifacts / "image.bin").write_bytes(b"image")
    log = root / OWNER / str(JOB_ID) / "logs" / "build.log"
    log.chmod(0o660)
    (artifacts / "image.bin").chmod(0o666)
    assert files.read_log(JOB, 0, 100) == b""
    assert files.list_artifacts(JOB) == []
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB, "image.bin")


def test_a_job_dir_writable_by_others_is_not_read(files, root, artifacts):
    (artifacts / "image.bin").write_bytes(b"image")
    (root / OWNER / str(JOB_ID)).chmod(0o777)
    assert files.list_artifacts(JOB) == []


def test_a_hard_link_is_not_served(files, root, artifacts, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"a file of somebody's, linked in")
    os.link(outside, artifacts / "linked.bin")
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB, "linked.bin")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another user")
def test_files_or_directories_of_another_user_are_not_read(files, root, artifacts):
    nobody = pwd.getpwnam("nobody").pw_uid
    write_log(root, b"planted by a colleague")
    (artifacts / "image.bin").write_bytes(b"planted")
    (artifacts / "mine.bin").write_bytes(b"the owner's")
    os.chown(root / OWNER / str(JOB_ID) / "logs" / "build.log", nobody, -1)
    os.chown(artifacts / "image.bin", nobody, -1)
    assert files.read_log(JOB, 0, 100) == b""
    assert [a.name for a in files.list_artifacts(JOB)] == ["mine.bin"]
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB, "image.bin")
    os.chown(root / OWNER, nobody, -1)  # a squatted owner directory
    assert files.list_artifacts(JOB) == []


def test_usage_counts_the_builds_files_without_following_links(files, root, artifacts, tmp_path):
    (artifacts / "image.bin").write_bytes(b"x" * 100_000)
    big = tmp_path / "big"
    big.write_bytes(b"y" * 1_000_000)
    (artifacts / "link.bin").symlink_to(big)
    used = files.usage(JOB)
    assert 100_000 <= used < 1_000_000
    assert files.usage(make_job(job_id=99)) == 0


# --- checksums ------------------------------------------------------------------------------


def test_artifacts_come_with_the_sha256_the_runner_recorded(files, root, artifacts, tmp_path):
    arts = artifacts
    (arts / "a.bin").write_bytes(b"a")
    (arts / "b.mtd").write_bytes(b"b")
    digest = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    (root / OWNER / str(JOB_ID) / "artifacts.sha256").write_text(f"{digest}  a.bin\n")

    listed = {a.name: a.sha256 for a in files.list_artifacts(JOB)}

    assert listed == {"a.bin": digest, "b.mtd": None}


def test_a_symlinked_or_huge_checksum_file_is_ignored(files, root, artifacts, tmp_path):
    arts = artifacts
    (arts / "a.bin").write_bytes(b"a")
    elsewhere = tmp_path / "planted"
    elsewhere.write_text(f"{'1' * 64}  a.bin\n")
    os.symlink(elsewhere, root / OWNER / str(JOB_ID) / "artifacts.sha256")
    assert [a.sha256 for a in files.list_artifacts(JOB)] == [None]

    os.unlink(root / OWNER / str(JOB_ID) / "artifacts.sha256")
    (root / OWNER / str(JOB_ID) / "artifacts.sha256").write_text(f"{'1' * 64}  a.bin\n" * 20000)
    assert [a.sha256 for a in files.list_artifacts(JOB)] == [None]


# --- the raw log download ------------------------------------------------------------------

def test_the_raw_log_is_opened_whole_with_its_size(files, root):
    data = b"NOTE: line\n" * 1000
    write_log(root, data)

    fileobj, size = files.open_log(JOB)
    with fileobj:
        assert (fileobj.read(), size) == (data, len(data))


def test_a_missing_linked_fifo_or_hard_linked_log_is_not_opened(files, root, tmp_path):
    from autobuild.domain.logs import LogNotFound

    with pytest.raises(LogNotFound):
        files.open_log(JOB)
    logs = root / OWNER / str(JOB_ID) / "logs"
    logs.mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.write_bytes(b"not for the web")
    cases = [lambda log: log.symlink_to(secret), lambda log: os.link(secret, log),
             os.mkfifo, lambda log: log.mkdir()]
    for make in cases:
        log = logs / "build.log"
        make(log)
        assert finishes_quickly(lambda: _refused(files, LogNotFound), log) == [True]
        log.rmdir() if log.is_dir() and not log.is_symlink() else log.unlink()


def _refused(files, error) -> bool:
    try:
        files.open_log(JOB)[0].close()
    except error:
        return True
    return False


def test_the_owners_uid_is_looked_up_once_not_for_every_read(files, root, monkeypatch):
    from autobuild.adapters import build_tree

    write_log(root, b"line\n")
    monkeypatch.setattr(build_tree, "_uids", {})
    lookups = []
    getpwnam = pwd.getpwnam
    monkeypatch.setattr(pwd, "getpwnam", lambda name: lookups.append(name) or getpwnam(name))

    for offset in range(50):  # a tailer reading a growing log
        files.read_log(make_job(), offset % 5, 10)

    assert lookups == [OWNER]
