"""Reading the first lines of a text a build wrote, without splitting all of it first."""

from __future__ import annotations

import re
from collections.abc import Iterator

# What str.splitlines breaks at, so a file reads the same line by line either way.
_BREAK = re.compile("\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


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
