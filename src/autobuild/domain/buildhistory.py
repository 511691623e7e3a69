"""What buildhistory.bbclass writes about an image, read back (layout.BUILDHISTORY_IMAGE_FILES).

``installed-package-sizes.txt``: ``<size>\\tKiB\\t<package>`` a line, biggest first (from
``oe-pkgdata-util read-value PKGSIZE``); ``installed-package-names.txt``: one package a line;
``image-info.txt``: ``NAME = value`` lines (DISTRO, IMAGE_INSTALL, ..., ``IMAGESIZE`` in KiB,
from ``du -ks`` of the rootfs). Files a build wrote are hostile: whatever does not fit is
skipped, nothing here raises.
"""

from __future__ import annotations

import re

from .text import first_lines

MAX_LINES = 50_000  # lines read of a file (a big image installs a few thousand packages)
MAX_KIB = 1 << 40  # a size beyond this (a PiB) is not a package's

_NAME = r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}"
_SIZE_LINE = re.compile(rf"(\d{{1,15}})[ \t]+KiB[ \t]+({_NAME})")
_NAME_LINE = re.compile(_NAME)
_INFO_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,100}")
MAX_INFO_VALUE = 4096


def parse_package_sizes(text: str) -> dict[str, int]:
    """Package -> installed size in KiB, from installed-package-sizes.txt."""
    sizes: dict[str, int] = {}
    for line in first_lines(text, MAX_LINES):
        match = _SIZE_LINE.fullmatch(line.strip(" \t"))
        if match and int(match.group(1)) <= MAX_KIB:
            sizes.setdefault(match.group(2), int(match.group(1)))
    return sizes


def parse_package_names(text: str) -> list[str]:
    """The packages of installed-package-names.txt, in order, each once."""
    names: dict[str, None] = {}
    for line in first_lines(text, MAX_LINES):
        name = line.strip(" \t")
        if _NAME_LINE.fullmatch(name):
            names.setdefault(name, None)
    return list(names)


def parse_image_info(text: str) -> dict[str, str]:
    """NAME -> value of image-info.txt (the first of each name)."""
    info: dict[str, str] = {}
    for line in first_lines(text, MAX_LINES):
        # partition, not a pattern over the whole line: blanks a pattern may take two ways
        # made a long line of them cost seconds per request (a hostile build writes this file)
        name, equals, value = line.partition("=")
        name, value = name.strip(" \t"), value.strip(" \t")
        if equals and len(value) <= MAX_INFO_VALUE and _INFO_NAME.fullmatch(name):
            info.setdefault(name, value)
    return info


def image_size_kib(info: dict[str, str]) -> int | None:
    """IMAGESIZE of image-info.txt (KiB of the root filesystem), or None."""
    value = info.get("IMAGESIZE", "")
    if value.isascii() and value.isdigit() and len(value) <= 15 and int(value) <= MAX_KIB:
        return int(value)
    return None
