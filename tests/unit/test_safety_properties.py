"""Properties of the two guards every request passes: artifact names and build parameters."""

import posixpath
from pathlib import PurePosixPath

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from autobuild.domain.artifacts import ArtifactNotFound, is_valid_pattern, resolve_artifact_path
from autobuild.domain.printable import printable
from autobuild.domain.requests import GitRef, Machine, RepoUrl, Target

ARTIFACTS = PurePosixPath("/srv/autobuild/jobs/7/artifacts")
nasty_names = st.one_of(
    st.text(),
    st.text(alphabet="./\\\x00%2e-abc~ ", max_size=30),
    st.lists(st.sampled_from(["..", ".", "", "etc", "passwd", "%2e%2e", "\x00", "a"]), max_size=6)
    .map("/".join),
)


@given(nasty_names)
@example("../evil")
@example("%2e%2e/x")
@example("/etc/passwd")
@example("a\x00b")
@example("..")
@example(".")
def test_resolved_artifact_never_leaves_the_artifacts_dir(name):
    try:
        path = resolve_artifact_path(ARTIFACTS, name)
    except ArtifactNotFound:
        return
    normalized = PurePosixPath(posixpath.normpath(str(path)))
    assert normalized.parent == ARTIFACTS
    assert path.name == name and path == normalized


option_like = st.builds(lambda tail: "-" + tail, st.text(max_size=40))


@given(option_like)
@example("--upload-pack=touch /tmp/pwned")
@example("-c")
@example("--")
def test_no_option_like_string_passes_any_validator(value):
    for parse in (GitRef.parse, Machine.parse, Target.parse, RepoUrl.parse):
        with pytest.raises(ValueError):
            parse(value)


SHELL_META = set(";&|$`<>()\\\"' \t\n*?{}!#~")


@given(st.text(max_size=60))
def test_accepted_machine_and_target_carry_no_shell_metacharacters(value):
    for parse in (Machine.parse, Target.parse):
        try:
            accepted = parse(value).value
        except ValueError:
            continue
        assert not (set(accepted) & SHELL_META) and "/" not in accepted
        assert not accepted.startswith("-")


@given(st.text(max_size=80))
def test_accepted_refs_follow_check_ref_format(value):
    try:
        ref = GitRef.parse(value).value
    except ValueError:
        return
    assert not ref.startswith("-") and ".." not in ref and "@{" not in ref
    assert not any(ch.isspace() or ord(ch) < 0x20 for ch in ref)


@given(st.text(max_size=80))
def test_accepted_urls_are_https_without_credentials(value):
    try:
        url = RepoUrl.parse(value).value
    except ValueError:
        return
    assert url.startswith("https://") and "@" not in url.split("/")[2]
    assert "?" not in url and "#" not in url


@given(st.text(max_size=30))
def test_valid_artifact_patterns_are_plain_globs(pattern):
    if is_valid_pattern(pattern):
        assert "/" not in pattern and not pattern.startswith(("-", "."))


@pytest.mark.parametrize("name", ["core-image\u202egpj.wic", "image\x9b2J.wic", "a\u200bb.wic",
                                  "a\tb.wic", "a\x1bcb.wic", "a\u2066b\u2069.wic"])
def test_a_name_that_would_not_show_as_it_is_is_no_artifact(name):
    """A build names its files: a colleague must see on the page and in a terminal the name
    that is there (no escape sequence, no bidi override showing it reversed)."""
    with pytest.raises(ArtifactNotFound):
        resolve_artifact_path(ARTIFACTS, name)


@given(st.text(max_size=40))
def test_an_artifact_name_shows_as_it_is(name):
    try:
        resolve_artifact_path(ARTIFACTS, name)
    except ArtifactNotFound:
        return
    assert printable(name) == name
