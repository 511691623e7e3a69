"""JobDirectory.read_task_logs: the tails of the failed-task logs the runner saved, safely."""

from __future__ import annotations

import os
import pwd
from datetime import UTC, datetime

import pytest

from autobuild.adapters import job_files
from autobuild.domain.jobs import Job

JOB_ID = 12
OWNER = pwd.getpwuid(os.getuid()).pw_name


def make_job(job_id: object = JOB_ID) -> Job:
    return Job(id=job_id, owner=OWNER, repo_url="https://h.example/p.git", ref="main",  # type: ignore[arg-type]
               machine="m", target="t", created_at=datetime(2026, 1, 1, tzinfo=UTC))


JOB = make_job()


@pytest.fixture(autouse=True)
def plain_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def saved(root):
    path = root / OWNER / str(JOB_ID) / "logs" / "failed-tasks"
    path.mkdir(parents=True)
    return path


def test_no_saved_logs_reads_as_none(files, root):
    assert files.read_task_logs(JOB) == {}
    (root / OWNER / str(JOB_ID) / "logs").mkdir(parents=True)
    assert files.read_task_logs(JOB) == {}


def test_small_logs_are_read_whole(files, saved):
    (saved / "busybox_1.36.1_log.do_compile.1").write_text("DEBUG: start\nmake: Error 1\n")
    (saved / "quilt-native_0.67_log.do_configure.2").write_bytes(b"bad \xff byte\n")

    assert files.read_task_logs(JOB) == {
        "busybox_1.36.1_log.do_compile.1": "DEBUG: start\nmake: Error 1\n",
        "quilt-native_0.67_log.do_configure.2": "bad \ufffd byte\n",
    }


def test_a_big_log_gives_its_last_8_kib_from_a_line_start(files, saved):
    lines = [f"line {n:05d} " + "x" * 90 + "\n" for n in range(1000)]
    (saved / "big.log").write_text("".join(lines))

    tail = files.read_task_logs(JOB)["big.log"]

    assert len(tail.encode()) <= job_files.MAX_TASK_LOG_TAIL
    assert tail.endswith(lines[-1])
    assert tail.startswith("line ")  # the line cut by the 8 KiB limit is dropped
    assert tail == "".join(lines[-len(tail.splitlines()):])


def test_links_fifos_dirs_and_hidden_names_are_skipped(files, saved, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("not for the web\n")
    (saved / "link.log").symlink_to(secret)
    os.mkfifo(saved / "fifo.log")
    (saved / "dir.log").mkdir()
    (saved / ".hidden.log").write_text("temp file of the runner\n")
    (saved / "real.log").write_text("ok\n")

    assert files.read_task_logs(JOB) == {"real.log": "ok\n"}


def test_a_failed_tasks_dir_that_is_a_link_reads_as_none(files, root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.log").write_text("x\n")
    (root / OWNER / str(JOB_ID) / "logs").mkdir(parents=True)
    (root / OWNER / str(JOB_ID) / "logs" / "failed-tasks").symlink_to(elsewhere)

    assert files.read_task_logs(JOB) == {}


def test_the_number_of_logs_read_is_capped(files, saved):
    for n in range(job_files.MAX_TASK_LOGS_SHOWN + 5):
        (saved / f"log.do_x.{n:03d}").write_text(f"{n}\n")

    logs = files.read_task_logs(JOB)

    assert len(logs) == job_files.MAX_TASK_LOGS_SHOWN
    assert min(logs) == "log.do_x.000"


@pytest.mark.parametrize("bad_id", [0, -1, True, "12"])
def test_an_invalid_job_id_reads_as_none(files, saved, bad_id):
    (saved / "x.log").write_text("x\n")
    assert files.read_task_logs(make_job(bad_id)) == {}
