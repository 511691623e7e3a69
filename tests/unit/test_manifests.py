"""The image manifest: which artifact is the build's, and how many packages it lists."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from autobuild.domain.manifests import (
    MAX_MANIFEST_BYTES, PackageCount, choose_manifest, count_packages,
)
from tests.fakes import FakeWorld

SCARTHGAP = """\
base-files qemux86_64 3.0.14-r0
busybox core2-64 1.36.1-r0
kernel-6.6.23-yocto-standard qemux86_64 6.6.23+git0+4a0a5ef2c1-r0
netbase all 1:6.4-r0
update-rc.d all 0.8+git0+b8f9501050-r0
"""


def test_each_line_of_a_yocto_manifest_is_one_package():
    assert count_packages(SCARTHGAP) == 5
    assert count_packages(SCARTHGAP.replace("\n", "\r\n")) == 5


def test_blank_comment_and_malformed_lines_are_not_counted_and_duplicates_count_once():
    text = ("\n   \n# Package Arch Version\nbusybox core2-64 1.36.1-r0\n"
            "busybox core2-64 1.36.1-r0\n"  # listed twice: one package
            "only-two fields\nfour fields are too many\n-dash core2-64 1.0\n"
            "tabbed\tcore2-64\t1.0-r0\n  padded core2-64 2.0  \nbad\x00name core2-64 1.0\n"
            "caf\u00e9 all 1.0\n")
    assert count_packages(text) == 3  # busybox, tabbed, padded
    assert count_packages("") == 0


@given(st.text())
def test_any_text_gives_a_count_and_never_raises(text):
    count = count_packages(text)
    assert 0 <= count <= len(text.splitlines())


@given(st.binary())
def test_any_bytes_decoded_as_the_service_does_give_a_count(data):
    assert count_packages(data.decode("utf-8", errors="replace")) >= 0


@given(st.lists(st.from_regex(r"[a-z0-9][a-z0-9+.-]{0,20}", fullmatch=True), max_size=30))
def test_every_distinct_well_formed_package_is_counted(names):
    text = "".join(f"{name} core2-64 1.0-r0\n" for name in names)
    assert count_packages(text) == len(set(names))


def test_the_link_name_is_chosen_over_the_dated_manifests_and_other_images():
    names = ["core-image-minimal-qemux86-64.rootfs-20260101120000.manifest",
             "core-image-minimal-qemux86-64.rootfs.manifest",
             "core-image-minimal-initramfs-qemux86-64.rootfs.manifest",
             "core-image-minimal-qemux86-64.rootfs.spdx.json", "image.bin"]
    assert choose_manifest(names, "core-image-minimal", "qemux86-64") == \
        "core-image-minimal-qemux86-64.rootfs.manifest"


def test_before_nanbield_the_link_has_no_rootfs_suffix():
    names = ["core-image-minimal-qemux86-64-20220101120000.rootfs.manifest",
             "core-image-minimal-qemux86-64.manifest"]
    assert choose_manifest(names, "core-image-minimal", "qemux86-64") == \
        "core-image-minimal-qemux86-64.manifest"


def test_without_a_link_the_newest_dated_manifest_of_the_image_then_any():
    dated = ["core-image-minimal-qemux86-64.rootfs-20260101120000.manifest",
             "core-image-minimal-qemux86-64.rootfs-20260102120000.manifest"]
    assert choose_manifest(dated, "core-image-minimal", "qemux86-64") == dated[1]
    others = ["my-image-qemux86-64.rootfs-20260101120000.manifest", "x.manifest"]
    assert choose_manifest(others, "core-image-minimal", "qemux86-64") == "x.manifest"
    assert choose_manifest(["image.bin", "manifest.txt"], "core-image-minimal", "q") is None


# --- the query, on the fake files --------------------------------------------------------------

MANIFEST = "core-image-minimal-qemux86-64.rootfs.manifest"


def world_with(artifacts: dict[str, bytes]) -> FakeWorld:
    world = FakeWorld()
    job = world.commands.submit("alice", "https://git.example.com/bsp/poky.git", "main",
                                "qemux86-64", "core-image-minimal")
    world.files.artifacts[job.id] = artifacts
    return world


def test_the_query_counts_the_packages_of_the_chosen_manifest():
    world = world_with({MANIFEST: SCARTHGAP.encode(), "image.bin": b"x",
                        "core-image-minimal-qemux86-64.rootfs-20260101.manifest": b"a b c\n"})
    assert world.queries.packages(1) == PackageCount(5, MANIFEST)


def test_no_manifest_an_empty_one_a_binary_one_and_a_too_big_one():
    assert world_with({"image.bin": b"x"}).queries.packages(1) is None
    assert world_with({MANIFEST: b""}).queries.packages(1) == PackageCount(0, MANIFEST)
    assert world_with({MANIFEST: bytes(range(256)) * 4}).queries.packages(1) == \
        PackageCount(0, MANIFEST)
    big = b"busybox core2-64 1.0\n" * (MAX_MANIFEST_BYTES // 21 + 1)
    assert world_with({MANIFEST: big}).queries.packages(1) is None
