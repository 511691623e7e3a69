"""What the shared-state cache saved a build, read from its log: bitbake's sstate summary and
how many tasks were restored from sstate (setscene) instead of run.

The lines, as bitbake prints them (sstate.bbclass sstate_checkhashes, runqueue.py, knotty)::

    Sstate summary: Wanted 16 Local 4 Mirrors 0 Missed 12 Current 0 (25% match, 0% complete)
    NOTE: Executing Tasks
    NOTE: Running setscene task 13 of 16 (/p/busybox_1.36.1.bb:do_populate_sysroot_setscene)
    NOTE: Running task 17 of 28 (/p/core-image-minimal.bb:do_rootfs)
    NOTE: Running noexec task 5 of 28 (/p/core-image-minimal.bb:do_fetch)
    NOTE: Tasks Summary: Attempted 28 tasks of which 4 didn't need to be rerun and all succeeded.
    NOTE: Tasks Summary: Attempted 9 tasks of which 0 didn't need to be rerun and 1 failed.

Older releases print ``Wanted N Found N Missed N Current N`` (dunfell) or ``Local N Network N``
(kirkstone); both are read. "Wanted" counts the setscene tasks whose stamps were not current,
"Local"/"Mirrors" the objects found in SSTATE_DIR / on SSTATE_MIRRORS, "Current" the tasks
whose stamps were already valid. Match is found / wanted (none when nothing was wanted,
where bitbake prints 0%); complete is bitbake's
(found + current) / (wanted + current), 0 when nothing was current, as bitbake prints it.

A build that runs bitbake more than once (kas with several targets, multiconfig) prints
several summaries: the counts add up. Fed line by line (the digest's lines); the summary may
follow a progress bar on the same line. Nothing here raises, whatever the text; every count
is bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_COUNT = 10**9 - 1  # nine digits: more tasks than any build has
MAX_SUMMARIES = 1000  # summaries beyond these are not added (a log could repeat the line)

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_N = r"(\d{1,9})"
_SUMMARY = re.compile(
    rf"Sstate summary: Wanted {_N} (?:Found {_N}|Local {_N} (?:Mirrors|Network) {_N}) "
    rf"Missed {_N} Current {_N}")
_TASK = re.compile(r"NOTE:\s+Running (setscene |noexec )?task \d{1,9} of \d{1,9} \(")
_TASKS_SUMMARY = re.compile(
    rf"NOTE:\s+Tasks Summary: Attempted {_N} tasks of which {_N} didn't need to be rerun "
    rf"and (?:all succeeded|{_N} failed)\.")


@dataclass(frozen=True)
class CacheReuse:
    """What a build's log says of its sstate reuse, so far. ``summaries``: how many sstate
    summaries were read (0: none yet, the other sstate fields are then 0); ``local`` and
    ``mirrors`` are None when the log's bitbake only said "Found" (dunfell). Task counts come
    from the "Running ... task" lines; ``attempted``/``not_rerun``/``failed`` from the Tasks
    Summary lines (None before the first)."""

    summaries: int = 0
    wanted: int = 0
    found: int = 0
    local: int | None = 0
    mirrors: int | None = 0
    missed: int = 0
    current: int = 0
    setscene_run: int = 0
    tasks_run: int = 0
    noexec_run: int = 0
    attempted: int | None = None
    not_rerun: int | None = None
    failed: int | None = None

    @property
    def is_empty(self) -> bool:
        return not self.summaries and not self.setscene_run and not self.tasks_run \
            and self.attempted is None

    @property
    def match_percent(self) -> int | None:
        """found / wanted, truncated as bitbake prints it; None without a summary and when
        nothing was wanted (every task already current: there was nothing to match, though
        bitbake prints "0% match")."""
        if not self.summaries or not self.wanted:
            return None
        return min(100, self.found * 100 // self.wanted)

    @property
    def complete_percent(self) -> int | None:
        """bitbake's "complete": (found + current) / (wanted + current), 0 when nothing was
        current; None without a summary."""
        if not self.summaries:
            return None
        if not self.current:
            return 0
        return (self.found + self.current) * 100 // (self.wanted + self.current)


class SstateCollector:
    """Feed it the log's complete lines; ``reuse`` is what they said so far."""

    def __init__(self) -> None:
        self._reuse = CacheReuse()

    @property
    def reuse(self) -> CacheReuse:
        return self._reuse

    def add_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            if "\x1b" in line:
                line = _ESCAPES.sub("", line)
            if "Sstate summary" in line:
                self._summary(line)
            elif "Running" in line:
                self._task(line)
            elif "Tasks Summary" in line:
                self._tasks_summary(line)

    def _summary(self, line: str) -> None:
        match = _SUMMARY.search(line)
        if not match or self._reuse.summaries >= MAX_SUMMARIES:
            return
        wanted, found, local, mirrors, missed, current = (
            None if value is None else int(value) for value in match.groups())
        assert wanted is not None and missed is not None and current is not None
        old = self._reuse
        if found is None:  # Local N Mirrors|Network N
            assert local is not None and mirrors is not None
            found = local + mirrors
        if found > wanted or missed > wanted:
            return  # bitbake never says so: a forged line would skew the team's average
        self._reuse = _bounded(
            old,
            summaries=old.summaries + 1, wanted=old.wanted + wanted, found=old.found + found,
            local=_add(old.local, local), mirrors=_add(old.mirrors, mirrors),
            missed=old.missed + missed, current=old.current + current)

    def _task(self, line: str) -> None:
        match = _TASK.search(line)
        if not match:
            return
        old = self._reuse
        kind = match.group(1)
        if kind == "setscene ":
            self._reuse = _bounded(old, setscene_run=old.setscene_run + 1)
        elif kind == "noexec ":
            self._reuse = _bounded(old, noexec_run=old.noexec_run + 1)
        else:
            self._reuse = _bounded(old, tasks_run=old.tasks_run + 1)

    def _tasks_summary(self, line: str) -> None:
        match = _TASKS_SUMMARY.search(line)
        if not match:
            return
        attempted, not_rerun = int(match.group(1)), int(match.group(2))
        failed = int(match.group(3)) if match.group(3) is not None else 0
        old = self._reuse
        self._reuse = _bounded(old, attempted=(old.attempted or 0) + attempted,
                               not_rerun=(old.not_rerun or 0) + not_rerun,
                               failed=(old.failed or 0) + failed)

    # --- kept between processes (the runner's log digest) -----------------------------------

    def state(self) -> dict[str, Any]:
        reuse = self._reuse
        return {name: getattr(reuse, name) for name in _FIELDS}

    @classmethod
    def restore(cls, state: Mapping[str, Any]) -> SstateCollector:
        """The collector ``state()`` described; ValueError for anything else (any source)."""
        if not isinstance(state, Mapping) or set(state) != set(_FIELDS):
            raise ValueError("not an sstate state")
        values = {}
        for name in _FIELDS:
            value = state[name]
            optional = name in _OPTIONAL
            if value is None and optional:
                values[name] = None
            elif type(value) is int and 0 <= value <= MAX_COUNT:
                values[name] = value
            else:
                raise ValueError(f"not an sstate state: {name}")
        if values["summaries"] > MAX_SUMMARIES:
            raise ValueError("not an sstate state: summaries")
        if values["found"] > values["wanted"] or values["missed"] > values["wanted"]:
            raise ValueError("not an sstate state: more found or missed than wanted")
        collector = cls()
        collector._reuse = CacheReuse(**values)
        return collector


_FIELDS = ("summaries", "wanted", "found", "local", "mirrors", "missed", "current",
           "setscene_run", "tasks_run", "noexec_run", "attempted", "not_rerun", "failed")
_OPTIONAL = frozenset({"local", "mirrors", "attempted", "not_rerun", "failed"})


def _add(total: int | None, value: int | None) -> int | None:
    """A sum that stays unknown once one part was (a "Found" summary has no local/mirrors)."""
    return None if total is None or value is None else total + value


def _bounded(reuse: CacheReuse, **changes: int | None) -> CacheReuse:
    """``reuse`` with ``changes``, every count capped at MAX_COUNT."""
    capped = {name: None if value is None else min(value, MAX_COUNT)
              for name, value in changes.items()}
    return CacheReuse(**{**{name: getattr(reuse, name) for name in _FIELDS}, **capped})
