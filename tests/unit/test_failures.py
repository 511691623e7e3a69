"""The failure summary: failed bitbake tasks, their saved logs, and one line for git errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autobuild.domain import failures
from autobuild.domain.failures import FailedTask, summarize, task_log_name

URL = "https://gitlab.example.com/bsp/poky.git"
SRC = "/srv/autobuild/jobs/7/work/src"
TMP = f"{SRC}/build/tmp/work"
BUSYBOX_BB = f"{SRC}/meta/recipes-core/busybox/busybox_1.36.1.bb"
QUILT_BB = f"{SRC}/meta/recipes-devtools/quilt/quilt_0.67.bb"
BUSYBOX_LOG = f"{TMP}/core2-64-poky-linux/busybox/1.36.1/temp/log.do_compile.2245"
QUILT_LOG = f"{TMP}/x86_64-linux/quilt-native/0.67/temp/log.do_configure.2301"

START = f"""\
==> Job 7 for alice on yocto1 at 2026-01-01T12:00:00Z
    repository {URL}, ref main, MACHINE qemux86-64, target core-image-minimal
==> Cloning {URL}
Cloning into '{SRC}'...
==> Checking out main
HEAD is now at 0f14567 poky 5.0
==> Setting up the build environment (oe-init-build-env)
==> bitbake core-image-minimal (MACHINE=qemux86-64)
Loading cache...done.
NOTE: Executing Tasks
"""

# What the stand-in bitbake prints for its fail-image target (tests/fixtures/poky-standin).
STANDIN = START + f"""\
NOTE: Running task 5 of 12 ({SRC}/meta/recipes-core/images/fail-image.bb:do_compile)
NOTE: recipe fail-image-1.0-r0: task do_compile: Started
ERROR: fail-image-1.0-r0 do_compile: oe_runmake failed
ERROR: Logfile of failure stored in: {TMP}/qemux86-64-poky-linux/fail-image/1.0-r0/temp/log.do_compile.18400
Log data follows:
| DEBUG: Executing shell function do_compile
| make: *** [Makefile:12: all] Error 1
| ERROR: oe_runmake failed
ERROR: Task ({SRC}/meta/recipes-core/images/fail-image.bb:do_compile) failed with exit code '1'
NOTE: recipe fail-image-1.0-r0: task do_compile: Failed
NOTE: Tasks Summary: Attempted 5 tasks of which 0 didn't need to be rerun and 1 failed.

Summary: 1 task failed:
  {SRC}/meta/recipes-core/images/fail-image.bb:do_compile
Summary: There were 3 ERROR messages, returning a non-zero exit code.
ERROR: bitbake fail-image failed (exit 1)
==> Build finished: FAILED (exit 1)
"""

# A newer bitbake (-k): two recipes fail in parallel, output interleaved, the summary lists
# each task with its log.
TWO_FAILURES = START + f"""\
NOTE: Running task 1520 of 4471 ({BUSYBOX_BB}:do_compile)
NOTE: Running task 1521 of 4471 (virtual:native:{QUILT_BB}:do_configure)
NOTE: recipe busybox-1.36.1-r0: task do_compile: Started
NOTE: recipe quilt-native-0.67-r0: task do_configure: Started
ERROR: quilt-native-0.67-r0 do_configure: configure failed
ERROR: busybox-1.36.1-r0 do_compile: oe_runmake failed
ERROR: busybox-1.36.1-r0 do_compile: ExecutionError('{TMP}/core2-64-poky-linux/busybox/1.36.1/temp/run.do_compile.2245', 1, None, None)
ERROR: Logfile of failure stored in: {BUSYBOX_LOG}
Log data follows:
| make[1]: *** [scripts/Makefile.build:197: applets/applets.o] Error 1
ERROR: Logfile of failure stored in: {QUILT_LOG}
Log data follows:
| configure: error: cannot find a working diff
ERROR: Task ({BUSYBOX_BB}:do_compile) failed with exit code '1'
ERROR: Task (virtual:native:{QUILT_BB}:do_configure) failed with exit code '1'
NOTE: Tasks Summary: Attempted 1600 tasks of which 1540 didn't need to be rerun and 2 failed.

Summary: 2 tasks failed:
  virtual:native:{QUILT_BB}:do_configure
    log: {QUILT_LOG}
  {BUSYBOX_BB}:do_compile
    log: {BUSYBOX_LOG}
Summary: There were 5 ERROR messages, returning a non-zero exit code.
==> Build finished: FAILED (exit 1)
"""


def test_standin_failure_names_the_task_its_message_and_its_log():
    summary = summarize(STANDIN)

    assert summary.git_problem is None
    assert summary.tasks == (FailedTask(
        recipe="fail-image-1.0-r0",
        task="do_compile",
        tid=f"{SRC}/meta/recipes-core/images/fail-image.bb:do_compile",
        logfile=f"{TMP}/qemux86-64-poky-linux/fail-image/1.0-r0/temp/log.do_compile.18400",
        messages=("oe_runmake failed",),
    ),)
    assert summary.tasks[0].label == "fail-image-1.0-r0 do_compile"
    assert summary.logfiles == (summary.tasks[0].logfile,)


def test_two_interleaved_failures_keep_each_log_and_message_with_its_task():
    summary = summarize(TWO_FAILURES)

    by_task = {t.task: t for t in summary.tasks}
    assert [t.task for t in summary.tasks] == ["do_compile", "do_configure"]  # as reported
    quilt, busybox = by_task["do_configure"], by_task["do_compile"]
    assert quilt.recipe == "quilt-native-0.67-r0"
    assert quilt.tid == f"virtual:native:{QUILT_BB}:do_configure"
    assert quilt.logfile == QUILT_LOG
    assert quilt.messages == ("configure failed",)
    assert busybox.recipe == "busybox-1.36.1-r0"
    assert busybox.logfile == BUSYBOX_LOG
    assert busybox.messages[0] == "oe_runmake failed"
    assert len(busybox.messages) == 2
    assert summary.logfiles == (BUSYBOX_LOG, QUILT_LOG)


def test_logs_are_matched_by_recipe_even_without_the_summary_log_lines():
    text = "\n".join(line for line in TWO_FAILURES.splitlines() if "    log: " not in line)
    by_task = {t.task: t for t in summarize(text).tasks}
    assert by_task["do_configure"].logfile == QUILT_LOG
    assert by_task["do_compile"].logfile == BUSYBOX_LOG


def test_multiconfig_and_wrapper_prefixes():
    kas = "2026-01-01 12:00:00 - INFO     - "
    text = START + "".join(kas + line + "\n" for line in [
        "ERROR: busybox-1.36.1-r0 do_compile: oe_runmake failed",
        f"ERROR: Logfile of failure stored in: {BUSYBOX_LOG}",
        f"ERROR: Task (mc:qemuarm64:{BUSYBOX_BB}:do_compile) failed with exit code '1'",
        "Summary: 1 task failed:",
        f"  mc:qemuarm64:{BUSYBOX_BB}:do_compile",
        "Summary: There was 1 ERROR message, returning a non-zero exit code.",
    ])
    (task,) = summarize(text).tasks
    assert task.tid == f"mc:qemuarm64:{BUSYBOX_BB}:do_compile"
    assert task.recipe == "busybox-1.36.1-r0"
    assert task.logfile == BUSYBOX_LOG
    assert task.messages == ("oe_runmake failed",)


def test_old_bitbake_task_failed_lines():
    text = START + (f"ERROR: Task 1520 ({BUSYBOX_BB}, do_compile) failed with exit code '1'\n"
                    f"ERROR: Logfile of failure stored in: {BUSYBOX_LOG}\n")
    (task,) = summarize(text).tasks
    assert task.tid == f"{BUSYBOX_BB}:do_compile"
    assert task.logfile == BUSYBOX_LOG


def test_a_log_cut_before_the_summary_still_names_the_task():
    text = ("ERROR: linux-yocto-6.6.21+git-r0 do_compile_kernelmodules: oe_runmake failed\n"
            "ERROR: Logfile of failure stored in: /b/tmp/work/qemux86_64-poky-linux/linux-yocto/"
            "6.6.21+git/temp/log.do_compile_kernelmodules.991\n")
    (task,) = summarize(text).tasks
    assert task.label == "linux-yocto-6.6.21+git-r0 do_compile_kernelmodules"
    assert task.logfile.endswith("log.do_compile_kernelmodules.991")


def test_saved_task_logs_are_attached_by_the_runners_name():
    name = task_log_name(BUSYBOX_LOG)
    assert name == "busybox_1.36.1_log.do_compile.2245"

    summary = summarize(TWO_FAILURES, {name: "make: *** Error 1\n", "stray.log": "x"})

    by_task = {t.task: t for t in summary.tasks}
    assert by_task["do_compile"].log_name == name
    assert by_task["do_compile"].log_tail == "make: *** Error 1\n"
    assert by_task["do_configure"].log_name is None  # the runner did not save it
    assert by_task["do_configure"].log_tail is None


@pytest.mark.parametrize(("path", "name"), [
    ("/b/tmp/work/core2-64-poky-linux/busybox/1.36.1-r0/temp/log.do_compile.1",
     "busybox_1.36.1-r0_log.do_compile.1"),
    ("/b/log.do_fetch.3", "log.do_fetch.3"),
    ("/b/x y/1.0/temp/log.do_x", "x_y_1.0_log.do_x"),
    ("/b/.hidden", "hidden"),
    ("/b/ünï/1/temp/-log", "__n___1_-log"),  # per byte, as the runner's C locale sees it
    ("/", "task-log"),
])
def test_task_log_name_is_a_plain_file_name(path, name):
    assert task_log_name(path) == name


def test_many_failures_are_capped():
    text = "".join(f"ERROR: Task (/l/r{n}.bb:do_compile) failed with exit code '1'\n"
                   for n in range(failures.MAX_TASKS + 5))
    summary = summarize(text)
    assert len(summary.tasks) == failures.MAX_TASKS
    assert summary.more_tasks == 5


def test_a_successful_build_has_nothing_to_say():
    text = START + "NOTE: Tasks Summary: Attempted 12 tasks ... all succeeded.\n" \
                   "==> Collecting artifacts\n==> Build finished: SUCCESS (exit 0)\n"
    assert summarize(text).is_empty


# --- git: the runner's clone and checkout steps, as git 2.39 prints them ---------------------

def clone_failure(*git_lines: str, token_note: bool = False) -> str:
    note = ("NOTE: no GitLab token on file (/home/alice/.autobuild/gitlab_token): cloning "
            "without one works only for public repositories. Save your token in Settings.\n")
    return (f"==> Cloning {URL}\n" + (note if token_note else "")
            + f"Cloning into '{SRC}'...\n" + "".join(f"{line}\n" for line in git_lines)
            + f"ERROR: could not clone {URL}: check the URL, and that the GitLab token saved "
              "in Settings can read this repository\n==> Build finished: FAILED (exit 128)\n")


@pytest.mark.parametrize(("text", "explanation"), [
    (clone_failure("remote: HTTP Basic: Access denied",
                   f"fatal: Authentication failed for '{URL}/'"),
     "The git server refused the token: save a valid GitLab token in Settings"),
    (clone_failure(f"fatal: unable to access '{URL}/': The requested URL returned error: 403"),
     failures.TOKEN_REFUSED),
    (clone_failure("git-askpass: no GitLab token on file (/home/alice/.autobuild/gitlab_token)",
                   "error: unable to read askpass response from '/opt/autobuild/runner/git-askpass.sh'",
                   "fatal: could not read Username for 'https://gitlab.example.com': terminal "
                   "prompts disabled", token_note=True),
     failures.NO_TOKEN),
    (clone_failure(f"fatal: repository '{URL}/' not found"), failures.REPO_NOT_FOUND),
    (clone_failure(f"fatal: unable to access '{URL}/': Could not resolve host: "
                   "gitlab.example.com"),
     "The git server's name gitlab.example.com could not be resolved: check the repository URL"),
    (clone_failure(f"fatal: unable to access '{URL}/': Failed to connect to gitlab.example.com "
                   "port 443 after 3 ms: Couldn't connect to server"),
     failures.UNREACHABLE),
    (clone_failure(f"fatal: unable to access '{URL}/': server certificate verification failed. "
                   "CAfile: none CRLfile: none"),
     failures.TLS_UNTRUSTED),
    (clone_failure(f"fatal: unable to access '{URL}/': SSL certificate problem: unable to get "
                   "local issuer certificate"),
     failures.TLS_UNTRUSTED),
    (clone_failure("fatal: the remote end hung up unexpectedly"),
     "git failed: the remote end hung up unexpectedly"),
    (f"==> Cloning {URL}\nCloning into '{SRC}'...\n==> Checking out no-such-branch\n"
     f"ERROR: 'no-such-branch' is not a branch, tag or commit of {URL}\n"
     "==> Build finished: FAILED (exit 1)\n",
     "The branch, tag or commit 'no-such-branch' was not found in the repository"),
    (f"==> Cloning {URL}\n==> Checking out main\n==> Updating submodules\n"
     "Cloning into '/srv/autobuild/jobs/7/work/src/meta-extra'...\n"
     "git-askpass: not sending the GitLab token to https://other.example.com: the build clones "
     "from https://gitlab.example.com\n"
     "fatal: could not read Username for 'https://other.example.com': terminal prompts disabled\n",
     "The GitLab token was not sent to https://other.example.com: it goes only to the "
     "repository's own host (is a submodule on another server?)"),
])
def test_git_errors_get_one_line(text, explanation):
    summary = summarize(text)
    assert summary.git_problem == explanation
    assert summary.tasks == ()


def test_a_missing_token_on_a_public_repository_is_not_a_problem():
    text = (f"==> Cloning {URL}\nNOTE: no GitLab token on file (/home/a/.autobuild/gitlab_token)"
            f": cloning without one works only for public repositories.\n"
            f"Cloning into '{SRC}'...\n==> Checking out main\n"
            "==> bitbake core-image-minimal (MACHINE=qemux86-64)\n"
            "==> Build finished: FAILED (exit 1)\n")
    assert summarize(text).git_problem is None


def test_git_errors_of_bitbakes_fetcher_are_not_blamed_on_the_token():
    text = START + ("WARNING: Failed to fetch URL git://git.example.com/x.git\n"
                    "fatal: Authentication failed for 'https://git.example.com/x.git/'\n"
                    "ERROR: x-1.0-r0 do_fetch: Bitbake Fetcher Error: FetchError('Unable to fetch "
                    "URL from any source.', 'git://git.example.com/x.git')\n")
    summary = summarize(text)
    assert summary.git_problem is None
    assert [t.label for t in summary.tasks] == ["x-1.0-r0 do_fetch"]


def test_terminal_escapes_around_summary_paths_are_dropped():
    link = f"\x1b]8;;file://{BUSYBOX_LOG}\x1b\\{BUSYBOX_LOG}\x1b]8;;\x1b\\"
    text = f"Summary: 1 task failed:\n  {BUSYBOX_BB}:do_compile\n    log: {link}\n"
    (task,) = summarize(text).tasks
    assert task.logfile == BUSYBOX_LOG


@given(st.text(), st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=3))
def test_any_text_gives_a_summary_without_raising(text, logs):
    summary = summarize(text, logs)
    assert len(summary.tasks) <= failures.MAX_TASKS


@given(st.lists(st.sampled_from(STANDIN.splitlines(True) + TWO_FAILURES.splitlines(True)),
                max_size=40))
def test_shuffled_real_lines_never_raise(lines):
    summary = summarize("".join(lines))
    for task in summary.tasks:
        assert task.task.startswith("do_") or task.task == "?"


def test_lines_of_blanks_a_build_writes_cost_no_more_than_reading_them():
    """A log is its build's: a colleague who opens the page must not wait on a pattern that
    takes a long line of blanks two ways (the lazy groups before \\s*$ took seconds per 60k
    blanks; these lines are megabytes)."""
    blanks = " " * 2_000_000
    logfile = f"ERROR: Logfile of failure stored in: x{blanks}y"
    block = f"Summary: 1 task failed:\n  /a.bb:do_compile\n    log: /t/log{blanks}z\n  /{'/ ' * 500_000}\n"

    # A line is read up to MAX_LINE characters (a path is at most 4096): the blanks after
    # the path are all it reads of the rest.
    assert failures.failure_logfile(logfile) == "x"
    [task] = summarize(block).tasks
    assert task.tid == "/a.bb:do_compile" and task.logfile == "/t/log"


def test_a_long_line_of_task_failures_costs_no_more_than_reading_it():
    """"ERROR: Task (" repeated over a megabyte-long line: the pattern looked for the end of
    the task id from each one to the end of the line (minutes per view of the page)."""
    text = "ERROR: Task (" * 200_000 + "\nERROR: Task (/a.bb:do_compile) failed with exit code '1'\n"
    notes = failures.FailureNotes()
    notes.feed(text)

    for summary in (summarize(text), summarize(notes.text())):
        assert [task.tid for task in summary.tasks] == ["/a.bb:do_compile"]
    assert max(len(line) for line in notes.lines) <= failures.MAX_LINE
