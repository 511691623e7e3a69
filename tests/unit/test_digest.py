"""The log digest the runner keeps: progress and failure summary of the whole log, fed in
pieces of any size, saved and continued, and never trusted blindly when read back."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from autobuild.domain import digest, failures
from autobuild.domain.digest import MAX_DIGEST_BYTES, LogDigest
from autobuild.domain.failures import FailureNotes, summarize
from autobuild.domain.progress import progress_of
from tests.unit.test_failures import STANDIN, TWO_FAILURES

BB = "/w/src/meta/recipes-core/busybox/busybox_1.36.1.bb"
LOG = "/w/tmp/work/core2-64/busybox/1.36.1-r0/temp/log.do_compile.77"
# Lines of every kind summarize and the progress tracker react to, and some they do not.
LINES = [
    "==> Cloning https://git.example.com/poky.git", "==> Checking out main",
    "==> Updating submodules", "==> bitbake core-image-minimal (MACHINE=qemux86-64)",
    "==> Build finished: FAILED (exit 1)", "==> Build finished: SUCCESS (exit 0)",
    "fatal: Authentication failed for 'https://git.example.com/poky.git/'",
    "error: could not lock config file", "Parsing recipes: 45% |####    |",
    "Parsing of 912 .bb files complete (0 cached, 912 parsed).",
    f"NOTE: Running task 12 of 3000 ({BB}:do_compile)",
    f"NOTE: Running setscene task 3 of 90 (virtual:native:{BB}:do_populate_sysroot_setscene)",
    "ERROR: busybox-1.36.1-r0 do_compile: oe_runmake failed",
    f"ERROR: Logfile of failure stored in: {LOG}",
    f"ERROR: Task ({BB}:do_compile) failed with exit code '1'",
    f"ERROR: Task (virtual:native:{BB}:do_configure) failed with exit code '2'",
    "Summary: 1 task failed:", "Summary: 2 tasks failed:", f"  {BB}:do_compile",
    f"  virtual:native:{BB}:do_configure", f"    log: {LOG}", "ERROR: oops /x/y.bb:do_fetch",
    "Summary: There were 3 ERROR messages, returning a non-zero exit code.",
    "| make: *** [Makefile:12: all] Error 1", "NOTE: Tasks Summary: Attempted 5 tasks",
    "write error: No space left on device", "\x1b[31mERROR: busybox-1.36.1-r0 do_fetch: x\x1b[0m",
    "", "   ", "just some output", "é ünïcödé ✓",
]
SEPARATORS = ["\n", "\r\n", "\r", "\x0c", "\u2028", "\n\n"]


@st.composite
def logs(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.sampled_from(LINES) | st.text(max_size=20), max_size=60))
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(lines),
                         max_size=len(lines)))
    return "".join(line + sep for line, sep in zip(lines, seps)) + draw(
        st.sampled_from(["", "partial ERROR: x-1.0 do_y: z", "Summary: 1 task failed:"]))


def pieces(data, cuts: list[int]):
    points = sorted({min(len(data), max(0, c)) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        yield data[start:point]
        start = point


# A block ended by a line summarize ignores, then a line that would read as one of its tasks.
ENDED_BLOCK = f"Summary: 1 task failed:\n  {BB}:do_compile\njust some output\nERROR: oops /x/y.bb:do_fetch\n"
SPLIT_CRLF = f"Summary: 2 tasks failed:\r\n  {BB}:do_compile\r\n    log: {LOG}\r\n"


@settings(max_examples=500, deadline=None)
@given(logs(), st.lists(st.integers(0, 4000), max_size=8), st.booleans())
@example(ENDED_BLOCK, [], False)
@example(SPLIT_CRLF, [], True)
def test_the_notes_give_the_summary_of_the_whole_log_however_it_is_cut(text, cuts, by_char):
    notes = FailureNotes()
    for piece in (text if by_char else pieces(text, cuts)):
        notes.feed(piece)
    assert summarize(notes.text()) == summarize(text)


@settings(max_examples=200, deadline=None)
@given(logs(), st.lists(st.integers(0, 6000), max_size=8), st.integers(0, 6000))
def test_a_digest_saved_anywhere_and_continued_equals_one_read_of_the_whole_log(text, cuts, save_at):
    data = text.encode("utf-8")  # multi-byte characters get cut between pieces and at the save
    first = LogDigest()
    first.feed(data[:save_at])
    again = LogDigest.parse(first.to_json())
    assert again.offset <= min(save_at, len(data))
    for piece in pieces(data[again.offset:], cuts):
        again.feed(piece)
    whole = data.decode("utf-8", errors="replace")
    assert again.progress == progress_of(whole)
    assert again.failure() == summarize(whole)


def test_an_error_at_the_start_of_a_long_log_is_in_the_summary():
    digest = LogDigest()
    digest.feed(STANDIN.encode())
    noise = b"NOTE: Running task 7 of 9000 (/w/meta/recipes/a/a.bb:do_compile) | output\n" * 2000
    for _ in range(50):  # 7.5 MB of ordinary output after the failure
        digest.feed(noise)
    summary = digest.failure()
    assert [t.label for t in summary.tasks] == ["fail-image-1.0-r0 do_compile"]
    assert summary.incomplete is None
    assert len(digest.notes.lines) < 30  # only what the summary needs is kept


def test_more_error_lines_than_kept_are_counted_and_the_summary_says_so(monkeypatch):
    monkeypatch.setattr(failures, "MAX_NOTE_LINES", 40)
    digest = LogDigest()
    digest.feed(TWO_FAILURES.encode())
    digest.feed(b"ERROR: noisy-1.0-r0 do_compile: again\n" * 100)
    summary = digest.failure()
    assert digest.notes.dropped > 0
    assert summary.incomplete and str(digest.notes.dropped) in summary.incomplete
    assert {t.task for t in summary.tasks} >= {"do_compile", "do_configure"}


def test_a_long_line_without_an_end_is_bounded():
    digest = LogDigest()
    for _ in range(16):
        digest.feed(b"ERROR: " + b"x" * 64 * 1024)
    assert len(digest.notes.pending) <= failures.MAX_PENDING
    assert len(digest.to_json()) < 4 * 64 * 1024


GOOD = LogDigest()
GOOD.feed(STANDIN.encode())


def mutated(**changes) -> bytes:
    value = json.loads(GOOD.to_json())
    for path, new in changes.items():
        where = value
        *parents, last = path.split("__")
        for parent in parents:
            where = where[parent]
        where[last] = new
    return json.dumps(value).encode()


@pytest.mark.parametrize("data", [
    b"", b"not json", b"[]", b"{}", b"\xff\xfe", b"[" * 100000,
    mutated(version=2), mutated(offset=-1), mutated(offset="12"), mutated(offset=True),
    mutated(progress=None), mutated(notes=[]),
    mutated(progress__phase="flying"), mutated(progress__tasks_done=-5),
    mutated(progress__tasks_total="3000"), mutated(progress__parse_percent=101),
    mutated(progress__succeeded=1), mutated(progress__pending="x" * 70000),
    mutated(notes__lines="ERROR: x"), mutated(notes__lines=[1, 2]),
    mutated(notes__lines=["x" * 100] * 30000), mutated(notes__in_git="yes"),
    mutated(notes__dropped=-1), mutated(notes__pending=None),
    b" " * (MAX_DIGEST_BYTES + 1),
])
def test_a_forged_or_broken_digest_is_refused(data):
    with pytest.raises(ValueError):
        LogDigest.parse(data)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(
                        ["version", "offset", "progress", "notes", "lines", "phase", "pending"]),
                        inner, max_size=5), max_leaves=20))
def test_parsing_any_json_raises_nothing_but_value_error(value):
    try:
        LogDigest.parse(json.dumps(value).encode())
    except ValueError:
        pass


def test_a_digest_read_back_is_the_digest_written():
    again = LogDigest.parse(GOOD.to_json())
    assert (again.offset, again.progress, again.failure()) == (
        GOOD.offset, GOOD.progress, GOOD.failure())


@pytest.mark.parametrize("junk", ["[]", "{}", "0", "[[[]]]"])
def test_a_digest_padded_with_values_the_parser_would_ignore_is_refused_unparsed(junk, monkeypatch):
    """8 MiB of empty lists under a key the parser ignores cost 2 s and 200 MB to parse."""
    good = LogDigest().to_json().decode().rstrip()
    padding = ",".join([junk] * ((digest.MAX_DIGEST_BYTES - len(good)) // (len(junk) + 1) - 10))
    raw = (good[:-1] + ',"junk":[' + padding + "]}").encode()
    parsed = []
    monkeypatch.setattr(digest.json, "loads", lambda *a, **kw: parsed.append(1))

    with pytest.raises(ValueError):
        LogDigest.parse(raw)
    assert parsed == []


def test_a_digest_full_of_notes_with_brackets_and_commas_in_them_is_read():
    kept = LogDigest()
    kept.feed(("ERROR: [a, b] {c, d}, [e, f] \"q\" \\\\ failed\n" * failures.MAX_NOTE_LINES).encode())

    assert LogDigest.parse(kept.to_json()).notes.lines == kept.notes.lines
