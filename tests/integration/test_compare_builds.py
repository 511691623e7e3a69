"""Two real builds of the stand-in with a package change between their commits, buildhistory
on: the runner keeps buildhistory's image files, and the comparison read back through the
service's adapters shows the package added, the version changed and the image grown."""

from __future__ import annotations

from datetime import UTC, datetime

from autobuild.adapters.job_files import JobDirectory
from autobuild.domain import layout
from autobuild.domain.comparison import BuildComparisons
from autobuild.domain.jobs import Submission
from autobuild.domain.queries import JobQueries
from autobuild.domain.requests import BuildRequest
from tests.fakes import FakeJobRepository
from tests.support.standin import (
    commit_files, commit_packages, create_kas_repo, create_standin_repo, enable_buildhistory,
)

from .conftest import MACHINE, TARGET
from .test_runner import assert_finished

PATTERNS = ["*.bin", "*.manifest"]
IMAGE = f"{TARGET}-{MACHINE}.rootfs.bin"  # the dated image's name without its date stamp


def test_a_package_change_between_two_commits_shows_in_the_comparison(runner, git, jobs_root):
    bare = git.server.root / "poky-compare.git"
    create_standin_repo(bare)
    url = git.server.url("poky-compare.git")
    first_sha = enable_buildhistory(bare)
    first = runner.build(1, url, "main", patterns=PATTERNS)
    second_sha = commit_packages(bare, {"htop": "core2-64 3.3.0-r0",
                                        "busybox": "core2-64 1.36.2-r0"}, "image: add htop")
    second = runner.build(2, url, "main", patterns=PATTERNS)

    for build in (first, second):
        assert_finished(build, "SUCCESS", 0)
    kept = {p.name for p in (second.job_dir / layout.BUILDHISTORY_DIR).iterdir()}
    assert set(layout.BUILDHISTORY_IMAGE_FILES) <= kept
    # the real layout, in the build tree: images/<MACHINE_ARCH>/<TCLIBC>/<image>/
    assert (second.job_dir / "work/src/build/buildhistory/images/qemux86_64/glibc" / TARGET
            / "installed-package-sizes.txt").is_file()

    jobs = FakeJobRepository()
    for _ in range(2):
        jobs.add(Submission(runner.owner, BuildRequest.parse(url, "main", MACHINE, TARGET),
                            datetime.now(UTC)))
    files = JobDirectory(jobs_root)
    result = BuildComparisons(jobs, JobQueries(jobs, files), files).compare(1, 2)

    assert result.commit is not None
    assert (result.commit.before, result.commit.after) == (first_sha, second_sha)
    assert [(p.name, p.before, p.after) for p in result.added] == [("htop", None, "3.3.0-r0")]
    assert result.added[0].after_kib and result.added[0].after_kib > 0
    assert [(p.name, p.before, p.after) for p in result.changed] == [
        ("busybox", "1.36.1-r0", "1.36.2-r0")]
    assert result.removed == ()
    assert result.sizes_compared and result.image_size is not None
    assert result.image_size.delta and result.image_size.delta > 0
    grown = {c.name: c for c in result.artifacts}[IMAGE]
    assert grown.delta and grown.delta > 0
    assert [c.name for c in result.layers] == ["meta-standin"]


def test_a_build_without_buildhistory_keeps_none_and_its_manifest_is_unchanged(runner, git):
    build = runner.build(1, git.url, "main", patterns=PATTERNS)

    assert_finished(build, "SUCCESS", 0)
    assert not (build.job_dir / layout.BUILDHISTORY_DIR).exists()
    assert not (build.job_dir / "work/src/build/buildhistory").exists()
    manifest = build.artifacts[f"{TARGET}-{MACHINE}.rootfs.manifest"].read_text()
    assert len(manifest.splitlines()) == 16 and "htop" not in manifest


KAS_WITH_BUILDHISTORY = """\
header:
  version: 14
machine: qemuarm64
target: kas-default-image
repos:
  standin:
local_conf_header:
  buildhistory: |
    INHERIT += "buildhistory"
    BUILDHISTORY_COMMIT = "0"
"""


def test_a_kas_build_with_buildhistory_in_local_conf_header_keeps_it(runner, git):
    bare = git.server.root / "kas-buildhistory.git"
    create_kas_repo(bare)
    commit_files(bare, {"kas.yml": KAS_WITH_BUILDHISTORY}, "kas: keep buildhistory")

    build = runner.build(1, git.server.url("kas-buildhistory.git"), "main",
                         machine="genericarm64", target="core-image-base", patterns=PATTERNS)

    assert_finished(build, "SUCCESS", 0)
    # kas's build directory is TOPDIR: work/build/buildhistory/images/genericarm64/glibc/...
    assert (build.job_dir / "work/build/buildhistory/images/genericarm64/glibc/core-image-base"
            / "image-info.txt").is_file()
    kept = build.job_dir / layout.BUILDHISTORY_DIR
    sizes = (kept / layout.INSTALLED_PACKAGE_SIZES).read_text().splitlines()
    assert len(sizes) == 16 and all(line.split("\t")[1] == "KiB" for line in sizes)
    assert "IMAGESIZE = " in (kept / layout.IMAGE_INFO).read_text()
