"""Why a build failed, read from its log: the failed bitbake tasks and a line for git errors.

bitbake names a failed task several times, and each time differently:

    ERROR: busybox-1.36.1-r0 do_compile: oe_runmake failed             (PF, task, message)
    ERROR: Logfile of failure stored in: /b/tmp/work/core2-64-poky-linux/busybox/1.36.1-r0/temp/log.do_compile.2245
    ERROR: Task (/poky/meta/recipes-core/busybox/busybox_1.36.1.bb:do_compile) failed with exit code '1'
    Summary: 1 task failed:
      /poky/meta/recipes-core/busybox/busybox_1.36.1.bb:do_compile    (the task id, maybe with
        log: /b/tmp/work/.../temp/log.do_compile.2245                  mc:/virtual: prefixes)

``summarize`` joins these into one entry per failed task. The runner copies every task log
named in a "Logfile of failure" line into ``logs/failed-tasks/<task_log_name(path)>``; the
tails of those copies are attached to their task here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .layout import STEP_CHECKOUT, STEP_CLONING, STEP_SUBMODULES, step_line
from .printable import printable
from .progress import task_label
from .text import LINE_BREAKS

MAX_TASKS = 20
MAX_MESSAGES = 3
MAX_MESSAGE_LENGTH = 500

TOKEN_REFUSED = "The git server refused the token: save a valid GitLab token in Settings"
NO_TOKEN = ("No GitLab token is saved, and the git server asked for one: save your GitLab token "
            "in Settings")
REPO_NOT_FOUND = ("The repository was not found, or your GitLab token may not read it: check the "
                  "URL and the token's access to the project")
HOST_UNKNOWN = "The git server's name {host} could not be resolved: check the repository URL"
UNREACHABLE = ("The git server could not be reached: check the repository URL, and that the "
               "build machine can connect to it")
TLS_UNTRUSTED = ("The git server's TLS certificate is not trusted on the build machine: ask the "
                 "admin to install the CA certificate that signed it")
OTHER_HOST = ("The GitLab token was not sent to {url}: it goes only to the repository's own host "
              "(is a submodule on another server?)")
UNKNOWN_REF = "The branch, tag or commit '{ref}' was not found in the repository"
DISK_FULL = ("The build server ran out of disk space during this build: ask the admin to free "
             "some (old builds, the shared caches), then rebuild")
# A write that failed for lack of space (any tool, any language), or bitbake's disk monitor.
_DISK_FULL_MARKERS = ("No space left on device", "[Errno 28]",
                      "disk space monitor action is \"STOPTASKS\"",
                      "disk space monitor action is \"HALT\"",
                      "disk space monitor action is \"ABORT\"")


@dataclass(frozen=True)
class FailedTask:
    """One failed bitbake task. ``recipe`` is bitbake's PF when the log gives it, else the
    recipe file (with any ``mc:``/``virtual:`` prefix); ``log_tail`` is the end of the
    task's own log as the runner saved it (None when there is no copy)."""

    recipe: str
    task: str
    tid: str | None = None
    logfile: str | None = None
    messages: tuple[str, ...] = ()
    log_name: str | None = None
    log_tail: str | None = None

    @property
    def label(self) -> str:
        return f"{self.recipe} {self.task}"


@dataclass(frozen=True)
class FailureSummary:
    """What the log says about a failure; empty when it says nothing recognisable."""

    tasks: tuple[FailedTask, ...] = ()
    more_tasks: int = 0  # failed tasks beyond the first MAX_TASKS
    logfiles: tuple[str, ...] = ()
    git_problem: str | None = None
    disk_problem: str | None = None  # DISK_FULL when the log shows the disk filled up
    incomplete: str | None = None  # for people: what of the log the summary could not read
    # Set when the summary has read the log only up to byte read_bytes of log_bytes so far
    # (a later view goes on): a page says it in its own units, ``incomplete`` in bytes.
    read_bytes: int | None = None
    log_bytes: int | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.tasks or self.logfiles or self.git_problem or self.disk_problem
                    or self.incomplete)


# What of one log line the summary reads and keeps: a bitbake error line is far shorter, and
# no pattern may spend more than linear time on a line a build made as long as it liked.
MAX_LINE = 4096
_ESCAPES = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b\[[0-9;?]*[A-Za-z]")
_TASK_ERROR = re.compile(r"ERROR: (\S+) (do_[A-Za-z0-9_]+): (.*)$")
# Greedy to the end and rstrip()ped after: a lazy group before \s*$ took seconds on a line of
# blanks (the log is the build's, so an engineer writes it for a colleague to open).
_LOGFILE = re.compile(r"ERROR: Logfile of failure stored in: (\S.*)")
# The task id stops at the next parenthesis: ".+?" ran to the end of the line from every
# "ERROR: Task (", seconds of CPU for one long line of a colleague's log.
_TASK_FAILED = re.compile(
    r"ERROR: Task (?:\d+ )?\(([^()]+?)(?:, (do_[A-Za-z0-9_]+))?\) failed with exit code '-?\d+'")
_SUMMARY = re.compile(r"Summary: \d+ tasks? failed:\s*$")
_SUMMARY_TID = re.compile(r"(?:mc:|virtual:|multiconfig:|/)\S*:do_[A-Za-z0-9_]+")  # the last word
_SUMMARY_LOG = re.compile(r"(?:^|\s)log: (\S.*)")
_LOG_NAME = re.compile(r"log\.(do_[A-Za-z0-9_]+?)(?:\.\d+)?$")
_UNSAFE_NAME_BYTES = re.compile(rb"[^A-Za-z0-9._+-]")

# The runner's git steps; git errors after them come from bitbake's fetcher, not our clone.
_GIT_STEPS = tuple(step_line(s) for s in (STEP_CLONING, STEP_CHECKOUT, STEP_SUBMODULES))
_ANY_STEP = step_line("")


def task_log_name(path: str) -> str:
    """The file name the runner gives its copy of the task log at ``path``.

    ``.../<pn>/<pv>/temp/log.do_x.123`` -> ``<pn>_<pv>_log.do_x.123``, else the base name;
    bytes outside ``A-Za-z0-9._+-`` become ``_``, no leading ``.`` or ``-``, at most 200
    bytes.
    """
    parts = path.split("/")
    if len(parts) >= 4 and parts[-2] == "temp":
        name = f"{parts[-4]}_{parts[-3]}_{parts[-1]}"
    else:
        name = parts[-1]
    safe = _UNSAFE_NAME_BYTES.sub(b"_", name.encode("utf-8", "surrogateescape"))
    return safe.decode("ascii").lstrip(".-")[:200] or "task-log"


def failure_logfile(line: str) -> str | None:
    """The task log a bitbake "Logfile of failure stored in: <path>" line names, or None."""
    if "ERROR: " not in line:
        return None
    match = _LOGFILE.search(_clean(line))
    return match.group(1).rstrip() if match else None


def _summary_tid(line: str) -> str | None:
    """The task id ending a line of bitbake's "Summary: N tasks failed:" block, or None."""
    words = line.rsplit(None, 1)
    return words[-1] if words and _SUMMARY_TID.fullmatch(words[-1]) else None


def _summary_log(line: str) -> str | None:
    """The "log: <path>" a line of that block names, or None."""
    match = _SUMMARY_LOG.search(line)
    return match.group(1).rstrip() if match else None


@dataclass
class _Draft:
    task: str
    tid: str | None = None
    logfile: str | None = None
    pf: str | None = None
    messages: list[str] = field(default_factory=list)

    def expected_pn(self) -> tuple[str, str] | None:
        """(PN bitbake gives this recipe, file stem) from the task id, when there is one."""
        if not self.tid:
            return None
        filename = self.tid.rsplit(":", 1)[0]
        slash = filename.find("/")
        prefix, path = (filename[:slash], filename[slash:]) if slash >= 0 else ("", filename)
        stem = path.rsplit("/", 1)[-1].removesuffix(".bb").split("_", 1)[0]
        variants = prefix.split(":")
        if "virtual" in variants:
            kind = variants[variants.index("virtual") + 1:]
            if kind[:1] == ["native"]:
                return (stem if stem.endswith("-native") else f"{stem}-native"), stem
            if kind[:1] == ["nativesdk"]:
                return (stem if stem.startswith("nativesdk-") else f"nativesdk-{stem}"), stem
            if kind[:1] == ["multilib"] and len(kind) > 1:
                return f"{kind[1]}-{stem}", stem
        return stem, stem

    def recipe(self) -> str:
        if self.pf:
            return self.pf
        if self.logfile:
            where = _logfile_recipe(self.logfile)
            if where:
                return f"{where[0]}-{where[1]}"
        if self.tid:
            return task_label(self.tid).rsplit(":", 1)[0]
        return "?"


def _logfile_task(path: str) -> str | None:
    match = _LOG_NAME.match(path.rsplit("/", 1)[-1])
    return match.group(1) if match else None


def _logfile_recipe(path: str) -> tuple[str, str] | None:
    """(PN, PV[-PR]) from ``.../<pn>/<pv>/temp/log.do_x.N``."""
    parts = path.split("/")
    if len(parts) >= 4 and parts[-2] == "temp" and parts[-4] and parts[-3]:
        return parts[-4], parts[-3]
    return None


def _match_score(draft: _Draft, task: str, pn: str | None) -> int:
    """How well a logfile or an error line of ``task`` in recipe ``pn`` fits ``draft``."""
    if draft.task != task:
        return 0
    expected = draft.expected_pn()
    if pn is None or expected is None:
        return 1
    if pn == expected[0]:
        return 3
    return 2 if pn.startswith(expected[1]) else 1


def _clean(line: str) -> str:
    """The line cut to MAX_LINE characters (what any pattern here reads of it), without
    terminal escape sequences."""
    line = line[:MAX_LINE]
    return _ESCAPES.sub("", line) if "\x1b" in line else line


def summarize(text: str, task_logs: Mapping[str, str] | None = None) -> FailureSummary:
    """The failure summary of a log ``text``; ``task_logs`` maps saved task log names to tails."""
    drafts: list[_Draft] = []
    by_tid: dict[str, _Draft] = {}
    logfiles: list[str] = []
    errors: list[tuple[str, str, str]] = []
    git_lines: list[str] = []
    in_git, in_summary, last_tid = False, False, None

    def add_tid(tid: str) -> _Draft:
        tid = tid.strip()
        if tid not in by_tid:
            draft = _Draft(task=tid.rsplit(":", 1)[-1], tid=tid)
            by_tid[tid] = draft
            drafts.append(draft)
        return by_tid[tid]

    for raw in text.splitlines():
        line = _clean(raw)
        if line.startswith(_ANY_STEP):
            in_git = line.startswith(_GIT_STEPS)
        if in_git:
            git_lines.append(line)
            continue
        if in_summary:
            if tid := _summary_tid(line):
                last_tid = add_tid(tid)
                continue
            log = _summary_log(line)
            if log and last_tid is not None:
                last_tid.logfile = last_tid.logfile or log
                continue
            in_summary, last_tid = False, None
        if "ERROR: " in line:
            if logfile := failure_logfile(line):
                if logfile not in logfiles:
                    logfiles.append(logfile)
            elif match := _TASK_FAILED.search(line):
                tid, old_style_task = match.groups()
                add_tid(f"{tid}:{old_style_task}" if old_style_task else tid)
            elif match := _TASK_ERROR.search(line):
                errors.append((match.group(1), match.group(2), match.group(3).strip()))
        elif "Summary: " in line and _SUMMARY.search(line):
            in_summary = True

    for path in logfiles:
        _place_logfile(drafts, path)
    for pf, task, message in errors:
        _place_error(drafts, pf, task, message)

    logs = task_logs or {}
    tasks = []
    for draft in drafts[:MAX_TASKS]:
        name = task_log_name(draft.logfile) if draft.logfile else None
        # What the log named is shown to colleagues (page, API, autobuild-cli): printable.
        tasks.append(FailedTask(
            recipe=printable(draft.recipe()), task=printable(draft.task),
            tid=draft.tid and printable(draft.tid),
            logfile=draft.logfile and printable(draft.logfile),
            messages=tuple(printable(message) for message in draft.messages),
            log_name=name if name in logs else None, log_tail=logs.get(name) if name else None,
        ))
    git_problem = explain_git(git_lines)
    return FailureSummary(tasks=tuple(tasks), more_tasks=max(0, len(drafts) - MAX_TASKS),
                          logfiles=tuple(logfiles),
                          git_problem=git_problem and printable(git_problem),
                          disk_problem=DISK_FULL if disk_full(text) else None)


def disk_full(text: str) -> bool:
    """True when the log says a write failed for lack of disk space."""
    return any(marker in text for marker in _DISK_FULL_MARKERS)


def _place_logfile(drafts: list[_Draft], path: str) -> None:
    if any(d.logfile == path for d in drafts):
        return
    task = _logfile_task(path)
    where = _logfile_recipe(path)
    if task is not None:
        candidates = [d for d in drafts if d.logfile is None]
        best = max(candidates, key=lambda d: _match_score(d, task, where and where[0]),
                   default=None)
        if best is not None and _match_score(best, task, where and where[0]) > 0:
            best.logfile = path
            return
    drafts.append(_Draft(task=task or "?", logfile=path))


def _place_error(drafts: list[_Draft], pf: str, task: str, message: str) -> None:
    def fits(draft: _Draft) -> int:
        if draft.task != task:
            return 0
        if draft.pf is not None:
            return 4 if draft.pf == pf else 0
        where = _logfile_recipe(draft.logfile) if draft.logfile else None
        if where is not None:
            return 4 if pf.startswith(f"{where[0]}-{where[1]}") or pf == where[0] else 0
        expected = draft.expected_pn()
        if expected is not None:
            return 3 if pf.startswith(f"{expected[0]}-") else 0
        return 1

    best = max(drafts, key=fits, default=None)
    if best is None or fits(best) == 0:
        best = _Draft(task=task)
        drafts.append(best)
    best.pf = best.pf or pf
    message = message[:MAX_MESSAGE_LENGTH]
    if message and message not in best.messages and len(best.messages) < MAX_MESSAGES:
        best.messages.append(message)


# --- git --------------------------------------------------------------------------------

_UNKNOWN_REF_LINE = re.compile(r"^ERROR: '(.+)' is not a branch, tag or commit of ")
_OTHER_HOST_LINE = re.compile(r"git-askpass: not sending the GitLab token to (\S+?):? ")
_RESOLVE_LINE = re.compile(r"Could not resolve host: (\S+)")
_FATAL_LINE = re.compile(r"^fatal: (.+)$")
_REFUSED = ("Authentication failed", "HTTP Basic: Access denied",
            "The requested URL returned error: 401", "The requested URL returned error: 403")
_NO_CREDENTIALS = ("could not read Username", "could not read Password")
_NO_TOKEN_NOTES = ("git-askpass: no GitLab token on file", "git-askpass: the token file",
                   "NOTE: no GitLab token on file")
_UNREACHABLE = ("Failed to connect to", "Couldn't connect to server", "Connection timed out",
                "Connection refused", "Network is unreachable", "No route to host")
_TLS = ("server certificate verification failed", "SSL certificate problem",
        "certificate verify failed", "SSL_connect", "gnutls_handshake", "TLS connection")


def explain_git(lines: list[str]) -> str | None:
    """One line for the first git problem in the clone/checkout part of the log, or None."""
    text = "\n".join(lines)
    for line in lines:
        if match := _UNKNOWN_REF_LINE.match(line):
            return UNKNOWN_REF.format(ref=match.group(1))
    if "fatal: " not in text and "error: " not in text:
        return None  # git complained about nothing (a NOTE alone is not a failure)
    if match := _OTHER_HOST_LINE.search(text):
        return OTHER_HOST.format(url=match.group(1))
    no_token = any(note in text for note in _NO_TOKEN_NOTES)
    if any(marker in text for marker in _REFUSED):
        return NO_TOKEN if no_token else TOKEN_REFUSED
    if any(marker in text for marker in _NO_CREDENTIALS):
        return NO_TOKEN if no_token else TOKEN_REFUSED
    if match := _RESOLVE_LINE.search(text):
        return HOST_UNKNOWN.format(host=match.group(1).rstrip("'\".,"))
    if any(marker in text for marker in _TLS):
        return TLS_UNTRUSTED
    if any(marker in text for marker in _UNREACHABLE):
        return UNREACHABLE
    if "not found" in text and "repository '" in text:
        return REPO_NOT_FOUND
    for line in lines:
        if match := _FATAL_LINE.match(line):
            return f"git failed: {match.group(1)[:MAX_MESSAGE_LENGTH]}"
    return None


# --- the lines a summary needs, kept as the log is written --------------------------------

MAX_NOTE_LINES = 20_000
MAX_NOTE_CHARS = 2 * 1024 * 1024
MAX_PENDING = 64 * 1024  # a line without an end is cut here (as the progress tracker cuts it)
_LINE_BREAKS = tuple(LINE_BREAKS)


class FailureNotes:
    """The lines of a log ``summarize`` reads, kept as the log is fed in pieces of any size.

    ``summarize(notes.text())`` equals ``summarize(whole log)``: a dropped line is one that
    changes nothing in summarize (not a step header, not in a git step, not in a "Summary:"
    block, no "ERROR: ", no disk-full marker), and the line that ends a "Summary:" block is
    kept so the block ends where it did. Lines are split as ``str.splitlines`` splits them.
    Bounded: past MAX_NOTE_LINES lines or MAX_NOTE_CHARS characters, further notable lines are
    only counted (``dropped``), so a summary can say it is incomplete instead of being cut
    silently.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.pending = ""
        self.in_git = False
        self.in_summary = False
        self.dropped = 0
        self._chars = 0

    def feed(self, text: str) -> list[str]:
        """Add log text; returns the lines it completed (for other readers of the same lines)."""
        if not text:
            return []
        pieces = (self.pending + text).splitlines(keepends=True)
        last = pieces[-1]
        # A line is complete at its line break; a final "\r" may still become "\r\n".
        if last.endswith("\r") or not last.endswith(_LINE_BREAKS):
            pieces.pop()
            self.pending = last[:MAX_PENDING]
        else:
            self.pending = ""
        lines = [piece[:-2] if piece.endswith("\r\n") else piece[:-1] for piece in pieces]
        for line in lines:
            self._line(line)
        return lines

    def state(self) -> dict[str, Any]:
        """Everything kept, as JSON values; ``restore`` makes the notes again."""
        return {"lines": self.lines, "pending": self.pending, "in_git": self.in_git,
                "in_summary": self.in_summary, "dropped": self.dropped}

    @classmethod
    def restore(cls, state: Mapping[str, Any]) -> FailureNotes:
        """The notes ``state()`` described; ValueError for anything else (any source)."""
        notes = cls()
        try:
            lines, pending = state["lines"], state["pending"]
            flags = state["in_git"], state["in_summary"]
            dropped = state["dropped"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not failure notes: {exc}") from None
        if not (isinstance(lines, list) and len(lines) <= MAX_NOTE_LINES
                and all(isinstance(line, str) for line in lines)
                and sum(len(line) + 1 for line in lines) <= MAX_NOTE_CHARS):
            raise ValueError("not failure notes: lines")
        if not (isinstance(pending, str) and len(pending) <= MAX_PENDING
                and all(isinstance(flag, bool) for flag in flags)
                and type(dropped) is int and dropped >= 0):
            raise ValueError("not failure notes")
        notes.lines, notes.pending = list(lines), pending
        notes.in_git, notes.in_summary = flags
        notes.dropped = dropped
        notes._chars = sum(len(line) + 1 for line in lines)
        return notes

    def text(self) -> str:
        """The kept lines, and a line still without its end (as summarize would read it)."""
        return "\n".join([*self.lines, self.pending] if self.pending else self.lines)

    def _line(self, raw: str) -> None:
        raw = raw[:MAX_LINE]
        line = _clean(raw)
        keep = False
        if line.startswith(_ANY_STEP):
            self.in_git = line.startswith(_GIT_STEPS)
            keep = True
        if self.in_git:
            keep = True
        else:
            if self.in_summary:
                if _summary_tid(line) or _summary_log(line):
                    self._keep(raw)
                    return
                self.in_summary = False
                keep = True  # the line that ends the block
            if "ERROR: " in line:
                keep = True
            elif "Summary: " in line and _SUMMARY.search(line):
                self.in_summary = True
                keep = True
        if keep or any(marker in raw for marker in _DISK_FULL_MARKERS):
            self._keep(raw)

    def _keep(self, raw: str) -> None:
        if len(self.lines) >= MAX_NOTE_LINES or self._chars + len(raw) > MAX_NOTE_CHARS:
            self.dropped += 1
            return
        self.lines.append(raw)
        self._chars += len(raw) + 1
