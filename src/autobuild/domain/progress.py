"""How far a build has come, read from the runner's log as it grows.

The log holds the runner's step headers (``==> Cloning ...``) and bitbake's knotty output
(``Parsing recipes: 45% |###  |``, ``NOTE: Running task 12 of 3000 (...)``), possibly behind a
wrapper's prefix such as kas's ``2026-01-01 12:00:00 - INFO     - ``. bitbake starts tasks in
parallel and numbers each one when it starts, so numbers arrive out of order and with gaps:
the tracker keeps the highest number seen and the latest total, separately for setscene
tasks and normal tasks.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .layout import (
    STEP_BITBAKE, STEP_CHECKOUT, STEP_CLONING, STEP_COLLECTING, STEP_FINISHED, STEP_KAS,
    STEP_PREFIX, STEP_SETUP, STEP_SUBMODULES, step_line,
)
from .printable import printable


class Phase(enum.StrEnum):
    """Build phases in the order a build goes through them."""

    STARTING = "starting"
    CLONING = "cloning"
    CHECKOUT = "checkout"
    PARSING = "parsing"
    SETSCENE = "setscene"
    TASKS = "tasks"
    COLLECTING = "collecting"
    FINISHED = "finished"

    @property
    def rank(self) -> int:
        return _PHASE_ORDER.index(self)


_PHASE_ORDER = list(Phase)

PHASE_LABELS = {
    Phase.STARTING: "Starting",
    Phase.CLONING: "Cloning the repository",
    Phase.CHECKOUT: "Checking out",
    Phase.PARSING: "Parsing recipes",
    Phase.SETSCENE: "Setscene tasks",
    Phase.TASKS: "Running tasks",
    Phase.COLLECTING: "Collecting artifacts",
    Phase.FINISHED: "Finished",
}


@dataclass(frozen=True)
class Progress:
    """A snapshot of a build's progress. ``percent`` is 0-100, or None while unknown."""

    phase: Phase = Phase.STARTING
    setscene_done: int = 0
    setscene_total: int | None = None
    tasks_done: int = 0
    tasks_total: int | None = None
    percent: int | None = None
    current: str | None = None

    @property
    def label(self) -> str:
        """One line for people: "Running tasks 12 of 3000", "Parsing recipes"..."""
        text = PHASE_LABELS[self.phase]
        if self.phase is Phase.TASKS and self.tasks_total:
            text += f" {min(self.tasks_done, self.tasks_total)} of {self.tasks_total}"
        elif self.phase is Phase.SETSCENE and self.setscene_total:
            text += f" {min(self.setscene_done, self.setscene_total)} of {self.setscene_total}"
        return text


# The runner's step headers (autobuild.domain.layout): written by the runner itself, unprefixed.
_STEPS = tuple((step_line(text), phase) for text, phase in (
    (STEP_CLONING, Phase.CLONING),
    (STEP_CHECKOUT, Phase.CHECKOUT),
    (STEP_SUBMODULES, Phase.CHECKOUT),
    (STEP_SETUP, Phase.CHECKOUT),
    (STEP_KAS, Phase.PARSING),
    (STEP_BITBAKE, Phase.PARSING),
    (STEP_COLLECTING, Phase.COLLECTING),
    (STEP_FINISHED, Phase.FINISHED),
))
# bitbake's lines, anywhere in a line (a wrapper may put a timestamp before them). The task
# id stops at a parenthesis: "(.*)\)" went back over the rest of the line from every
# "Running task", time squared in the length of a line a build made long.
_TASK = re.compile(
    r"NOTE:\s+Running (setscene |noexec )?task (\d{1,9}) of (\d{1,9}) \(([^()]*)\)")
_PARSING = re.compile(r"Loading cache|Parsing recipes(?::\s*(\d{1,3})%)?|"
                      r"(Parsing of \d+ \.bb files complete)")

MAX_LINE = 64 * 1024  # longer lines are cut: a line without an end must not grow forever


def task_label(tid: str) -> str:
    """``[mc:x:][virtual:native:]/path/to/busybox_1.36.1.bb:do_compile`` without the directories.

    Gives ``mc:x:virtual:native:busybox_1.36.1.bb:do_compile``: short, and still what a
    Yocto engineer would type after ``bitbake -c``.
    """
    tid = tid.strip()
    slash = tid.find("/")
    if slash < 0:
        return tid
    prefix = tid[:slash]
    rest = tid[slash:]
    filename, sep, task = rest.rpartition(":")
    if not sep:
        filename, task = rest, ""
    name = filename.rsplit("/", 1)[-1]
    return f"{prefix}{name}{sep}{task}"


class ProgressTracker:
    """Feed it the log text in pieces of any size; ``progress`` is the snapshot so far.

    Only complete lines count (a line ends at ``\\n`` or ``\\r``), so feeding a text in any
    number of chunks gives the same snapshot as feeding it whole. Never raises on odd input.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._phase = Phase.STARTING
        self._setscene_done = 0
        self._setscene_total: int | None = None
        self._tasks_done = 0
        self._tasks_total: int | None = None
        self._parse_percent: int | None = None
        self._succeeded = False
        self._stopped_percent: int | None = None
        self._current: str | None = None
        self._progress = Progress()

    @property
    def progress(self) -> Progress:
        return self._progress

    # --- kept between processes (the runner's log digest) -----------------------------------

    def state(self) -> dict[str, Any]:
        """Everything the tracker knows, as JSON values; ``restore`` makes the tracker again."""
        return {
            "pending": self._pending, "phase": str(self._phase),
            "setscene_done": self._setscene_done, "setscene_total": self._setscene_total,
            "tasks_done": self._tasks_done, "tasks_total": self._tasks_total,
            "parse_percent": self._parse_percent, "succeeded": self._succeeded,
            "stopped_percent": self._stopped_percent, "current": self._current,
        }

    @classmethod
    def restore(cls, state: Mapping[str, Any]) -> ProgressTracker:
        """The tracker ``state()`` described; ValueError for anything else (any source)."""
        tracker = cls()
        try:
            tracker._pending = _text(state["pending"], MAX_LINE)
            tracker._phase = Phase(state["phase"])
            tracker._setscene_done = _count(state["setscene_done"])
            tracker._setscene_total = _count(state["setscene_total"], optional=True)
            tracker._tasks_done = _count(state["tasks_done"])
            tracker._tasks_total = _count(state["tasks_total"], optional=True)
            tracker._parse_percent = _count(state["parse_percent"], optional=True, top=100)
            tracker._stopped_percent = _count(state["stopped_percent"], optional=True, top=100)
            if not isinstance(state["succeeded"], bool):
                raise ValueError("succeeded is not a boolean")
            tracker._succeeded = state["succeeded"]
            current = state["current"]
            tracker._current = None if current is None else printable(_text(current, 300))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a progress state: {exc}") from None
        tracker._progress = tracker._snapshot()
        return tracker

    def feed(self, text: str) -> bool:
        """Add log text; True when the snapshot changed."""
        if not text:
            return False
        pieces = re.split(r"[\r\n]", text)
        head = (self._pending + pieces[0])[:MAX_LINE]
        if len(pieces) == 1:
            self._pending = head
            return False
        self._line(head)
        for line in pieces[1:-1]:
            self._line(line[:MAX_LINE])
        self._pending = pieces[-1][:MAX_LINE]
        snapshot = self._snapshot()
        changed = snapshot != self._progress
        self._progress = snapshot
        return changed

    # --- one complete line ------------------------------------------------------------------

    def _advance(self, phase: Phase) -> None:
        # Phases only move forward: setscene and normal tasks interleave in modern bitbake.
        if phase.rank > self._phase.rank:
            self._phase = phase

    def _line(self, line: str) -> None:
        if not line:
            return
        if line.startswith(STEP_PREFIX):
            for prefix, phase in _STEPS:
                if line.startswith(prefix):
                    if phase is Phase.FINISHED:
                        self._stopped_percent = self._percent()
                        self._succeeded = line[len(prefix):].startswith("SUCCESS")
                    self._advance(phase)
                    return
            return
        if "Running" in line:
            match = _TASK.search(line)
            if match:
                self._task(match)
                return
        if "Pars" in line or "Loading cache" in line:
            match = _PARSING.search(line)
            if match:
                self._advance(Phase.PARSING)
                percent, complete = match.groups()
                if complete:
                    self._parse_percent = 100
                elif percent is not None:
                    self._parse_percent = min(100, int(percent))

    def _task(self, match: re.Match[str]) -> None:
        kind, number, total, tid = match.groups()
        done, of = int(number), int(total)
        if kind == "setscene ":
            self._setscene_done = max(self._setscene_done, done)
            self._setscene_total = of or None
            self._advance(Phase.SETSCENE)
        else:
            self._tasks_done = max(self._tasks_done, done)
            self._tasks_total = of or None
            self._advance(Phase.TASKS)
        self._current = printable(task_label(tid)[:300]) or None  # shown to colleagues

    # --- the snapshot -----------------------------------------------------------------------

    def _percent(self) -> int | None:
        phase = self._phase
        if phase is Phase.PARSING:
            return self._parse_percent
        if phase is Phase.SETSCENE:
            return _ratio(self._setscene_done, self._setscene_total)
        if phase is Phase.TASKS:
            return _ratio(self._tasks_done, self._tasks_total)
        if phase is Phase.COLLECTING:
            return 100  # bitbake has succeeded
        if phase is Phase.FINISHED:
            return 100 if self._succeeded else self._stopped_percent
        return None

    def _snapshot(self) -> Progress:
        return Progress(
            phase=self._phase,
            setscene_done=self._setscene_done,
            setscene_total=self._setscene_total,
            tasks_done=self._tasks_done,
            tasks_total=self._tasks_total,
            percent=self._percent(),
            current=None if self._phase.rank >= Phase.COLLECTING.rank else self._current,
        )


def _count(value: Any, optional: bool = False, top: int = 10**9) -> Any:
    if value is None and optional:
        return None
    if type(value) is not int or not 0 <= value <= top:
        raise ValueError(f"not a count: {value!r}")
    return value


def _text(value: Any, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError("not a short text")
    return value


def _ratio(done: int, total: int | None) -> int | None:
    if not total:
        return None
    return max(0, min(100, done * 100 // total))


def progress_of(text: str) -> Progress:
    """The progress shown by a whole log text (complete lines only)."""
    tracker = ProgressTracker()
    tracker.feed(text)
    return tracker.progress
