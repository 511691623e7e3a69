"""Keep where the build's time went: BitBake's buildstats, condensed into one file of the job.

BitBake writes ``<build dir>/tmp/buildstats/<BUILDNAME>/`` (build_stats and ``<PF>/<task>``
files, see domain/buildstats.py): thousands of small files for a real image (~10k, 10-20 MB
for core-image-sato from scratch). Copying them would fill the job directory with files nobody
opens, so the runner reads them where they are, before the workspace is removed, and writes
layout.TIMING: one line a task (0.8-1.1 MB for 10k tasks). It reads the way outputs.py does:
every directory opened relative to its parent's descriptor without following links, only
regular files, each at most MAX_TASK_FILE_BYTES, at most MAX_TASKS tasks in all.
Measured here: 10k task files of the real format (8.5 MB) condense in 0.3 s to 0.75 MB, which
the service parses and ranks (critical path included) in under 0.1 s.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from autobuild.domain.buildstats import (
    MAX_BUILD_STATS_BYTES, MAX_RECIPES, MAX_TASK_FILE_BYTES, MAX_TASKS, condense_build,
    is_recipe_dir, is_task_name,
)
from autobuild.domain.layout import BUILDSTATS_PATH, BUILDSTATS_SUMMARY, TIMING

from .fsops import Refused, listdir, open_dir, open_regular, read_fd, write_atomically

Say = Callable[[str], None]
MAX_RUNS = 16  # bitbake runs (BUILDNAME directories) looked at; one per build here


def _open_path(dir_fd: int, parts: tuple[str, ...]) -> int | None:
    """A descriptor of ``dir_fd/<parts...>``, each a real directory (no link), or None."""
    fd = os.dup(dir_fd)
    for part in parts:
        try:
            child = open_dir(fd, part)
        except (OSError, ValueError):
            child = None
        os.close(fd)
        if child is None:
            return None
        fd = child
    return fd


def _read_small(dir_fd: int, name: str, limit: int) -> str | None:
    """The text of regular file ``name`` if it has at most ``limit`` bytes, else None."""
    try:
        fd = open_regular(dir_fd, name, max_size=limit)
    except (Refused, OSError):
        return None
    if fd is None:
        return None
    try:
        data = read_fd(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None if len(data) > limit else data.decode("utf-8", "replace")


def _task_files(run_fd: int) -> Iterator[tuple[str, str, str]]:
    """(PF, task, text) of the task files of one bitbake run, at most MAX_TASKS."""
    count = 0
    for pf in sorted(listdir(run_fd))[:MAX_RECIPES]:
        if not is_recipe_dir(pf):
            continue
        recipe_fd = _open_path(run_fd, (pf,))
        if recipe_fd is None:
            continue
        try:
            for task in sorted(listdir(recipe_fd)):
                if not is_task_name(task):
                    continue
                text = _read_small(recipe_fd, task, MAX_TASK_FILE_BYTES)
                if text is None:
                    continue
                yield pf, task, text
                count += 1
                if count >= MAX_TASKS:
                    return
        finally:
            os.close(recipe_fd)


def keep_timing(work_fd: int, build_rel: str, job_fd: int, say: Say) -> bool:
    """Condense the buildstats of the latest bitbake run below ``work/<build_rel>`` into the
    job's layout.TIMING; False (and a note in the log) when there are none."""
    top = _open_path(work_fd, (*build_rel.split("/"), *BUILDSTATS_PATH))
    if top is None:
        say("NOTE: no buildstats to keep (the build wrote no tmp/buildstats)")
        return False
    try:
        # BUILDNAME is a DATETIME by default (20260101123456): the greatest is the last run.
        runs = sorted((n for n in listdir(top) if is_recipe_dir(n)), reverse=True)[:MAX_RUNS]
        for name in runs:
            run_fd = _open_path(top, (name,))
            if run_fd is None:
                continue
            try:
                summary = _read_small(run_fd, BUILDSTATS_SUMMARY, MAX_BUILD_STATS_BYTES)
                text = condense_build(summary, _task_files(run_fd))
            finally:
                os.close(run_fd)
            tasks = text.count("\ntask\t")
            if not tasks:
                continue
            write_atomically(job_fd, TIMING, text.encode())
            say(f"Kept the timing of {tasks} tasks from buildstats ({TIMING}, "
                f"{len(text.encode())} bytes)")
            return True
    except OSError as exc:
        say(f"NOTE: could not keep the buildstats: {exc.strerror or exc}")
        return False
    finally:
        os.close(top)
    say("NOTE: no buildstats to keep (no task recorded in tmp/buildstats)")
    return False
