"""What the New build form suggests, and what it starts from (domain/suggestions.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from autobuild.domain.jobs import Submission
from autobuild.domain.permissions import Permissions
from autobuild.domain.ports import RecentBuild
from autobuild.domain.requests import BuildRequest, Machine, RepoUrl, Target
from autobuild.domain.suggestions import BuildSuggestions, suggest
from tests.fakes import FakeJobRepository

OURS = "https://gitlab.example.com/bsp/poky.git"


def build(id_: int, owner: str = "alice", repo: str = OURS, machine: str = "qemux86-64",
          target: str = "core-image-minimal", ref: str = "main",
          kas: str | None = None) -> RecentBuild:
    return RecentBuild(id_, owner, repo, ref, machine, target, kas)


def values(suggestions):
    return [s.value for s in suggestions]


def test_own_values_come_first_newest_first_then_the_teams_each_once():
    own = [build(9, machine="imx8mm-evk"), build(5, machine="qemuarm64"),
           build(3, machine="imx8mm-evk")]
    team = [build(10, "bob", machine="raspberrypi4"), build(9, machine="imx8mm-evk"),
            build(8, "bob", machine="qemuarm64"), build(7, "carol", machine="beaglebone")]

    result = suggest("alice", own, team)

    assert values(result.machines) == ["imx8mm-evk", "qemuarm64", "raspberrypi4", "beaglebone"]
    assert [(s.owner, s.job_id) for s in result.machines] == [
        ("alice", 9), ("alice", 5), ("bob", 10), ("carol", 7)]


def test_each_list_is_bounded():
    team = [build(n, "bob", target=f"image-{n}", machine=f"m{n}") for n in range(100, 0, -1)]

    result = suggest("alice", [], team, limit=20)

    assert len(result.targets) == 20 and len(result.machines) == 20
    assert result.targets[0].value == "image-100"


def test_a_repository_url_with_credentials_or_a_query_is_never_offered():
    # Stored before the rules were as strict, or written to the database by hand.
    own = [build(4, repo="https://oauth2:glpat-secret@gitlab.example.com/bsp/poky.git"),
           build(3, repo="https://gitlab.example.com/bsp/poky.git?private_token=x"),
           build(2, repo="http://gitlab.example.com/bsp/poky.git"),
           build(1)]

    result = suggest("alice", own, [])

    assert values(result.repo_urls) == [OURS]
    assert result.last is not None and result.last["repo_url"] == ""  # not even pre-filled


def test_a_colleagues_repository_is_offered_only_on_a_host_you_already_clone_from():
    own = [build(1)]
    team = [build(5, "mallory", repo="https://evil.example.net/steal/tokens.git"),
            build(6, "mallory", repo="https://gitlab.example.com:8443/steal/tokens.git"),
            build(4, "bob", repo="https://gitlab.example.com/bob/meta-board.git")]

    result = suggest("alice", own, team)

    assert values(result.repo_urls) == [OURS, "https://gitlab.example.com/bob/meta-board.git"]
    assert values(suggest("alice", [], team).repo_urls) == []  # nothing chosen yet: none


def test_with_allowed_hosts_the_administrators_list_vouches_for_colleagues_repositories():
    team = [build(5, "bob", repo="https://git.corp.example/bob/meta-board.git"),
            build(4, "bob", repo="https://elsewhere.example/bob/x.git")]

    result = suggest("alice", [], team, allowed_hosts=frozenset({"git.corp.example"}))

    assert values(result.repo_urls) == ["https://git.corp.example/bob/meta-board.git"]


def test_the_form_starts_from_the_last_own_build_with_its_kas_file():
    own = [build(7, repo="https://gitlab.example.com/bsp/kas-board.git", ref="v2.1",
                 machine="imx8mm-evk", target="core-image-base", kas="kas/board.yml"),
           build(3)]

    result = suggest("alice", own, [build(8, "bob", target="other-image")])

    assert result.last == {"repo_url": "https://gitlab.example.com/bsp/kas-board.git",
                           "ref": "v2.1", "machine": "imx8mm-evk",
                           "target": "core-image-base", "kas_file": "kas/board.yml"}
    assert result.last_id == 7


def test_nobody_elses_build_is_the_last_one_and_no_build_means_no_prefill():
    result = suggest("alice", [], [build(8, "bob")])

    assert result.last is None and result.last_id is None


def test_builds_are_read_newest_first_and_only_those_the_user_may_see():
    class NoSeeingBob(Permissions):
        def may_see(self, owner, user):
            return owner != "bob"

    jobs = FakeJobRepository()
    for owner, machine in [("alice", "qemuarm"), ("bob", "bobs-board"), ("carol", "carols-board")]:
        request = BuildRequest.parse(OURS, "main", machine, "core-image-minimal")
        jobs.add(Submission(owner, request, datetime(2026, 1, 1, tzinfo=UTC)))

    result = BuildSuggestions(jobs, NoSeeingBob()).for_user("alice")

    assert values(result.machines) == ["qemuarm", "carols-board"]


def test_the_port_lists_newest_first_by_owner_and_bounded():
    jobs = FakeJobRepository()
    for owner in ["alice", "bob", "alice", "bob", "alice"]:
        request = BuildRequest.parse(OURS, "main", "qemux86-64", "core-image-minimal")
        jobs.add(Submission(owner, request, datetime(2026, 1, 1, tzinfo=UTC)))

    assert [b.id for b in jobs.recent_builds("alice", 2)] == [5, 3]
    assert [b.id for b in jobs.recent_builds(None, 10)] == [5, 4, 3, 2, 1]


_TEXT = st.text(st.sampled_from("abc:/@?#.-_ %x9Z"), max_size=30)
_URLS = st.one_of(_TEXT.map(lambda path: "https://" + path),
                  st.sampled_from([OURS, "https://u:p@gitlab.example.com/a.git",
                                   "https://gitlab.example.com/b.git"]))
_BUILDS = st.builds(build, st.integers(1, 10_000), st.sampled_from(["alice", "bob"]), _URLS,
                    _TEXT, _TEXT)


@given(own=st.lists(_BUILDS, max_size=30), team=st.lists(_BUILDS, max_size=30),
       limit=st.integers(1, 10))
def test_whatever_is_stored_only_acceptable_values_are_offered(own, team, limit):
    result = suggest("alice", own, team, limit=limit)

    for kind, parse in ((result.repo_urls, RepoUrl.parse), (result.machines, Machine.parse),
                        (result.targets, Target.parse)):
        assert len(kind) <= limit
        assert len(set(values(kind))) == len(kind)
        for suggestion in kind:
            parse(suggestion.value)  # raises if the form would refuse it
    assert all("@" not in s.value for s in result.repo_urls)
