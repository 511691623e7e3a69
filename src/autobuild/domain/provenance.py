"""What a build really built, read from its log: the commit its ref resolved to, for a kas
build the kas file and the repositories kas checked out (each at its commit), and bitbake's
"Build Configuration" block (bitbake version, DISTRO, MACHINE, ... and each layer with its
branch and revision).

The runner prints the commit as a step line (``==> Commit <sha>``, layout.STEP_COMMIT) right
after the checkout, and for kas ``==> Kas file <path>`` and one ``==> Kas repo <name> <commit>
<url>`` per repository right after it, once kas has checked them out (only that run of lines
counts: any task of the build can print such a line later); bitbake prints the block when it
starts building::

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
from urllib.parse import urlsplit, urlunsplit

from .layout import KAS_THIS_REPOSITORY, STEP_COMMIT, STEP_KAS_FILE, STEP_KAS_REPO, step_line
from .printable import printable

MAX_ENTRIES = 100
MAX_TEXT = 200
SHORT_COMMIT = 12  # hex digits shown where a full commit id does not fit (the job list)
MIN_COMMIT_PREFIX = 7  # git's own shortest abbreviation
# What the job list's commit filter accepts: a full commit id or an abbreviation of it.
COMMIT_PREFIX_PATTERN = f"[0-9a-fA-F]{{{MIN_COMMIT_PREFIX},64}}"

MAX_KAS_REPOS = 50
_COMMIT_LINE = step_line(STEP_COMMIT)
_KAS_FILE_LINE = step_line(STEP_KAS_FILE)
_KAS_REPO_LINE = step_line(STEP_KAS_REPO)
_KAS_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,100}")
_KAS_FILE = re.compile(r"[A-Za-z0-9_.+/-]{1,200}")
# Printable ASCII only (no ESC or BEL for a colleague's terminal), the schemes git clones.
_KAS_URL = re.compile(r"(?:https?|ssh|git|file)://[!-.0-?A-~]+(?:/[!-~]{0,1000})?|/[!-~]{0,1000}")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_BLOCK = re.compile(r"^Build Configuration( \([^)]{0,100}\))?:\s*$")
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# kas logs what bitbake prints: "2026-01-01 12:00:00 - INFO     - Build Configuration:".
_KAS_LOGGED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - [A-Z]{4,8} +- ")
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


def without_userinfo(url: str) -> str:
    """``url`` with any user name and password taken out (``https://u:p@h/x`` ->
    ``https://h/x``): what may be printed in a log or shown."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.username is None and parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def kas_repo_url(url: object) -> str | None:
    """A kas repository's URL as a Kas repo line may carry it (no credentials, neither in
    the user part nor in a query such as ``?private_token=``; no spaces; bounded), or None."""
    if not isinstance(url, str):
        return None
    url = without_userinfo(url).partition("?")[0].partition("#")[0]
    return url if _KAS_URL.fullmatch(url) else None


def is_kas_repo_name(name: object) -> bool:
    return isinstance(name, str) and bool(_KAS_NAME.fullmatch(name))


@dataclass(frozen=True)
class KasRepo:
    """A repository kas checked out: ``url`` None for the build's own repository."""

    name: str
    commit: str
    url: str | None = None


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
    kas_file: str | None = None
    kas_repos: tuple[KasRepo, ...] = ()

    @property
    def is_empty(self) -> bool:
        return (self.commit is None and not self.variables and not self.layers
                and self.kas_file is None and not self.kas_repos)


class ProvenanceCollector:
    """Feed it the log's complete lines; ``provenance`` is what they said so far."""

    def __init__(self) -> None:
        self.commit: str | None = None
        self.variables: list[tuple[str, str]] = []
        self.layers: list[Layer] = []
        self.in_block = False
        self.block_seen = False
        self.kas_file: str | None = None
        self.kas_repos: list[KasRepo] = []
        # True from the runner's Kas file line up to the first line that is no Kas repo line.
        self.in_kas_repos = False

    def add_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self._line(_ESCAPES.sub("", line) if "\x1b" in line else line)

    @property
    def provenance(self) -> Provenance:
        """What was read, its texts as they show (printable.py): a value or branch is the
        build's to print, and a colleague reads it on the page and in their terminal."""
        return Provenance(
            self.commit, tuple((printable(name), printable(value)) for name, value in self.variables),
            tuple(Layer(printable(layer.name), _printable_or_none(layer.branch),
                        _printable_or_none(layer.revision)) for layer in self.layers),
            self.kas_file, tuple(self.kas_repos))

    def _line(self, line: str) -> None:
        if line.startswith(_KAS_REPO_LINE):
            if self.in_kas_repos and len(self.kas_repos) < MAX_KAS_REPOS and (repo := _kas_repo(
                    line[len(_KAS_REPO_LINE):].strip().split(" ", 2))) is not None:
                self.kas_repos.append(repo)
            return
        self.in_kas_repos = False
        if line.startswith(_COMMIT_LINE):
            sha = line[len(_COMMIT_LINE):].strip().split(" ", 1)[0]
            if self.commit is None and is_commit(sha):
                self.commit = sha
            return
        if line.startswith(_KAS_FILE_LINE):
            path = line[len(_KAS_FILE_LINE):].strip()
            if self.kas_file is None and _KAS_FILE.fullmatch(path) and ".." not in path:
                self.kas_file = path
                self.in_kas_repos = True
            return
        if line[:1].isdigit() and (logged := _KAS_LOGGED.match(line)):
            line = line[logged.end():]
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
                "in_block": self.in_block, "block_seen": self.block_seen,
                "kas_file": self.kas_file,
                "kas_repos": [[repo.name, repo.commit, repo.url] for repo in self.kas_repos],
                "in_kas_repos": self.in_kas_repos}

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
        # Added later: a digest written before has neither (nothing of kas then).
        kas_file, kas_repos = state.get("kas_file"), state.get("kas_repos", [])
        in_kas_repos = state.get("in_kas_repos", False)  # later still: a digest before had none
        if not isinstance(in_kas_repos, bool) or (in_kas_repos and kas_file is None):
            raise ValueError("not provenance: kas repos flag")
        if kas_file is not None and not (isinstance(kas_file, str) and _KAS_FILE.fullmatch(
                kas_file) and ".." not in kas_file):
            raise ValueError("not provenance: kas file")
        if not isinstance(kas_repos, list) or len(kas_repos) > MAX_KAS_REPOS:
            raise ValueError("not provenance: kas repos")
        collector.kas_file, collector.in_kas_repos = kas_file, in_kas_repos
        for entry in kas_repos:
            repo = _kas_repo(entry) if isinstance(entry, list) else None
            if repo is None:
                raise ValueError("not provenance: a kas repo")
            collector.kas_repos.append(repo)
        return collector


def kas_repo_line(name: str, commit: str, url: str | None) -> str | None:
    """The step line the runner prints for a repository kas checked out (``url`` None: the
    build's own repository); None when one of them could not be read back (it is not printed)."""
    shown = KAS_THIS_REPOSITORY if url is None else kas_repo_url(url)
    if shown is None or _kas_repo([name, commit, shown]) is None:
        return None
    return step_line(f"{STEP_KAS_REPO}{name} {commit} {shown}")


def _kas_repo(fields: list[Any]) -> KasRepo | None:
    """[name, commit, url or KAS_THIS_REPOSITORY (or None, as state() keeps it)]."""
    if len(fields) != 3:
        return None
    name, commit, url = fields
    if not (is_kas_repo_name(name) and is_commit(commit)):
        return None
    if url is None or url == KAS_THIS_REPOSITORY:
        return KasRepo(name, commit, None)
    if kas_repo_url(url) != url:
        return None
    return KasRepo(name, commit, url)


def _texts(values: Iterable[Any], optional: bool) -> bool:
    return all((value is None and optional) or (isinstance(value, str) and len(value) <= MAX_TEXT)
               for value in values)


def _printable_or_none(text: str | None) -> str | None:
    return None if text is None else printable(text)
