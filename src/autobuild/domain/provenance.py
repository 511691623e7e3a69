"""What a build really built, read from its log: the commit its ref resolved to and bitbake's
"Build Configuration" block (bitbake version, DISTRO, MACHINE, ... and each layer with its
branch and revision).

The runner prints the commit as a step line (``==> Commit <sha>``, layout.STEP_COMMIT) right
after the checkout; bitbake prints the block when it starts building::

    Build Configuration:
    BB_VERSION           = "2.8.0"
    MACHINE              = "qemux86-64"
    DISTRO               = "poky"
    meta
    meta-poky            = "scarthgap:2034fc38eb4e63984d9bd6b260aa1bf95ce562e4"

Fed line by line (the digest's lines, so the whole log is read once); bounded; the first
block counts (multiconfig builds print one per configuration).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .layout import STEP_COMMIT, step_line

MAX_ENTRIES = 100
MAX_TEXT = 200
SHORT_COMMIT = 12  # hex digits shown where a full commit id does not fit (the job list)
MIN_COMMIT_PREFIX = 7  # git's own shortest abbreviation
# What the job list's commit filter accepts: a full commit id or an abbreviation of it.
COMMIT_PREFIX_PATTERN = f"[0-9a-fA-F]{{{MIN_COMMIT_PREFIX},64}}"

_COMMIT_LINE = step_line(STEP_COMMIT)
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_BLOCK = re.compile(r"^Build Configuration( \([^)]{0,100}\))?:\s*$")
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_ASSIGNMENT = re.compile(r'^([A-Za-z0-9_.+-]{1,100})\s*=\s*"(.*)"\s*$')
_LAYER = re.compile(r"^([A-Za-z0-9_.+-]{1,100})\s*$")
_VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*$")


def is_commit(value: object) -> bool:
    """A full commit id as git prints it (40 hex digits, or 64 in a SHA-256 repository)."""
    return isinstance(value, str) and bool(_SHA.fullmatch(value))


def short_commit(commit: str) -> str:
    """The abbreviation the job list shows."""
    return commit[:SHORT_COMMIT]


def commit_prefix(text: str) -> str:
    """A full commit id or an abbreviation of at least MIN_COMMIT_PREFIX hex digits, in the
    form commits are stored (lower case); ValueError with a message fit to show."""
    text = text.strip()
    if not re.fullmatch(COMMIT_PREFIX_PATTERN, text):
        raise ValueError(f"a commit is {MIN_COMMIT_PREFIX} to 64 hex digits (0-9, a-f)")
    return text.lower()


@dataclass(frozen=True)
class Layer:
    name: str
    branch: str | None = None
    revision: str | None = None


@dataclass(frozen=True)
class Provenance:
    """``commit``: what the ref resolved to; ``variables``: the block's NAME = "value" lines
    in their order; ``layers``: the block's layers (branch and revision when in git)."""

    commit: str | None = None
    variables: tuple[tuple[str, str], ...] = ()
    layers: tuple[Layer, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self.commit is None and not self.variables and not self.layers


class ProvenanceCollector:
    """Feed it the log's complete lines; ``provenance`` is what they said so far."""

    def __init__(self) -> None:
        self.commit: str | None = None
        self.variables: list[tuple[str, str]] = []
        self.layers: list[Layer] = []
        self.in_block = False
        self.block_seen = False

    def add_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self._line(_ESCAPES.sub("", line) if "\x1b" in line else line)

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.commit, tuple(self.variables), tuple(self.layers))

    def _line(self, line: str) -> None:
        if line.startswith(_COMMIT_LINE):
            sha = line[len(_COMMIT_LINE):].strip().split(" ", 1)[0]
            if self.commit is None and is_commit(sha):
                self.commit = sha
            return
        if self.in_block:
            if not line.strip():
                self.in_block = False
                return
            if len(self.variables) + len(self.layers) >= MAX_ENTRIES:
                return
            if match := _ASSIGNMENT.match(line):
                name, value = match.group(1), match.group(2)[:MAX_TEXT]
                if _VARIABLE.match(name):
                    self.variables.append((name, value))
                else:
                    branch, _, revision = value.partition(":")
                    self.layers.append(Layer(name, branch or None, revision or None))
            elif match := _LAYER.match(line):
                self.layers.append(Layer(match.group(1)))
        elif not self.block_seen and _BLOCK.match(line):
            self.in_block = self.block_seen = True

    # --- kept between processes (the runner's log digest) -----------------------------------

    def state(self) -> dict[str, Any]:
        return {"commit": self.commit, "variables": [list(v) for v in self.variables],
                "layers": [[layer.name, layer.branch, layer.revision] for layer in self.layers],
                "in_block": self.in_block, "block_seen": self.block_seen}

    @classmethod
    def restore(cls, state: Mapping[str, Any]) -> ProvenanceCollector:
        """The collector ``state()`` described; ValueError for anything else (any source)."""
        collector = cls()
        try:
            commit, variables, layers = state["commit"], state["variables"], state["layers"]
            flags = state["in_block"], state["block_seen"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not provenance: {exc}") from None
        if commit is not None and not is_commit(commit):
            raise ValueError("not provenance: commit")
        if not all(isinstance(flag, bool) for flag in flags):
            raise ValueError("not provenance: flags")
        if not (isinstance(variables, list) and isinstance(layers, list)
                and len(variables) + len(layers) <= MAX_ENTRIES):
            raise ValueError("not provenance: entries")
        for entry in variables:
            if not (isinstance(entry, list) and len(entry) == 2 and _texts(entry, optional=False)):
                raise ValueError("not provenance: a variable")
        for entry in layers:
            if not (isinstance(entry, list) and len(entry) == 3 and _texts(entry[1:], optional=True)
                    and _texts(entry[:1], optional=False)):
                raise ValueError("not provenance: a layer")
        collector.commit = commit
        collector.variables = [(name, value) for name, value in variables]
        collector.layers = [Layer(*entry) for entry in layers]
        collector.in_block, collector.block_seen = flags
        return collector


def _texts(values: Iterable[Any], optional: bool) -> bool:
    return all((value is None and optional) or (isinstance(value, str) and len(value) <= MAX_TEXT)
               for value in values)
