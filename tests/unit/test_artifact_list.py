"""ArtifactList: the first MAX_ARTIFACTS_LISTED artifacts by name, the rest counted."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from autobuild.domain.artifacts import MAX_ARTIFACTS_LISTED, ArtifactInfo, artifact_list

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@given(st.sets(st.from_regex(r"[a-z0-9][a-z0-9.]{0,7}", fullmatch=True), max_size=40),
       st.integers(0, 50))
def test_the_first_names_are_listed_and_the_rest_counted(names, limit):
    listed = artifact_list(names, lambda name: ArtifactInfo(name, 1, T0), limit)
    assert [a.name for a in listed] == sorted(names)[:limit]
    assert len(listed) + listed.more == len(names)


@given(st.sets(st.from_regex(r"[a-z0-9][a-z0-9.]{0,7}", fullmatch=True), max_size=40),
       st.sets(st.from_regex(r"[a-z0-9][a-z0-9.]{0,7}", fullmatch=True), max_size=40),
       st.integers(0, 50))
def test_files_that_are_not_artifacts_are_skipped_and_only_names_not_looked_at_counted(
        artifacts, others, limit):
    others -= artifacts
    looked: list[str] = []

    def look(name):
        looked.append(name)
        return ArtifactInfo(name, 1, T0) if name in artifacts else None

    names = [*artifacts, *others, "../x", "a\x1b[2J"]
    listed = artifact_list(names, look, limit)
    assert [a.name for a in listed] == sorted(artifacts)[:limit]
    assert "../x" not in looked and "a\x1b[2J" not in looked  # never a plain name
    assert looked == sorted(looked)
    if len(listed) < limit:
        assert listed.more == 0  # every name was looked at
    elif limit == 0:
        assert listed.more == len(names) and not looked
    else:  # cut at the last artifact listed: every name after it is counted, unseen
        assert looked[-1] == listed[-1].name
        assert listed.more == sum(1 for name in names if name > looked[-1])


def test_a_listing_is_a_list_and_compares_as_one():
    sizes = {"b": 1, "a": 2}
    listed = artifact_list(sizes, lambda name: ArtifactInfo(name, sizes[name], T0))
    assert listed == [ArtifactInfo("a", 2, T0), ArtifactInfo("b", 1, T0)] and listed.more == 0


def test_the_default_limit_is_the_listing_limit():
    names = [f"{i:05d}" for i in range(MAX_ARTIFACTS_LISTED + 3)]
    listed = artifact_list(names, lambda name: ArtifactInfo(name, 1, T0))
    assert len(listed) == MAX_ARTIFACTS_LISTED and listed.more == 3
