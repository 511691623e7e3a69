"""What sstate saved a build, from its log: bitbake's sstate summary (every release's wording),
the setscene and real tasks it ran and its Tasks Summary; kept in the runner's digest."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autobuild.domain.digest import LogDigest
from autobuild.domain.sstate import MAX_COUNT, CacheReuse, SstateCollector
from tests.unit.test_digest import pieces

BB = "/w/src/meta/recipes-core/busybox/busybox_1.36.1.bb"
IMAGE = "/w/src/meta/recipes-core/images/core-image-minimal.bb"
# A scarthgap build with 4 of 16 objects in SSTATE_DIR, as the stand-in and bitbake print it.
LOG = f"""\
Loading cache...done.
Initialising tasks: 100% |####################| Time: 0:00:01
Sstate summary: Wanted 16 Local 4 Mirrors 0 Missed 12 Current 0 (25% match, 0% complete)
NOTE: Executing Tasks
NOTE: Running setscene task 13 of 16 ({BB}:do_populate_lic_setscene)
NOTE: Running setscene task 14 of 16 ({BB}:do_packagedata_setscene)
NOTE: Running setscene task 15 of 16 ({BB}:do_package_qa_setscene)
NOTE: Running setscene task 16 of 16 ({BB}:do_populate_sysroot_setscene)
NOTE: Running task 5 of 28 ({BB}:do_fetch)
NOTE: recipe busybox-1.36.1-r0: task do_fetch: Started
NOTE: Running noexec task 6 of 28 ({IMAGE}:do_fetch)
NOTE: Running task 28 of 28 ({IMAGE}:do_build)
NOTE: Tasks Summary: Attempted 28 tasks of which 4 didn't need to be rerun and all succeeded.
"""


def reuse_of(text: str) -> CacheReuse:
    collector = SstateCollector()
    collector.add_lines(text.splitlines())
    return collector.reuse


def test_the_summary_and_the_tasks_are_read():
    reuse = reuse_of(LOG)
    assert (reuse.wanted, reuse.found, reuse.local, reuse.mirrors, reuse.missed,
            reuse.current) == (16, 4, 4, 0, 12, 0)
    assert reuse.match_percent == 25 and reuse.complete_percent == 0  # as bitbake printed
    assert (reuse.setscene_run, reuse.tasks_run, reuse.noexec_run) == (4, 2, 1)
    assert (reuse.attempted, reuse.not_rerun, reuse.failed) == (28, 4, 0)


@pytest.mark.parametrize("line, found, local, mirrors, match, complete", [
    # dunfell: "Found" only
    ("Sstate summary: Wanted 64 Found 17 Missed 47 Current 1389 (26% match, 96% complete)",
     17, None, None, 26, 96),
    # kirkstone: "Network"
    ("Sstate summary: Wanted 1945 Local 0 Network 1328 Missed 617 Current 0 (68% match, "
     "0% complete)", 1328, 0, 1328, 68, 0),
    # after a progress bar on the same line, colours around it, junk after it
    ("Initialising tasks: 100% |###| Time: 0:00:00\x1b[0mSstate summary: Wanted 11 Local 11 "
     "Mirrors 0 Missed 0 Current 134 (100% match, 100% complete)#####   | ETA:  0:00:00",
     11, 11, 0, 100, 100),
    ("Sstate summary: Wanted 1634 Local 0 Mirrors 0 Missed 1634 Current 2910 (0% match, "
     "64% complete)", 0, 0, 0, 0, 64),
])
def test_every_wording_bitbake_used_is_read(line, found, local, mirrors, match, complete):
    reuse = reuse_of(line + "\n")
    assert (reuse.found, reuse.local, reuse.mirrors) == (found, local, mirrors)
    assert (reuse.match_percent, reuse.complete_percent) == (match, complete)


def test_nothing_wanted_has_no_match_to_speak_of_and_no_summary_is_unknown():
    """bitbake prints "0% match" when every task was current: there was nothing to match,
    and a 0 would read as a cache that failed (and pull the team's median down)."""
    nothing = reuse_of("Sstate summary: Wanted 0 Local 0 Mirrors 0 Missed 0 Current 120 "
                       "(0% match, 100% complete)\n")
    assert nothing.match_percent is None and not nothing.is_empty
    assert (nothing.current, nothing.complete_percent) == (120, 100)
    unknown = reuse_of("NOTE: Executing Tasks\nSstate summary: Wanted many\n")
    assert unknown.is_empty and unknown.match_percent is None


def test_several_bitbake_runs_add_up():
    twice = reuse_of(LOG + LOG.replace("Local 4", "Local 8").replace("Missed 12", "Missed 8")
                     .replace("4 didn't", "8 didn't"))
    assert (twice.summaries, twice.wanted, twice.found, twice.missed) == (2, 32, 12, 20)
    assert twice.match_percent == 37  # 12 / 32, truncated as bitbake does
    assert (twice.attempted, twice.not_rerun) == (56, 12)


def test_a_failed_build_counts_its_failed_tasks():
    reuse = reuse_of("NOTE: Tasks Summary: Attempted 9 tasks of which 0 didn't need to be "
                     "rerun and 1 failed.\n")
    assert (reuse.attempted, reuse.not_rerun, reuse.failed) == (9, 0, 1)


def test_counts_stay_bounded():
    line = "Sstate summary: Wanted 999999999 Local 999999999 Mirrors 0 " \
           "Missed 0 Current 0 (100% match, 0% complete)\n"
    reuse = reuse_of(line * 5)
    assert reuse.wanted == reuse.found == reuse.local == MAX_COUNT


# --- hostile or odd text never raises; the state round-trips -----------------------------------

LINES = LOG.splitlines() + [
    "Sstate summary: Wanted 1 Found 1 Missed 0 Current 0 (100% match, 100% complete)",
    "Sstate summary: Wanted 99999999999 Local 1", "NOTE: Running setscene task x of y (",
    "NOTE: Tasks Summary: Attempted 5 tasks of which 0 didn't need to be rerun and 1 failed.",
    "\x1b[31mNOTE\x1b[0m: Running task 1 of 2 (a)", "", "Running", "Tasks Summary",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(LINES) | st.text(max_size=80), max_size=40))
def test_any_lines_never_raise_and_the_state_round_trips(lines):
    collector = SstateCollector()
    collector.add_lines(lines)
    reuse = collector.reuse
    state = json.loads(json.dumps(collector.state()))
    assert SstateCollector.restore(state).reuse == reuse
    numbers = [v for v in state.values() if v is not None]
    assert all(0 <= v <= MAX_COUNT for v in numbers)
    if reuse.match_percent is not None:
        assert 0 <= reuse.match_percent <= 100 or reuse.found > reuse.wanted


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.none() | st.integers() | st.text(max_size=4)
                       | st.booleans() | st.lists(st.integers(), max_size=2), max_size=16))
def test_a_forged_state_is_refused_or_restored_never_anything_else(state):
    try:
        restored = SstateCollector.restore(state)
    except ValueError:
        return
    assert restored.state() == state


@pytest.mark.parametrize("bad", [
    {"wanted": -1}, {"wanted": True}, {"wanted": 1.5}, {"wanted": None}, {"local": "3"},
    {"summaries": MAX_COUNT}, {"wanted": MAX_COUNT + 1}])
def test_a_bad_state_is_refused(bad):
    state = {**SstateCollector().state(), **bad}
    with pytest.raises(ValueError):
        SstateCollector.restore(state)
    with pytest.raises(ValueError):
        SstateCollector.restore({k: v for k, v in SstateCollector().state().items()
                                 if k != "wanted"})


# --- in the runner's digest ----------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, len(LOG.encode())), max_size=6))
def test_read_through_the_digest_in_any_pieces_it_is_the_same(cuts):
    digest = LogDigest()
    for piece in pieces(LOG.encode(), cuts):
        digest.feed(piece)
    again = LogDigest.parse(digest.to_json())
    assert again.cache_reuse == digest.cache_reuse == reuse_of(LOG)
    assert again.sstate_known


def test_a_digest_saved_before_sstate_was_read_still_loads_and_says_it_does_not_know():
    digest = LogDigest()
    digest.feed(LOG.encode())
    old = json.loads(digest.to_json())
    del old["sstate"]
    loaded = LogDigest.parse(json.dumps(old).encode())
    assert loaded.progress == digest.progress
    assert loaded.cache_reuse.is_empty and not loaded.sstate_known


def test_a_digest_with_a_forged_sstate_is_refused():
    digest = LogDigest()
    digest.feed(LOG.encode())
    forged = json.loads(digest.to_json())
    forged["sstate"]["wanted"] = -5
    with pytest.raises(ValueError):
        LogDigest.parse(json.dumps(forged).encode())


def test_a_summary_bitbake_could_not_print_is_ignored_and_refused_on_restore():
    """More found (or missed) than wanted: a forged line would show a colleague's team more
    than 100 % reuse."""
    reuse = reuse_of("Sstate summary: Wanted 1 Local 999999999 Mirrors 0 Missed 0 Current 0 "
                     "(99999999900% match, 0% complete)\n"
                     "Sstate summary: Wanted 2 Local 0 Mirrors 0 Missed 7 Current 0 "
                     "(0% match, 0% complete)\n")
    assert reuse.summaries == 0 and reuse.match_percent is None

    state = SstateCollector().state()
    with pytest.raises(ValueError):
        SstateCollector.restore({**state, "summaries": 1, "wanted": 1, "found": 5})
