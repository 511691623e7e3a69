"""Lines of a text a build wrote: what breaks one, and reading the first ones without
splitting all of it first."""

from __future__ import annotations

import re
from collections.abc import Iterator

# What str.splitlines breaks a line at: the one definition of a line for every reader of what a
# build wrote (a log of form feeds is a million lines a megabyte to them, as one of newlines).
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_BREAK = re.compile("\r\n|[" + LINE_BREAKS + "]")
_BREAK_BYTES = tuple(char.encode("utf-8") for char in LINE_BREAKS)  # as the log's UTF-8


def first_lines(text: str, limit: int) -> Iterator[str]:
    """The first ``limit`` lines of ``text`` as ``text.splitlines()[:limit]`` gives them, one
    at a time: a hostile file of millions of short lines costs no list of them (splitting
    16 MiB of "a\\n" first took hundreds of MB)."""
    start, count, end = 0, 0, len(text)
    while start < end and count < limit:
        found = _BREAK.search(text, start)
        if found is None:
            yield text[start:]
            return
        yield text[start:found.start()]
        start = found.end()
        count += 1


def count_line_breaks(data: bytes) -> int:
    """How many lines ``data`` (UTF-8) ends, at most, as its readers split it (a "\\r\\n"
    counts twice); a count in C however many there are."""
    return sum(data.count(br) for br in _BREAK_BYTES)


def after_first_line_break(data: bytes) -> int:
    """The offset just after the first line break in ``data``; 0 without one."""
    found = [at + len(br) for br in _BREAK_BYTES if (at := data.find(br)) >= 0]
    return min(found, default=0)


def after_last_line_break(data: bytes) -> int:
    """The offset just after the last line break in ``data``; 0 without one."""
    return max((at + len(br) for br in _BREAK_BYTES if (at := data.rfind(br)) >= 0), default=0)
