"""ArtifactList: the first MAX_ARTIFACTS_LISTED artifacts by name, the rest counted."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from autobuild.domain.artifacts import MAX_ARTIFACTS_LISTED, ArtifactInfo, artifact_list

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@given(st.sets(st.from_regex(r"[a-z0-9.]{1,8}", fullmatch=True), max_size=40),
       st.integers(0, 50))
def test_the_first_names_are_listed_and_the_rest_counted(names, limit):
    listed = artifact_list((ArtifactInfo(name, 1, T0) for name in names), limit)
    assert [a.name for a in listed] == sorted(names)[:limit]
    assert len(listed) + listed.more == len(names)


def test_a_listing_is_a_list_and_compares_as_one():
    listed = artifact_list([ArtifactInfo("b", 1, T0), ArtifactInfo("a", 2, T0)])
    assert listed == [ArtifactInfo("a", 2, T0), ArtifactInfo("b", 1, T0)] and listed.more == 0


def test_the_default_limit_is_the_listing_limit():
    listed = artifact_list(ArtifactInfo(f"{i:05d}", 1, T0) for i in range(MAX_ARTIFACTS_LISTED + 3))
    assert len(listed) == MAX_ARTIFACTS_LISTED and listed.more == 3
