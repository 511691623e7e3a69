"""JobDirectory against real files: layout, log, status and path-safe artifacts."""

from __future__ import annotations

import json
import os
import stat
import threading
from datetime import UTC, datetime

import pytest

from autobuild.domain.artifacts import ArtifactNotFound
from autobuild.domain.jobs import Job

JOB_ID = 12


@pytest.fixture
def artifacts(root):
    path = root / str(JOB_ID) / "artifacts"
    path.mkdir(parents=True)
    return path


def make_job() -> Job:
    return Job(owner="alice", repo_url="https://git.example.com/bsp/poky.git", ref="v1.2",
               machine="qemux86-64", target="core-image-minimal",
               created_at=datetime(2026, 1, 1, 12, 0, 5, 123, tzinfo=UTC), id=JOB_ID)


# --- create ---------------------------------------------------------------------------------


def test_create_makes_a_setgid_group_writable_directory(root, files):
    old_umask = os.umask(0o077)  # a strict umask must not weaken the modes the runner needs
    try:
        files.create(make_job(), ["*.bin", "*.mtd"])
    finally:
        os.umask(old_umask)

    mode = (root / str(JOB_ID)).stat().st_mode
    assert stat.S_ISDIR(mode)
    assert mode & stat.S_ISGID
    assert stat.S_IMODE(mode) == 0o2770
    for name in ("job.json", "artifact-patterns"):
        assert stat.S_IMODE((root / str(JOB_ID) / name).stat().st_mode) == 0o640


def test_create_writes_the_parameters_for_the_runner(root, files):
    files.create(make_job(), ["*.bin", "*.mtd", "*.wic.gz"])
    job_dir = root / str(JOB_ID)

    assert json.loads((job_dir / "job.json").read_text()) == {
        "id": JOB_ID, "owner": "alice", "repo_url": "https://git.example.com/bsp/poky.git",
        "ref": "v1.2", "machine": "qemux86-64", "target": "core-image-minimal",
        "created_at": "2026-01-01T12:00:05Z", "artifact_patterns": ["*.bin", "*.mtd", "*.wic.gz"],
        "kas_file": None,
    }
    assert (job_dir / "artifact-patterns").read_bytes() == b"*.bin\n*.mtd\n*.wic.gz\n"
    assert sorted(p.name for p in job_dir.iterdir()) == ["artifact-patterns", "build-settings",
                                                         "job.json"]


def test_create_moves_a_leftover_directory_aside_and_keeps_it(root, files):
    (root / str(JOB_ID) / "logs").mkdir(parents=True)
    (root / str(JOB_ID) / "logs" / "build.log").write_text("an old job's log\n")
    files.create(make_job(), ["*.bin"])
    assert (root / str(JOB_ID) / "job.json").exists()
    assert files.read_log(JOB_ID, 0, 100) == b""
    [aside] = root.glob(f"{JOB_ID}.orphaned-*")
    assert (aside / "logs" / "build.log").read_text() == "an old job's log\n"


# --- log ------------------------------------------------------------------------------------


def write_log(root, data: bytes) -> None:
    logs = root / str(JOB_ID) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "build.log").write_bytes(data)


def test_a_missing_log_is_empty(files, root):
    assert files.read_log(JOB_ID, 0, 100) == b""
    assert files.log_size(JOB_ID) == 0
    (root / str(JOB_ID)).mkdir()
    assert files.read_log(JOB_ID, 0, 100) == b""


def test_log_is_read_by_byte_offset(files, root):
    data = "NOTE: Running task 1 of 2\nÜmlaut line\n".encode()
    write_log(root, data)

    assert files.log_size(JOB_ID) == len(data)
    assert files.read_log(JOB_ID, 0, 5) == b"NOTE:"
    assert files.read_log(JOB_ID, 5, 1000) == data[5:]
    assert files.read_log(JOB_ID, 27, 1) == data[27:28]  # half of the two-byte "Ü"
    assert files.read_log(JOB_ID, len(data), 10) == b""
    assert files.read_log(JOB_ID, len(data) + 50, 10) == b""


def test_a_log_that_grows_is_read_from_where_the_reader_stopped(files, root):
    write_log(root, b"line 1\n")
    first = files.read_log(JOB_ID, 0, 1000)
    with open(root / str(JOB_ID) / "logs" / "build.log", "ab") as log:
        log.write(b"line 2\n")
    assert first + files.read_log(JOB_ID, len(first), 1000) == b"line 1\nline 2\n"


def test_a_log_that_is_a_symlink_is_treated_as_missing(files, root, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"not for the web")
    (root / str(JOB_ID) / "logs").mkdir(parents=True)
    (root / str(JOB_ID) / "logs" / "build.log").symlink_to(secret)

    assert files.read_log(JOB_ID, 0, 100) == b""
    assert files.log_size(JOB_ID) == 0


def test_a_logs_dir_that_is_a_symlink_is_treated_as_missing(files, root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "build.log").write_bytes(b"not for the web")
    (root / str(JOB_ID)).mkdir()
    (root / str(JOB_ID) / "logs").symlink_to(elsewhere)

    assert files.read_log(JOB_ID, 0, 100) == b""


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
    fifo = root / str(JOB_ID) / "logs" / "build.log"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    assert finishes_quickly(lambda: files.read_log(JOB_ID, 0, 100), fifo) == [b""]
    assert finishes_quickly(lambda: files.log_size(JOB_ID), fifo) == [0]


@pytest.mark.parametrize("bad_id", [0, -1, True, "12", "../12", None, 1.5])
def test_an_invalid_job_id_reads_as_nothing(files, root, bad_id):
    write_log(root, b"data")
    assert files.read_log(bad_id, 0, 100) == b""
    assert files.log_size(bad_id) == 0
    assert files.read_status(bad_id) is None
    assert files.list_artifacts(bad_id) == []
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(bad_id, "image.bin")


# --- status.json ----------------------------------------------------------------------------


def write_status(root, content: str | bytes) -> None:
    job_dir = root / str(JOB_ID)
    job_dir.mkdir(exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    (job_dir / "status.json").write_bytes(data)


@pytest.mark.parametrize("status,exit_code", [("SUCCESS", 0), ("FAILED", 2), ("CANCELLED", 130)])
def test_a_terminal_status_is_read(files, root, status, exit_code):
    write_status(root, json.dumps({"status": status, "exit_code": exit_code,
                                   "finished_at": "2026-01-01T12:00:00Z"}))

    result = files.read_status(JOB_ID)

    assert (result.status, result.exit_code) == (status, exit_code)
    assert result.finished_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_a_status_with_an_unreadable_time_still_counts(files, root):
    write_status(root, '{"status": "FAILED", "exit_code": 1, "finished_at": "yesterday"}')
    result = files.read_status(JOB_ID)
    assert (result.status, result.exit_code, result.finished_at) == ("FAILED", 1, None)


@pytest.mark.parametrize("content", [
    "",
    '{"status": "SUCCESS", "exit_co',          # partially written
    "garbage",
    b"\xff\xfe\x00",
    "[]",
    "null",
    '{"status": "RUNNING", "exit_code": 0}',   # not terminal
    '{"status": "SUCCESS"}',                   # no exit code
    '{"status": "SUCCESS", "exit_code": "0"}',
    '{"status": "SUCCESS", "exit_code": true}',
    '{"status": "SUCCESS", "exit_code": 0.5}',
    '{"status": ["SUCCESS"], "exit_code": 0}',
    '{"status": "success", "exit_code": 0}',
])
def test_an_incomplete_or_garbage_status_is_none(files, root, content):
    write_status(root, content)
    assert files.read_status(JOB_ID) is None


def test_a_missing_status_is_none(files, root):
    assert files.read_status(JOB_ID) is None
    (root / str(JOB_ID)).mkdir()
    assert files.read_status(JOB_ID) is None


def test_a_status_that_is_a_symlink_is_ignored(files, root, tmp_path):
    real = tmp_path / "status.json"
    real.write_text('{"status": "SUCCESS", "exit_code": 0}')
    (root / str(JOB_ID)).mkdir()
    (root / str(JOB_ID) / "status.json").symlink_to(real)
    assert files.read_status(JOB_ID) is None


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

    listed = files.list_artifacts(JOB_ID)

    assert [(a.name, a.size) for a in listed] == [("flash.mtd", 3), ("zImage.bin", 10)]
    assert listed[0].mtime == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_no_artifacts_dir_lists_nothing(files, root):
    assert files.list_artifacts(JOB_ID) == []


def test_a_regular_artifact_is_served_byte_identical(files, artifacts):
    data = os.urandom(300_000)
    (artifacts / "core-image.bin").write_bytes(data)

    handle, info = files.open_artifact(JOB_ID, "core-image.bin")
    with handle:
        assert handle.read() == data
    assert (info.name, info.size) == ("core-image.bin", len(data))
    assert info.mtime.tzinfo is not None


def test_the_artifact_is_served_from_the_descriptor_that_was_checked(files, artifacts):
    (artifacts / "image.bin").write_bytes(b"original")
    handle, info = files.open_artifact(JOB_ID, "image.bin")
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
    (root / str(JOB_ID) / "evil").write_bytes(b"outside the artifacts dir")
    (artifacts / "sub").mkdir()
    (artifacts / "sub" / "image.bin").write_bytes(b"in a subdirectory")
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB_ID, name)


def test_a_literal_percent_name_is_only_a_file_name(files, artifacts):
    (artifacts / "%2e%2e").write_bytes(b"odd but plain")
    handle, _ = files.open_artifact(JOB_ID, "%2e%2e")
    with handle:
        assert handle.read() == b"odd but plain"


def test_a_symlink_to_etc_passwd_is_not_served(files, artifacts):
    (artifacts / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB_ID, "passwd")


def test_a_symlink_to_a_file_inside_artifacts_is_not_served(files, artifacts):
    (artifacts / "real.bin").write_bytes(b"data")
    (artifacts / "alias.bin").symlink_to("real.bin")
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB_ID, "alias.bin")


def test_a_directory_is_not_served(files, artifacts):
    (artifacts / "dir.bin").mkdir()
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB_ID, "dir.bin")


def test_a_fifo_is_not_served_and_does_not_hang(files, artifacts):
    os.mkfifo(artifacts / "pipe.bin")
    outcome = finishes_quickly(lambda: files.open_artifact(JOB_ID, "pipe.bin"),
                               artifacts / "pipe.bin")
    assert len(outcome) == 1 and isinstance(outcome[0], ArtifactNotFound)


def test_an_artifacts_dir_that_is_a_symlink_lists_and_serves_nothing(files, root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "image.bin").write_bytes(b"not an artifact of this job")
    (root / str(JOB_ID)).mkdir()
    (root / str(JOB_ID) / "artifacts").symlink_to(elsewhere)

    assert files.list_artifacts(JOB_ID) == []
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB_ID, "image.bin")


def test_a_job_dir_that_is_a_symlink_serves_nothing(files, root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "artifacts").mkdir(parents=True)
    (elsewhere / "artifacts" / "image.bin").write_bytes(b"x")
    (root / str(JOB_ID)).symlink_to(elsewhere)

    assert files.list_artifacts(JOB_ID) == []
    with pytest.raises(ArtifactNotFound):
        files.open_artifact(JOB_ID, "image.bin")


def test_runner_pid_is_read_from_the_runners_file_and_garbage_is_ignored(root, files):
    files.create(make_job(), ["*.bin"])
    assert files.read_runner_pid(JOB_ID) is None
    (root / str(JOB_ID) / "runner.pid").write_text("4242 4243\n")
    assert files.read_runner_pid(JOB_ID) == 4242
    (root / str(JOB_ID) / "runner.pid").write_text("-1 x\n")
    assert files.read_runner_pid(JOB_ID) is None
    (root / str(JOB_ID) / "runner.pid").unlink()
    os.symlink("/proc/self/stat", root / str(JOB_ID) / "runner.pid")
    assert files.read_runner_pid(JOB_ID) is None
