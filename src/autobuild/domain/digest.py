"""A build log's digest: its progress and the lines its failure summary needs, kept from the
whole log as it is written.

The runner feeds every byte of ``logs/build.log`` to a LogDigest while the build runs and keeps
it in ``logs/digest.json`` (layout.DIGEST). The service then reads the digest plus the few bytes
written since, never the whole log: a 500 MB log costs what a 1 MB one does, and an error
early in it is not lost the way a fixed tail would lose it.

The digest sits in the owner's job directory, so the owner could forge it: that changes only
what their own build's page shows (as editing their own log would). ``LogDigest.parse``
therefore treats it as untrusted input: bounded, every field checked, ValueError otherwise.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import replace
from typing import Any

from .failures import MAX_NOTE_LINES, FailureNotes, FailureSummary, summarize
from .progress import Progress, ProgressTracker
from .provenance import Provenance, ProvenanceCollector
from .sstate import CacheReuse, SstateCollector

VERSION = 1
MAX_DIGEST_BYTES = 8 * 1024 * 1024
# What a digest holds outside its strings: a few hundred lists and objects, a comma for each
# kept note line and field. Counted before the JSON is parsed: 8 MiB of empty lists the parser
# would ignore took 2 s and 200 MB to parse, on each view of the build's page.
MAX_STRUCTURE = MAX_NOTE_LINES + 4096
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # unrolled: linear in the string


class LogDigest:
    """Feed it the log's bytes from ``offset`` on, in pieces of any size."""

    def __init__(self, offset: int = 0, tracker: ProgressTracker | None = None,
                 notes: FailureNotes | None = None,
                 built: ProvenanceCollector | None = None,
                 sstate: SstateCollector | None = None) -> None:
        self._fed = offset
        self.tracker = tracker or ProgressTracker()
        self.notes = notes or FailureNotes()
        self.built = built or ProvenanceCollector()
        self.sstate = sstate or SstateCollector()
        # False for a digest saved before sstate lines were read: its reuse is not known.
        self.sstate_known = sstate is not None or offset == 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @property
    def offset(self) -> int:
        """The log's bytes before this one are digested (an unfinished UTF-8 character at
        the end is not: it is read again by whoever continues from here)."""
        pending, _ = self._decoder.getstate()
        return self._fed - len(pending)

    def feed(self, data: bytes) -> bool:
        """Digest the next bytes of the log; True when the progress changed."""
        self._fed += len(data)
        text = self._decoder.decode(data)
        lines = self.notes.feed(text)
        self.built.add_lines(lines)
        self.sstate.add_lines(lines)
        return self.tracker.feed(text)

    @property
    def progress(self) -> Progress:
        return self.tracker.progress

    @property
    def provenance(self) -> Provenance:
        return self.built.provenance

    @property
    def cache_reuse(self) -> CacheReuse:
        return self.sstate.reuse

    def failure(self, task_logs: dict[str, str] | None = None) -> FailureSummary:
        summary = summarize(self.notes.text(), task_logs)
        if self.notes.dropped:
            return replace(summary, incomplete=f"{self.notes.dropped} more error lines than "
                                               "the summary keeps were not read: see the log")
        return summary

    # --- logs/digest.json -----------------------------------------------------------------

    def to_json(self) -> bytes:
        return json.dumps({"version": VERSION, "offset": self.offset,
                           "progress": self.tracker.state(), "notes": self.notes.state(),
                           "provenance": self.built.state(), "sstate": self.sstate.state()},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"

    @classmethod
    def parse(cls, data: bytes) -> LogDigest:
        """The digest ``to_json`` wrote; ValueError for anything else."""
        if len(data) > MAX_DIGEST_BYTES:
            raise ValueError("the digest is too big")
        structure = _JSON_STRING.sub(b"", data)
        if sum(structure.count(mark) for mark in (b"[", b"{", b",")) > MAX_STRUCTURE:
            raise ValueError("not a digest: more lists and values than a digest holds")
        try:
            value: Any = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"not a digest: {exc}") from None
        if not isinstance(value, dict) or value.get("version") != VERSION:
            raise ValueError("not a digest of this version")
        offset, progress, notes = value.get("offset"), value.get("progress"), value.get("notes")
        if type(offset) is not int or not 0 <= offset < 2**62:
            raise ValueError("not a digest: offset")
        if not isinstance(progress, dict) or not isinstance(notes, dict):
            raise ValueError("not a digest")
        built, sstate = value.get("provenance"), value.get("sstate")
        return cls(offset, ProgressTracker.restore(progress), FailureNotes.restore(notes),
                   None if built is None else ProvenanceCollector.restore(
                       built if isinstance(built, dict) else {}),
                   # a digest from before sstate was read has none: nothing is known of it
                   None if sstate is None else SstateCollector.restore(
                       sstate if isinstance(sstate, dict) else {}))
