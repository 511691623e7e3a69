"""What a build really built, from its log: the commit and bitbake's Build Configuration."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autobuild.domain.digest import LogDigest
from autobuild.domain.provenance import Layer, ProvenanceCollector
from tests.unit.test_digest import pieces

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
    digest = LogDigest()
    for piece in pieces(LOG.encode(), cuts):
        digest.feed(piece)
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


# --- kas: the kas file and the repositories kas checked out -------------------------------------

KAS_LOG = f"""\
==> Commit {SHA}
==> kas build kas.yml: bitbake core-image-minimal (MACHINE=qemux86-64)
==> Kas file kas.yml
==> Kas repo project {SHA} (this repository)
==> Kas repo meta-oe {REV} https://git.openembedded.org/meta-openembedded
==> Kas repo poky {REV} /srv/mirror/poky
==> Kas file other.yml
""" + LOG


def test_the_kas_file_and_each_repository_with_its_commit_are_read():
    from autobuild.domain.provenance import KasRepo
    built = collected(KAS_LOG)
    assert built.kas_file == "kas.yml"  # the first one counts
    assert built.kas_repos == (KasRepo("project", SHA, None),
                               KasRepo("meta-oe", REV, "https://git.openembedded.org/meta-openembedded"),
                               KasRepo("poky", REV, "/srv/mirror/poky"))
    assert built.commit == SHA and built.layers  # the rest as before


def test_the_build_configuration_that_kas_logs_is_read_as_bitbake_printed_it():
    logged = "".join(f"2026-12-02 02:57:40 - INFO     - {line}\n" if not line.startswith("==>")
                     else f"{line}\n" for line in KAS_LOG.splitlines())
    built = collected(logged)
    assert built == collected(KAS_LOG)
    assert ("DISTRO_VERSION", "5.0.4") in built.variables and built.layers


@pytest.mark.parametrize("line", [
    f"==> Kas repo x {REV} https://user:pw@example.com/x.git",  # credentials are never shown
    f"==> Kas repo x {REV} https://token@example.com/x.git",
    f"==> Kas repo x {REV} https://example.com/a b",
    f"==> Kas repo <b>x</b> {REV} https://example.com/x.git",
    f"==> Kas repo x {REV[:12]} https://example.com/x.git",
    f"==> Kas repo x {REV} javascript:alert(1)",
    f"==> Kas repo x {REV} javascript://x/%0aalert(1)",  # only the schemes git clones
    f"==> Kas repo x {REV} https://example.com/\x1b]0;owned\x07",  # no escapes for a terminal
    "==> Kas repo x",
    "==> Kas file ../../etc/passwd", "==> Kas file a b.yml", "==> Kas file ",
])
def test_a_kas_line_the_runner_cannot_have_printed_is_ignored(line):
    assert collected(line + "\n").is_empty


def test_the_runner_prints_a_kas_repo_line_without_credentials_and_reads_it_back():
    from autobuild.domain.provenance import KasRepo, kas_repo_line, without_userinfo
    line = kas_repo_line("meta-x", REV, "https://ci:glpat-secret@gitlab.example.com/a/b.git")
    assert line == f"==> Kas repo meta-x {REV} https://gitlab.example.com/a/b.git"
    assert collected(f"==> Kas file kas.yml\n{line}\n").kas_repos == (
        KasRepo("meta-x", REV, "https://gitlab.example.com/a/b.git"),)
    assert kas_repo_line("own", SHA, None) == f"==> Kas repo own {SHA} (this repository)"
    assert kas_repo_line("bad name", SHA, None) is None
    assert kas_repo_line("x", "HEAD", None) is None
    assert kas_repo_line("q", REV, "https://h/x.git?private_token=s#f") == \
        f"==> Kas repo q {REV} https://h/x.git"
    assert without_userinfo("ssh://git@host:22/x") == "ssh://host:22/x"
    assert without_userinfo("https://h/p@q") == "https://h/p@q"


@given(st.text(max_size=120))
def test_no_kas_line_yields_a_url_with_credentials_or_spaces(text):
    built = collected(f"==> Kas repo x {REV} {text}\n==> Kas file {text}\n")
    from urllib.parse import urlsplit
    for repo in built.kas_repos:
        assert repo.url is None or (not any(c.isspace() for c in repo.url)
                                    and "@" not in urlsplit(repo.url).netloc)
    assert built.kas_file is None or (" " not in built.kas_file and ".." not in built.kas_file)


def test_kas_provenance_is_kept_in_the_digest_and_an_old_digest_without_it_restores():
    digest = LogDigest()
    digest.feed(KAS_LOG.encode())
    again = LogDigest.parse(digest.to_json())
    assert again.provenance == collected(KAS_LOG)
    old = json.loads(digest.to_json())
    del old["provenance"]["kas_file"], old["provenance"]["kas_repos"]  # as written before
    restored = LogDigest.parse(json.dumps(old).encode()).provenance
    assert (restored.kas_file, restored.kas_repos) == (None, ())
    assert restored.commit == SHA and restored.layers == collected(KAS_LOG).layers


@pytest.mark.parametrize("change", [
    {"kas_file": "../x.yml"}, {"kas_file": 3}, {"kas_repos": "x"},
    {"kas_repos": [["x", "nope", None]]}, {"kas_repos": [["x", REV, "https://u:p@h/x"]]},
    {"kas_repos": [["x", REV]]}, {"kas_repos": [["x", REV, None]] * 51},
])
def test_forged_kas_provenance_in_a_digest_is_refused(change):
    digest = LogDigest()
    digest.feed(KAS_LOG.encode())
    value = json.loads(digest.to_json())
    value["provenance"].update(change)
    with pytest.raises(ValueError):
        LogDigest.parse(json.dumps(value).encode())


# --- kas repo lines count only in the run right after the runner's Kas file line ----------------

FORGED = f"==> Kas repo meta-security {'c' * 40} https://git.yoctoproject.org/meta-security"


def test_a_kas_repo_line_printed_later_by_the_build_is_not_provenance():
    """Any task of any layer can print a line (bb.plain); the runner prints its Kas repo lines
    right after the Kas file line, before kas build starts."""
    built = collected(KAS_LOG + "NOTE: Executing Tasks\n" + FORGED + "\n")
    assert built.kas_repos == collected(KAS_LOG).kas_repos
    assert "meta-security" not in [repo.name for repo in built.kas_repos]


@pytest.mark.parametrize("log", [
    FORGED + "\n==> Kas file kas.yml\n",  # before the Kas file line
    "==> Kas file kas.yml\nkas: some output\n" + FORGED + "\n",  # after another line
    "==> Kas file kas.yml\n==> Kas file other.yml\n" + FORGED + "\n",  # a second Kas file
    f"==> Kas file ../x.yml\n{FORGED}\n",  # a Kas file line the runner cannot have printed
])
def test_kas_repo_lines_outside_the_runners_run_are_ignored(log):
    assert collected(log).kas_repos == ()


def test_the_run_of_kas_repo_lines_continues_across_digest_saves():
    """The runner digests the log piece by piece and keeps its state in between."""
    digest = LogDigest()
    digest.feed(b"==> Kas file kas.yml\n")
    digest = LogDigest.parse(digest.to_json())
    digest.feed(f"==> Kas repo project {SHA} (this repository)\n".encode())
    digest = LogDigest.parse(digest.to_json())
    digest.feed(f"NOTE: Executing Tasks\n{FORGED}\n".encode())
    digest = LogDigest.parse(digest.to_json())
    digest.feed(f"{FORGED}\n".encode())
    assert [repo.name for repo in digest.provenance.kas_repos] == ["project"]


def test_a_digest_written_before_the_run_was_kept_restores_closed():
    digest = LogDigest()
    digest.feed(b"==> Kas file kas.yml\n")
    old = json.loads(digest.to_json())
    del old["provenance"]["in_kas_repos"]  # as written before
    restored = LogDigest.parse(json.dumps(old).encode())
    restored.feed(f"{FORGED}\n".encode())
    assert restored.provenance.kas_file == "kas.yml" and restored.provenance.kas_repos == ()


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_digest_with_a_bad_kas_repos_flag_is_refused(value):
    state = ProvenanceCollector().state() | {"in_kas_repos": value}
    with pytest.raises(ValueError):
        ProvenanceCollector.restore(state)


def test_the_kas_repos_flag_without_a_kas_file_is_refused():
    with pytest.raises(ValueError):
        ProvenanceCollector.restore(ProvenanceCollector().state() | {"in_kas_repos": True})


def test_values_a_build_prints_show_as_they_are_to_a_colleague():
    """A value in the Build Configuration is the build's to print: a bidi override would show
    another DISTRO_VERSION or revision than there is, an escape would act on a terminal."""
    collector = ProvenanceCollector()
    collector.add_lines(["Build Configuration:", 'DISTRO_VERSION = "5.0\u202e1-rc"',
                         'meta = "scarthgap\x1bc:' + REV + '"', ""])

    provenance = collector.provenance

    assert provenance.variables == (("DISTRO_VERSION", "5.0?1-rc"),)
    assert provenance.layers == (Layer("meta", "scarthgap?c", REV),)


def test_texts_of_a_forged_digest_show_as_they_are_to_a_colleague():
    state = ProvenanceCollector().state()
    state["variables"] = [["MACHINE\u202e", "qemu\x9b2Jx86"]]
    state["layers"] = [["meta\u2066", "main\x07", REV]]

    provenance = ProvenanceCollector.restore(state).provenance

    assert provenance.variables == (("MACHINE?", "qemu?2Jx86"),)
    assert provenance.layers == (Layer("meta?", "main?", REV),)
