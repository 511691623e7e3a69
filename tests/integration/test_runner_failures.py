"""The runner keeps the logs of failed bitbake tasks in the job directory, safely."""

from __future__ import annotations

import re
import shutil
import stat
from pathlib import Path

from autobuild.domain.failures import summarize, task_log_name

from .conftest import TARGET

LOGFILE = re.compile(r"ERROR: Logfile of failure stored in: (\S+)")


def saved(job_dir: Path) -> dict[str, Path]:
    directory = job_dir / "logs" / "failed-tasks"
    return {p.name: p for p in directory.iterdir()} if directory.is_dir() else {}


def test_the_failed_tasks_log_survives_workspace_cleanup_and_feeds_the_summary(runner, git):
    build = runner.build(1, git.url, "main", target="fail-image")

    assert build.status["status"] == "FAILED"
    logfile = Path(LOGFILE.search(build.log).group(1))
    name = task_log_name(str(logfile))
    copies = saved(build.job_dir)
    assert list(copies) == [name]
    mode = copies[name].lstat().st_mode
    assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o640
    assert copies[name].read_bytes() == logfile.read_bytes()
    assert f"saved the log of the failed task as logs/failed-tasks/{name}\n" in build.log
    assert build.log.rstrip("\n").splitlines()[-1] == "==> Build finished: FAILED (exit 1)"

    shutil.rmtree(build.job_dir / "work")  # what workspace cleanup does
    summary = summarize(build.log, {p.name: p.read_text() for p in copies.values()})

    (task,) = summary.tasks
    assert task.label == "fail-image-1.0-r0 do_compile"
    assert task.messages == ("oe_runmake failed",)
    assert task.log_name == name
    assert "make: *** [Makefile:12: all] Error 1" in task.log_tail


def test_logs_outside_the_workspace_or_linked_out_of_it_are_not_copied(runner, git):
    build = runner.build(1, git.url, "main", target="fail-links-image")

    named = LOGFILE.findall(build.log)
    real_log, link_out, outside, link_in = named
    assert Path(link_out).is_symlink() and Path(link_in).is_symlink()
    copies = saved(build.job_dir)
    assert set(copies) == {task_log_name(real_log), task_log_name(link_in)}
    assert copies[task_log_name(link_in)].read_bytes() == Path(real_log).read_bytes()
    assert not copies[task_log_name(link_in)].is_symlink()
    passwd = Path("/etc/passwd").read_bytes()
    assert all(p.read_bytes() != passwd for p in copies.values())
    for path in (link_out, outside):
        assert (f"not saving the task log {path}: it is not inside the build's workspace"
                in build.log)


def test_a_successful_build_saves_no_task_logs(runner, git):
    build = runner.build(1, git.url, "main", target=TARGET)

    assert build.status["status"] == "SUCCESS"
    assert not (build.job_dir / "logs" / "failed-tasks").exists()
