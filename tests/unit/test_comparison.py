"""Two builds compared (domain/comparison.py): what changed from a to b, nothing for a build
and itself, the same answer mirrored when the builds swap places."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from autobuild.domain.buildstats import TimingDifference
from autobuild.domain.comparison import (
    CANDIDATE_SCAN, BuildComparisons, BuildFacts, Changed, PackageChange, SizeChange, artifact_key, compare,
    previous,
)
from autobuild.domain.provenance import Layer, Provenance
from autobuild.domain.jobs import Submission
from autobuild.domain.requests import BuildRequest
from tests.fakes import FakeWorld

SHA_A, SHA_B = "a" * 40, "b" * 40
REPO = "https://gitlab.example.com/team/poky.git"


def facts(job_id=1, **kwargs) -> BuildFacts:
    base = dict(repo_url=REPO, machine="qemux86-64", target="core-image-minimal",
                provenance=Provenance(SHA_A, (("DISTRO_VERSION", "1.0"),),
                                      (Layer("meta"), Layer("meta-standin", "main", SHA_A))),
                artifacts=(("core-image-minimal-qemux86-64-20260101120000.rootfs.bin", 1000),
                           ("core-image-minimal-qemux86-64.bin", 1000)),
                packages={"busybox": "1.36.1-r0", "base-files": "3.0.14-r0"},
                package_sizes={"busybox": 600, "base-files": 20}, image_size_kib=700)
    base.update(kwargs)
    return BuildFacts(job_id, **base)


def test_a_build_compared_with_itself_shows_nothing():
    result = compare(facts(1), facts(1))
    assert result.is_empty and result.packages_compared and result.sizes_compared


def test_a_package_change_between_two_commits_shows_what_an_engineer_asks_about():
    before = facts(1)
    after = facts(
        2, provenance=Provenance(SHA_B, (("DISTRO_VERSION", "1.1"),),
                                 (Layer("meta"), Layer("meta-standin", "main", SHA_B))),
        artifacts=(("core-image-minimal-qemux86-64-20260102080000.rootfs.bin", 1300),
                   ("core-image-minimal-qemux86-64.bin", 1300)),
        packages={"busybox": "1.36.2-r0", "base-files": "3.0.14-r0", "htop": "3.3.0-r0"},
        package_sizes={"busybox": 610, "base-files": 20, "htop": 150}, image_size_kib=870)

    result = compare(before, after)

    assert result.commit == Changed("commit", SHA_A, SHA_B)
    assert result.variables == (Changed("DISTRO_VERSION", "1.0", "1.1"),)
    assert result.layers == (Changed("meta-standin", f"main:{SHA_A}", f"main:{SHA_B}"),)
    # the dated names differ, the image is one: compared by its name without the date stamp
    assert result.artifacts == (SizeChange("core-image-minimal-qemux86-64.bin", 1000, 1300),
                                SizeChange("core-image-minimal-qemux86-64.rootfs.bin", 1000, 1300))
    assert result.artifacts[0].delta == 300
    assert result.image_size == SizeChange("IMAGESIZE", 700, 870)
    assert result.added == (PackageChange("htop", None, "3.3.0-r0", None, 150),)
    assert result.removed == ()
    assert result.changed == (PackageChange("busybox", "1.36.1-r0", "1.36.2-r0", 600, 610),)
    assert result.changed[0].kib_delta == 10
    assert result.different == ()


def test_builds_of_different_targets_are_compared_with_a_warning():
    result = compare(facts(1), facts(2, target="core-image-base", machine="qemuarm64"))
    assert result.different == (Changed("MACHINE", "qemux86-64", "qemuarm64"),
                                Changed("target", "core-image-minimal", "core-image-base"))


def test_packages_are_not_compared_when_one_build_listed_none():
    result = compare(facts(1), facts(2, packages=None, package_sizes=None))
    assert not result.packages_compared and not result.sizes_compared
    assert result.added == result.removed == result.changed == ()


def test_an_unknown_version_is_not_a_change_but_a_size_change_is():
    result = compare(facts(1), facts(2, packages={"busybox": None, "base-files": None},
                                     package_sizes={"busybox": 600, "base-files": 25}))
    assert result.changed == (PackageChange("base-files", "3.0.14-r0", None, 20, 25),)


def test_the_date_stamp_is_what_the_key_leaves_out():
    assert artifact_key("core-image-minimal-qemux86-64.rootfs-20260101120000.manifest") == \
        "core-image-minimal-qemux86-64.rootfs.manifest"
    assert artifact_key("core-image-minimal-qemux86-64-20260101120000.rootfs.bin") == \
        "core-image-minimal-qemux86-64.rootfs.bin"
    assert artifact_key("u-boot-qemux86-64.bin") == "u-boot-qemux86-64.bin"
    assert artifact_key("image-2026.bin") == "image-2026.bin"


# --- properties -----------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9+.-]{0,12}", fullmatch=True)
versions = st.one_of(st.none(), st.from_regex(r"[0-9][0-9.]{0,5}-r[0-9]", fullmatch=True))
shas = st.one_of(st.none(), st.sampled_from([SHA_A, SHA_B, "c" * 40]))
layers = st.lists(st.builds(Layer, names, st.one_of(st.none(), names), shas), max_size=4)
variables = st.lists(st.tuples(st.sampled_from(["DISTRO", "DISTRO_VERSION", "MACHINE"]), names),
                     max_size=3)
artifact_names = st.one_of(names.map(lambda n: n + ".bin"),
                           st.from_regex(r"img-20260101\d{6}\.rootfs\.bin", fullmatch=True))
build_facts = st.builds(
    BuildFacts, job_id=st.integers(1, 1000), repo_url=st.sampled_from([REPO, REPO + "x"]),
    machine=st.sampled_from(["qemux86-64", "qemuarm64"]),
    target=st.sampled_from(["core-image-minimal", "core-image-base"]),
    provenance=st.builds(Provenance, shas, variables.map(tuple), layers.map(tuple)),
    artifacts=st.lists(st.tuples(artifact_names, st.integers(0, 10**9)), max_size=6).map(tuple),
    artifacts_unlisted=st.integers(0, 10**6),
    packages=st.one_of(st.none(), st.dictionaries(names, versions, max_size=8)),
    package_sizes=st.one_of(st.none(), st.dictionaries(names, st.integers(0, 10**6), max_size=8)),
    image_size_kib=st.one_of(st.none(), st.integers(0, 10**7)))


@given(build_facts)
def test_any_build_compared_with_itself_is_empty(built):
    assert compare(built, built).is_empty


@given(build_facts, build_facts)
def test_swapping_the_builds_mirrors_the_comparison(a, b):
    assert compare(b, a) == compare(a, b).mirrored()
    assert compare(a, b).mirrored().mirrored() == compare(a, b)


@given(build_facts, build_facts)
def test_every_package_of_either_build_is_accounted_for(a, b):
    result = compare(a, b)
    if a.packages is None or b.packages is None:
        return
    added = {p.name for p in result.added}
    removed = {p.name for p in result.removed}
    assert added == b.packages.keys() - a.packages.keys()
    assert removed == a.packages.keys() - b.packages.keys()
    assert all(p.name in a.packages and p.name in b.packages for p in result.changed)


# --- stored builds ------------------------------------------------------------------------

MANIFEST = "core-image-minimal-qemux86-64.rootfs.manifest"


def _build(world: FakeWorld, ref="main", machine="qemux86-64", target="core-image-minimal"):
    return world.repo.add(Submission("alice", BuildRequest.parse(REPO, ref, machine, target),
                                     world.clock.now()))


def _end(world: FakeWorld, job, exit_code: int = 0) -> None:
    job.start(world.clock.now())
    job.finish(exit_code, world.clock.now())
    world.repo.save(job)


def test_stored_builds_are_compared_from_their_manifest_buildhistory_and_artifacts():
    world = FakeWorld()
    comparisons = BuildComparisons(world.repo, world.queries, world.files)
    a, b = _build(world), _build(world)
    world.files.artifacts[a.id] = {MANIFEST: b"busybox core2-64 1.36.1-r0\n", "x.bin": b"12"}
    world.files.artifacts[b.id] = {MANIFEST: b"busybox core2-64 1.36.2-r0\nhtop core2-64 3.3\n",
                                   "x.bin": b"1234"}
    world.files.buildhistory[a.id] = {"installed-package-sizes.txt": b"600\tKiB\tbusybox\n",
                                      "image-info.txt": b"DISTRO = poky\nIMAGESIZE = 700\n"}
    world.files.buildhistory[b.id] = {
        "installed-package-sizes.txt": b"610\tKiB\tbusybox\n150\tKiB\thtop\n",
        "image-info.txt": b"IMAGESIZE = 870\n"}

    result = comparisons.compare(a.id, b.id)

    assert result.added == (PackageChange("htop", None, "3.3", None, 150),)
    assert result.changed == (PackageChange("busybox", "1.36.1-r0", "1.36.2-r0", 600, 610),)
    assert result.image_size == SizeChange("IMAGESIZE", 700, 870)
    assert SizeChange("x.bin", 2, 4) in result.artifacts
    assert result.timing is None  # TIMING: filled in once buildstats are merged


def test_without_a_manifest_buildhistory_names_the_packages():
    world = FakeWorld()
    comparisons = BuildComparisons(world.repo, world.queries, world.files)
    a, b = _build(world), _build(world)
    world.files.buildhistory[a.id] = {"installed-package-names.txt": b"busybox\n"}
    world.files.buildhistory[b.id] = {"installed-package-names.txt": b"busybox\nhtop\n"}

    result = comparisons.compare(a.id, b.id)

    assert result.packages_compared
    assert [p.name for p in result.added] == ["htop"] and result.changed == ()


def test_the_builds_to_compare_with_are_those_of_the_same_repo_machine_and_target():
    world = FakeWorld()
    comparisons = BuildComparisons(world.repo, world.queries, world.files)
    first, _other_machine, second, _other_target, third, later = (
        _build(world), _build(world, machine="qemuarm64"), _build(world),
        _build(world, target="core-image-base"), _build(world), _build(world))
    for job in (first, second, third, later):
        _end(world, job)
    _build(world)  # pending: nothing to compare with yet

    found = comparisons.candidates(third)

    assert [job.id for job in found] == [later.id, second.id, first.id]  # newest first
    assert previous(third, found) == second  # the one just before it
    assert previous(later, comparisons.candidates(later)) == third
    assert previous(first, comparisons.candidates(first)) == later  # none older: the newest
    assert previous(first, []) is None


def test_a_pending_running_or_ended_build_is_offered_once_it_has_ended():
    """The oldest build has none older: the default was the newest candidate, even a build
    that had not run and so had no commit (the compare then said "another commit")."""
    world = FakeWorld()
    comparisons = BuildComparisons(world.repo, world.queries, world.files)
    oldest, pending, running, failed = (_build(world) for _ in range(4))
    running.start(world.clock.now())
    world.repo.save(running)
    _end(world, failed, exit_code=1)

    assert comparisons.candidates(oldest) == [failed]
    assert previous(oldest, comparisons.candidates(oldest)) == failed
    assert pending.id not in [job.id for job in comparisons.candidates(failed)]


def test_swapping_the_builds_swaps_their_timing_too():
    a = BuildFacts(job_id=1, repo_url=REPO, machine="qemux86-64", target="core-image-minimal")
    b = replace(a, job_id=2)
    result = replace(compare(a, b), timing_wall=(1800.0, 200.0), timing=(
        TimingDifference("linux-yocto", "do_compile", 960.0, None),))
    mirrored = result.mirrored()
    assert mirrored.timing_wall == (200.0, 1800.0)
    assert mirrored.timing == (TimingDifference("linux-yocto", "do_compile", None, 960.0),)
    assert mirrored.mirrored().timing_wall == result.timing_wall


def test_builds_of_other_targets_in_between_do_not_hide_the_earlier_build_of_the_same():
    world = FakeWorld()
    comparisons = BuildComparisons(world.repo, world.queries, world.files)
    first = _build(world)
    _end(world, first)
    for _ in range(CANDIDATE_SCAN + 1):  # a busy team builds other images meanwhile
        _build(world, target="core-image-base")
    second = _build(world)

    assert [job.id for job in comparisons.candidates(second)] == [first.id]
