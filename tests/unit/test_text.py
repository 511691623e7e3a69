"""first_lines: the first lines of a text, as splitlines gives them, one at a time."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from autobuild.domain.text import first_lines

BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@given(st.text(alphabet=st.sampled_from("ab \t" + BREAKS)) | st.text(), st.integers(0, 12))
def test_the_lines_are_those_of_splitlines(text, limit):
    assert list(first_lines(text, limit)) == text.splitlines()[:limit]


def test_lines_beyond_the_limit_are_never_cut_out():
    text = "a\n" * 1_000_000
    lines = first_lines(text, 3)
    assert list(itertools.islice(lines, 10)) == ["a", "a", "a"]
