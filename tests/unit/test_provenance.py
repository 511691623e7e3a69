"""What a build really built, from its log: the commit and bitbake's Build Configuration."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autobuild.domain.digest import LogDigest
from autobuild.domain.provenance import Layer, ProvenanceCollector

SHA = "0f14567a2c1d6e0e7e1d2c3b4a5968778695a4b3"
REV = "2034fc38eb4e63984d9bd6b260aa1bf95ce562e4"
LOG = f"""\
==> Cloning https://git.example.com/bsp/poky.git
==> Checking out main
==> Commit {SHA}
HEAD is now at 0f14567 poky 5.0
==> bitbake core-image-minimal (MACHINE=qemux86-64)
Loading cache...done.
\x1b[1mBuild Configuration (mc:default):\x1b[0m
BB_VERSION           = "2.8.0"
BUILD_SYS            = "x86_64-linux"
MACHINE              = "qemux86-64"
DISTRO               = "poky"
DISTRO_VERSION       = "5.0.4"
meta
meta-poky
meta-yocto-bsp       = "scarthgap:{REV}"
meta-oe              = "HEAD:{REV}"

Sstate summary: Wanted 4 Local 0
Build Configuration (mc:other):
MACHINE              = "other"

NOTE: Running task 1 of 2 (/p/a.bb:do_fetch)
"""


def collected(text: str):
    collector = ProvenanceCollector()
    collector.add_lines(text.splitlines())
    return collector.provenance


def test_the_commit_the_variables_and_the_layers_are_read():
    built = collected(LOG)
    assert built.commit == SHA
    assert dict(built.variables) == {"BB_VERSION": "2.8.0", "BUILD_SYS": "x86_64-linux",
                                     "MACHINE": "qemux86-64", "DISTRO": "poky",
                                     "DISTRO_VERSION": "5.0.4"}  # the first block only
    assert built.layers == (Layer("meta"), Layer("meta-poky"),
                            Layer("meta-yocto-bsp", "scarthgap", REV), Layer("meta-oe", "HEAD", REV))


def test_a_log_without_them_has_no_provenance():
    assert collected("==> Cloning x\nfatal: repository not found\n").is_empty


@pytest.mark.parametrize("line", ["==> Commit 12345", "==> Commit " + "g" * 40,
                                  "==> Commit ; rm -rf /", "Commit " + SHA])
def test_only_a_full_hex_commit_on_the_runners_own_line_counts(line):
    assert collected(line + "\n").commit is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, len(LOG.encode())), max_size=6))
def test_read_through_the_digest_in_any_pieces_it_is_the_same(cuts):
    data = LOG.encode()
    digest = LogDigest()
    start = 0
    for cut in sorted(cuts):
        digest.feed(data[start:cut])
        start = cut
    digest.feed(data[start:])
    again = LogDigest.parse(digest.to_json())
    assert again.provenance == digest.provenance == collected(LOG)


@pytest.mark.parametrize("change", [
    {"commit": "not a sha"}, {"variables": [["A"]]}, {"variables": "x"},
    {"layers": [["meta", 1, None]]}, {"layers": [["x" * 500, None, None]]}, {"in_block": "no"},
    {"variables": [["A", "b"]] * 101},
])
def test_a_forged_provenance_in_a_digest_is_refused(change):
    digest = LogDigest()
    digest.feed(LOG.encode())
    value = json.loads(digest.to_json())
    value["provenance"].update(change)
    with pytest.raises(ValueError):
        LogDigest.parse(json.dumps(value).encode())


# --- the commit as a job records it (list filter, exact rebuild) --------------------------------

def test_a_commit_filter_takes_a_full_id_or_an_abbreviation_of_7_or_more_hex_digits():
    from autobuild.domain.provenance import commit_prefix, is_commit, short_commit
    assert commit_prefix(f" {SHA.upper()} ") == SHA
    assert commit_prefix(SHA[:7]) == SHA[:7]
    assert commit_prefix("a" * 64) == "a" * 64
    for bad in ("", SHA[:6], "g" * 8, SHA + "0" * 30, "abc1234\n0", "abc 1234", "abc1234%"):
        with pytest.raises(ValueError, match="7 to 64 hex digits"):
            commit_prefix(bad)
    assert short_commit(SHA) == SHA[:12]
    assert is_commit(SHA) and is_commit("b" * 64)
    assert not is_commit(SHA[:39]) and not is_commit(SHA + "\n") and not is_commit(SHA.upper())


@given(st.text(max_size=70))
def test_what_the_commit_filter_accepts_is_lower_case_hex_only(text):
    from autobuild.domain.provenance import commit_prefix
    try:
        prefix = commit_prefix(text)
    except ValueError:
        return
    assert 7 <= len(prefix) <= 64 and set(prefix) <= set("0123456789abcdef")


def test_an_old_digest_state_without_newer_keys_still_restores():
    collector = ProvenanceCollector()
    collector.add_lines(LOG.splitlines())
    state = collector.state()
    restored = ProvenanceCollector.restore(json.loads(json.dumps(state)))
    assert restored.provenance == collector.provenance
