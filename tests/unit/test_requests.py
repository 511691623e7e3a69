import pytest

from autobuild.domain.requests import BuildRequest, GitRef, InvalidRequest, Machine, RepoUrl, Target


@pytest.mark.parametrize("url", [
    "https://gitlab.example.com/group/project.git",
    "https://gitlab.example.com:8443/group/sub/project",
    "https://127.0.0.1:4443/poky.git",
    "  https://git.example.com/a/b.git  ",
])
def test_good_repo_urls(url):
    assert RepoUrl.parse(url).value == url.strip()


@pytest.mark.parametrize("url,fragment", [
    ("http://gitlab.example.com/a.git", "https://"),
    ("HTTPS://gitlab.example.com/a.git", "https://"),
    ("git@gitlab.example.com:a/b.git", "https://"),
    ("ssh://gitlab.example.com/a.git", "https://"),
    ("file:///etc/passwd", "https://"),
    ("ext::sh -c touch% /tmp/pwned", "spaces"),
    ("https://oauth2:secret@gitlab.example.com/a.git", "token"),
    ("https://user@gitlab.example.com/a.git", "token"),
    ("https://gitlab.example.com/a.git?x=1", "query"),
    ("https://gitlab.example.com/a.git#frag", "query"),
    ("https://gitlab.example.com", "path"),
    ("https://gitlab.example.com/", "path"),
    ("https://gitlab.example.com/a/../b.git", ".."),
    ("https://-x.example.com/a.git", "host"),
    ("https://gitlab.example.com/a;b.git", "path"),
    ("https://gitlab.example.com/a b.git", "spaces"),
    ("https://gitlab.example.com:99999/a.git", ""),
    ("", "enter"),
])
def test_bad_repo_urls_are_refused_with_a_message(url, fragment):
    with pytest.raises(ValueError) as err:
        RepoUrl.parse(url)
    assert fragment in str(err.value)


def test_allowed_hosts_restrict_clones():
    allowed = frozenset({"gitlab.example.com"})
    assert RepoUrl.parse("https://GitLab.example.com/a.git", allowed)
    with pytest.raises(ValueError, match="gitlab.example.com"):
        RepoUrl.parse("https://github.com/a.git", allowed)


@pytest.mark.parametrize("ref", ["main", "release/kirkstone", "v1.0", "deadbeef",
                                 "0123456789abcdef0123456789abcdef01234567", "feature-x_y.z"])
def test_good_refs(ref):
    assert GitRef.parse(ref).value == ref


@pytest.mark.parametrize("ref", ["-x", "--upload-pack=evil", "a..b", "a b", "a~1", "a^", "a:b",
                                 "a?", "a*", "a[", "a\\b", "/a", "a/", "a//b", ".a", "a/.b",
                                 "a.lock", "a/b.lock/c", "@", "a@{1}", "a.", "", "a\x00b", "a\tb",
                                 "main;id", "$(id)", "`id`", "a|b", "a&b", "a<b", "a>b",
                                 "a(b)", "a'b", "a\"b", "a!b"])
def test_bad_refs(ref):
    with pytest.raises(ValueError):
        GitRef.parse(ref)


def test_commit_ids_are_recognised():
    assert GitRef.parse("a1b2c3d").is_commit
    assert not GitRef.parse("main").is_commit


@pytest.mark.parametrize("machine", ["qemux86-64", "raspberrypi4-64", "imx8mm-lpddr4-evk", "x"])
def test_good_machines(machine):
    assert Machine.parse(machine).value == machine


@pytest.mark.parametrize("machine", ["-qemu", "a/b", "a;b", "a b", "$(id)", "", "a" * 65, "a`b`"])
def test_bad_machines(machine):
    with pytest.raises(ValueError):
        Machine.parse(machine)


@pytest.mark.parametrize("target", ["core-image-minimal", "mc:second:core-image-base",
                                    "linux-yocto", "gcc-cross-x86_64"])
def test_good_targets(target):
    assert Target.parse(target).value == target


@pytest.mark.parametrize("target", ["-c", "virtual/kernel", "a;b", "a b", "a|b", "a&b", ""])
def test_bad_targets(target):
    with pytest.raises(ValueError):
        Target.parse(target)


def test_build_request_reports_every_bad_field_at_once():
    with pytest.raises(InvalidRequest) as err:
        BuildRequest.parse("http://x/a.git", "-x", "a/b", "")
    assert set(err.value.errors) == {"repo_url", "ref", "machine", "target"}


def test_build_request_keeps_clean_values():
    req = BuildRequest.parse(" https://g.example.com/a.git ", " main ", "qemux86-64", "core-image-minimal")
    assert (str(req.repo_url), str(req.ref)) == ("https://g.example.com/a.git", "main")


def test_a_full_commit_id_is_a_ref_sha1_or_sha256_and_nothing_trails_it():
    from autobuild.domain.requests import GitRef
    for commit in ("0f14567", "0f14567a2c1d6e0e7e1d2c3b4a5968778695a4b3", "ab" * 32):
        assert GitRef.parse(commit).is_commit
    assert not GitRef.parse("release-1").is_commit
    with pytest.raises(ValueError):
        GitRef.parse("0f14567\n0")
