"""Text a build wrote, made fit to show on one line: the one rule for names taken from a log.

A build's log is its engineer's to write, and what the service takes from it (a failed
recipe, its task, a git error, the task running now) is shown to colleagues, on the job page
and in their terminals through autobuild-cli. A control character there is an escape
sequence a terminal obeys (ESC c resets it, ESC M moves up to overwrite what was printed,
OSC 52 writes the clipboard), and a direction override shows text in another order than it
has; each becomes a visible "?".
"""

from __future__ import annotations

import re

# C0 controls but the tab (a newline too: these are one-line texts), DEL, C1 controls, and the
# invisible format characters that change how text around them is shown: bidi marks,
# embeddings, overrides and isolates, zero-width characters, line and paragraph separators.
_HIDDEN = re.compile(
    r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


def printable(text: str) -> str:
    """``text`` with every control or invisible format character replaced by ``?``."""
    return _HIDDEN.sub("?", text)


def is_printable(text: str) -> bool:
    """True when ``text`` shows as it is: no control or invisible format character."""
    return _HIDDEN.search(text) is None
