"""What the service takes from a build's log to show colleagues (failed recipe and task, git
error, the task running now) carries no control or direction character: domain/printable.py
is the one rule, the failure summary and the progress apply it."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from autobuild.domain.failures import summarize
from autobuild.domain.printable import printable
from autobuild.domain.progress import ProgressTracker

HIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f"
                    r"\ufeff]")
# ESC c resets a terminal, ESC M moves up to overwrite; U+009B is CSI; U+202E reverses text.
EVIL = "\x1bc\x1bM\x9b2J\u202e\u2066"


@given(st.text())
def test_printable_keeps_the_length_and_leaves_nothing_hidden(text):
    shown = printable(text)
    assert len(shown) == len(text) and not HIDDEN.search(shown)
    assert printable(shown) == shown


def test_plain_text_and_tabs_are_kept():
    assert printable("busybox-1.36.1-r0\tdo_compile: ünïcode") == \
        "busybox-1.36.1-r0\tdo_compile: ünïcode"


def test_a_failed_task_named_with_escapes_is_summarized_printable():
    summary = summarize(
        f"ERROR: busybox{EVIL}-1.36.1-r0 do_compile: oe_runmake{EVIL} failed\n"
        f"ERROR: Task (/p/busybox{EVIL}_1.36.1.bb:do_compile) failed with exit code '1'\n"
        f"ERROR: Logfile of failure stored in: /b/busybox/1.36.1{EVIL}/temp/log.do_compile.1\n")
    assert summary.tasks
    for task in summary.tasks:
        for text in (task.recipe, task.task, task.tid, task.logfile, *task.messages):
            assert text is None or not HIDDEN.search(text), repr(text)
    named = [task for task in summary.tasks if task.messages]
    assert [(t.recipe, t.messages) for t in named] == [
        ("busybox?c?M?2J??-1.36.1-r0", ("oe_runmake?c?M?2J?? failed",))]


def test_a_git_error_with_escapes_is_printable():
    summary = summarize(f"==> Cloning https://g/p.git\nfatal: no{EVIL}\n")
    assert summary.git_problem == "git failed: no?c?M?2J??"


def test_the_current_task_is_printable_also_when_restored():
    tracker = ProgressTracker()
    tracker.feed(f"NOTE: Running task 2 of 4 (/p/a{EVIL}.bb:do_compile)\n")
    assert tracker.progress.current == "a?c?M?2J??.bb:do_compile"
    state = tracker.state()
    state["current"] = f"forged{EVIL}"  # the runner's digest is the engineer's to write
    assert ProgressTracker.restore(state).progress.current == "forged?c?M?2J??"
