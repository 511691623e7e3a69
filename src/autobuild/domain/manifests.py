"""The image manifest Yocto writes beside the images: which one describes the build's image,
and how many packages it lists.

A manifest line is ``<package> <arch> <version>`` (``format_pkg_list(pkgs, "ver")`` in
rootfs-postcommands), e.g. ``busybox core2-64 1.36.1-r0``. Whatever else a file holds is
not counted; nothing here raises, whatever the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .text import first_lines

MANIFEST_SUFFIX = ".manifest"
MAX_MANIFEST_BYTES = 2 * 1024 * 1024  # a big image lists a few thousand packages (~200 KiB)
MAX_PACKAGES = 50_000  # more lines than any image lists; the rest is not read

_FIELD = r"[A-Za-z0-9][A-Za-z0-9._+:~-]*"
_LINE = re.compile(rf"({_FIELD})[ \t]+({_FIELD})[ \t]+({_FIELD})")


@dataclass(frozen=True)
class PackageCount:
    """``count`` packages listed in the artifact ``manifest``."""

    count: int
    manifest: str


def count_packages(text: str) -> int:
    """How many different packages the well-formed lines of a manifest list (blank, comment
    and malformed lines are skipped; a package listed twice counts once; the first MAX_PACKAGES
    lines are read)."""
    names = set()
    for line in first_lines(text, MAX_PACKAGES):
        match = _LINE.fullmatch(line.strip(" \t"))
        if match:
            names.add(match.group(1))
    return len(names)


def choose_manifest(names: Iterable[str], target: str, machine: str) -> str | None:
    """The manifest among artifact ``names`` that describes the image ``target`` for
    ``machine``: Yocto's link name (``<target>-<machine>.rootfs.manifest``, or
    ``<target>-<machine>.manifest`` before nanbield), else the newest dated one of that image,
    else the shortest manifest name; None when there is none."""
    manifests = sorted(n for n in names if n.endswith(MANIFEST_SUFFIX))
    if not manifests:
        return None
    image = f"{target}-{machine}"
    for link in (f"{image}.rootfs{MANIFEST_SUFFIX}", f"{image}{MANIFEST_SUFFIX}"):
        if link in manifests:
            return link
    dated = [n for n in manifests if n.startswith(f"{image}.") or n.startswith(f"{image}-")]
    if dated:
        return dated[-1]  # the date stamp sorts: the newest last
    return min(manifests, key=lambda n: (len(n), n))


def parse_manifest(text: str) -> dict[str, str]:
    """Package -> version of the well-formed lines of a manifest (what count_packages counts;
    a package listed twice keeps its first version; the first MAX_PACKAGES lines). Never
    raises."""
    packages: dict[str, str] = {}
    for line in first_lines(text, MAX_PACKAGES):
        match = _LINE.fullmatch(line.strip(" \t"))
        if match:
            packages.setdefault(match.group(1), match.group(3))
    return packages
