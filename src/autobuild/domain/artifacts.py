"""Which artifact names may be served, and which files a build should collect."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from .printable import is_printable


class ArtifactNotFound(Exception):
    """No artifact of that name (also raised for every name that is not a plain file name)."""


@dataclass(frozen=True)
class ArtifactInfo:
    name: str
    size: int
    mtime: datetime
    sha256: str | None = None  # from the runner's artifacts.sha256; None when it has none


# What one listing of a build's artifacts holds: a build may leave 200k files in artifacts/
# (listing them all cost 4.5 s of CPU per view, and a compare page of 15 MiB).
MAX_ARTIFACTS_LISTED = 1000


class ArtifactList(list[ArtifactInfo]):
    """The first MAX_ARTIFACTS_LISTED artifacts by name; ``more``: how many other files the
    build left in artifacts/ that are not listed (each may still be downloaded by its name)."""

    def __init__(self, items: Iterable[ArtifactInfo] = (), more: int = 0) -> None:
        super().__init__(items)
        self.more = more


def artifact_list(names: Iterable[str], look: Callable[[str], ArtifactInfo | None],
                  limit: int | None = None) -> ArtifactList:
    """The first ``limit`` artifacts by name among the files ``names``: each plain name, in
    order, is looked at (``look``: its ArtifactInfo, or None when it is not an artifact,
    e.g. removed meanwhile or not the owner's) until ``limit`` are found; the names not
    looked at are counted in ``more``, whatever they are. Only those listed cost a look.
    ``limit``: MAX_ARTIFACTS_LISTED unless said."""
    limit = MAX_ARTIFACTS_LISTED if limit is None else limit
    ordered = sorted(names)
    found: list[ArtifactInfo] = []
    for index, name in enumerate(ordered):
        if len(found) >= limit:
            return ArtifactList(found, len(ordered) - index)
        info = look(name) if is_plain_name(name) else None
        if info is not None:
            found.append(info)
    return ArtifactList(found)


_SHA256_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def parse_checksums(text: str) -> dict[str, str]:
    """Name -> sha256 from ``sha256sum`` output; lines that are malformed, escaped (a name
    with a newline or backslash) or not a plain name are skipped."""
    sums: dict[str, str] = {}
    for line in text.splitlines():
        match = _SHA256_LINE.match(line)
        if match and is_plain_name(match.group(2)):
            sums[match.group(2)] = match.group(1)
    return sums


_PATTERN = re.compile(r"^[A-Za-z0-9._*?\[\]!+-]{1,128}$")
MAX_NAME_LENGTH = 255


def is_plain_name(name: str) -> bool:
    """True for a single, visible file name: no directories, no '..', no control or format
    characters (a build names its files, and a colleague must see on the page and in their
    terminal the name that is there: no escape sequence, no bidi override reversing it)."""
    return (
        0 < len(name) <= MAX_NAME_LENGTH
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and "\t" not in name
        and is_printable(name)
    )


def resolve_artifact_path(artifacts_dir: PurePosixPath, name: str) -> PurePosixPath:
    """The path of artifact ``name`` directly inside ``artifacts_dir``, or ArtifactNotFound.

    Pure path logic; the adapter still opens it with O_NOFOLLOW relative to the directory
    and checks that it is a regular file.
    """
    if not is_plain_name(name):
        raise ArtifactNotFound(name)
    return artifacts_dir / name


def is_valid_pattern(pattern: str) -> bool:
    """A glob for file names in the deploy directory: no '/', no leading '-' or '.'."""
    return bool(_PATTERN.match(pattern)) and pattern[0] not in "-."


def matches_any(name: str, patterns: list[str] | tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def merge_patterns(groups: list[list[str]]) -> list[str]:
    """All valid patterns from all plugins, deduplicated, in a stable order."""
    seen: dict[str, None] = {}
    for group in groups:
        for pattern in group:
            if is_valid_pattern(pattern):
                seen.setdefault(pattern, None)
    return list(seen)
