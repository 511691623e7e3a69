"""The runner collects the image manifest and the SPDX output the way Yocto deploys them:
a dated file and a link to it, both copied as regular files."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile

import pytest

from autobuild.domain.manifests import count_packages

from .conftest import MACHINE, TARGET
from .test_runner import assert_copies_of_deploy, assert_finished

SBOM_PATTERNS = ["*.manifest", "*.spdx.json", "*.spdx.index.json", "*.spdx.tar.zst"]
LINK = f"{TARGET}-{MACHINE}.rootfs"


def test_a_build_collects_the_manifest_and_the_spdx_files_as_yocto_names_them(runner, git):
    build = runner.build(1, git.url, "main", patterns=["*.bin", *SBOM_PATTERNS])

    assert_finished(build, "SUCCESS", 0)
    names = set(build.artifacts)
    for suffix in (".manifest", ".spdx.json", ".spdx.index.json", ".spdx.tar.zst"):
        assert f"{LINK}{suffix}" in names, suffix  # Yocto's link, resolved
        dated = [n for n in names if n.startswith(f"{LINK}-") and n.endswith(suffix)
                 and n[len(LINK) + 1:-len(suffix)].isdigit()]
        assert len(dated) == 1, (suffix, names)  # the file it points to
        assert (build.artifacts[dated[0]].read_bytes()
                == build.artifacts[f"{LINK}{suffix}"].read_bytes())
    assert_copies_of_deploy(build)
    manifest = build.artifacts[f"{LINK}.manifest"].read_text()
    assert count_packages(manifest) == len(manifest.splitlines()) == 16
    assert "busybox core2-64 1.36.1-r0" in manifest.splitlines()
    assert "base-files qemux86_64 3.0.14-r0" in manifest.splitlines()
    spdx = json.loads(build.artifacts[f"{LINK}.spdx.json"].read_text())
    assert spdx["spdxVersion"] == "SPDX-2.2"
    sums = (build.job_dir / "artifacts.sha256").read_text()
    assert f"  {LINK}.spdx.tar.zst\n" in sums


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")
def test_the_spdx_archive_is_a_zstd_tarball_of_the_documents(runner, git):
    build = runner.build(1, git.url, "main", patterns=SBOM_PATTERNS)

    assert_finished(build, "SUCCESS", 0)
    tar_bytes = subprocess.run(["zstd", "-dc", str(build.artifacts[f"{LINK}.spdx.tar.zst"])],
                               capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        members = tar.getnames()
    assert "index.json" in members and any(m.endswith(".spdx.json") for m in members)


def test_without_the_sbom_patterns_nothing_of_it_is_collected(runner, git):
    build = runner.build(1, git.url, "main", patterns=["*.bin", "*.mtd"])

    assert_finished(build, "SUCCESS", 0)
    assert not [n for n in build.artifacts if ".manifest" in n or ".spdx" in n]
