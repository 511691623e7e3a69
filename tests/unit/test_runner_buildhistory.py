"""The runner keeps buildhistory's files about the built image (outputs.collect_buildhistory):
only the known names, only regular files inside the build tree, bounded."""

from __future__ import annotations

import os

import pytest

from autobuild.domain import layout
from autobuild.runner import outputs
from autobuild.runner.outputs import collect_buildhistory
from tests.unit.test_runner_outputs import MACHINE, Job

TARGET = "core-image-minimal"


@pytest.fixture
def job(tmp_path):
    job = Job(tmp_path)
    yield job
    job.close()


def image_dir(job: Job, libc: str = "glibc", target: str = TARGET):
    # buildhistory.bbclass: images/${MACHINE_ARCH}/${TCLIBC}/${IMAGE_BASENAME}
    path = job.build / "buildhistory" / "images" / "qemux86_64" / libc / target
    path.mkdir(parents=True)
    return path


def collect(job: Job, target: str = TARGET) -> list[str]:
    return collect_buildhistory(job.work, "src/build", MACHINE, target, job.job, job.said.append)


def kept(job: Job) -> dict[str, str]:
    where = job.path / layout.BUILDHISTORY_DIR
    return {p.name: p.read_text() for p in where.iterdir()} if where.exists() else {}


def test_the_image_files_of_the_built_image_are_kept(job):
    image = image_dir(job)
    (image / "installed-package-sizes.txt").write_text("600\tKiB\tbusybox\n")
    (image / "image-info.txt").write_text("IMAGESIZE = 700\n")
    (image / "depends.dot").write_text("digraph depends {}\n")  # not one of the files kept
    image_dir(job, target="core-image-base")  # another image of the same build

    assert sorted(collect(job)) == ["image-info.txt", "installed-package-sizes.txt"]
    assert kept(job) == {"installed-package-sizes.txt": "600\tKiB\tbusybox\n",
                         "image-info.txt": "IMAGESIZE = 700\n"}
    mode = os.stat(job.path / layout.BUILDHISTORY_DIR / "image-info.txt").st_mode & 0o777
    assert mode == layout.FILE_MODE


def test_a_build_without_buildhistory_keeps_nothing_and_says_nothing(job):
    assert collect(job) == []
    assert kept(job) == {} and job.said == []


def test_links_are_not_followed_and_big_files_are_left_out(job, tmp_path, monkeypatch):
    secret = tmp_path / "secret"
    secret.write_text("the owner's private key")
    image = image_dir(job)
    (image / "image-info.txt").symlink_to(secret)
    (image / "installed-package-names.txt").mkdir()
    (image / "files-in-image.txt").write_text("x" * 200)
    (image / "build-id.txt").write_text("ok\n")
    monkeypatch.setattr(outputs, "MAX_BUILDHISTORY_FILE_BYTES", 100)

    assert collect(job) == ["build-id.txt"]
    assert kept(job) == {"build-id.txt": "ok\n"}
    assert any("files-in-image.txt" in line and "more than" in line for line in job.said)


def test_a_buildhistory_tree_linked_out_of_the_build_is_refused(job, tmp_path):
    outside = tmp_path / "outside" / "images" / "qemux86_64" / "glibc" / TARGET
    outside.mkdir(parents=True)
    (outside / "image-info.txt").write_text("IMAGESIZE = 1\n")
    job.build.mkdir(parents=True)
    (job.build / "buildhistory").symlink_to(tmp_path / "outside")

    assert collect(job) == []
    assert kept(job) == {}


def test_a_target_that_is_not_a_plain_name_finds_nothing(job):
    image_dir(job, target="x")
    assert collect(job, target="../x") == []
