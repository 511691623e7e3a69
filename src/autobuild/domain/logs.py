"""Cutting a byte-addressed log into text chunks without splitting a UTF-8 character."""

from __future__ import annotations

from dataclasses import dataclass


class LogNotFound(Exception):
    """The build has no log (yet), or nothing that may be served as one."""


@dataclass(frozen=True)
class LogChunk:
    """Text of the log from ``offset`` up to ``next_offset`` (byte offsets)."""

    offset: int
    next_offset: int
    text: str
    complete: bool


def _incomplete_tail(data: bytes) -> int:
    """How many bytes at the end of ``data`` start a UTF-8 character that is not finished yet."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0b1100_0000 == 0b1000_0000:
            continue  # continuation byte: keep looking for the lead byte
        if byte & 0b1000_0000 == 0:
            return 0
        need = 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4 if byte >> 3 == 0b11110 else 1
        return back if back < need else 0
    return 0


def decode_chunk(data: bytes, offset: int, at_end: bool) -> tuple[str, int]:
    """Decode ``data`` read at ``offset``; returns (text, next_offset).

    An unfinished multi-byte character at the end is left for the next read unless
    ``at_end`` (the log will not grow any more); invalid bytes become U+FFFD.
    """
    keep = len(data) if at_end else len(data) - _incomplete_tail(data)
    return data[:keep].decode("utf-8", errors="replace"), offset + keep
