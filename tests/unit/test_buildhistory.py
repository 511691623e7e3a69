"""buildhistory's image files read back (domain/buildhistory.py) and the manifest's versions
(manifests.parse_manifest): what buildhistory.bbclass writes is understood, anything else is
skipped, nothing raises."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from autobuild.domain.buildhistory import (
    image_size_kib, parse_image_info, parse_package_names, parse_package_sizes,
)
from autobuild.domain.manifests import count_packages, parse_manifest

# As buildhistory_get_installed writes them (awk '{print $2 "\tKiB\t" $1}' | sort -n -r).
SIZES = "1224\tKiB\tlibc6\n600\tKiB\tbusybox\n20\tKiB\tbase-files\n0\tKiB\tpackagegroup-core-boot\n"
INFO = """\
DISTRO = poky
DISTRO_VERSION = 5.0.3
USER_CLASSES = buildstats
IMAGE_FEATURES = debug-tweaks
IMAGE_LINGUAS = 
IMAGE_INSTALL = packagegroup-core-boot
IMAGESIZE = 6212
"""


def test_package_sizes_names_and_image_info_as_buildhistory_writes_them():
    assert parse_package_sizes(SIZES) == {"libc6": 1224, "busybox": 600, "base-files": 20,
                                          "packagegroup-core-boot": 0}
    assert parse_package_names("busybox\nlibc6\n\nbusybox\n") == ["busybox", "libc6"]
    info = parse_image_info(INFO)
    assert info["DISTRO_VERSION"] == "5.0.3" and info["IMAGE_LINGUAS"] == ""
    assert image_size_kib(info) == 6212


def test_malformed_lines_are_skipped():
    assert parse_package_sizes("x\tKiB\tbusybox\n12 MiB busybox\n-3\tKiB\tx\n"
                               "7 KiB ../etc\n5\tKiB\tok\n") == {"ok": 5}
    assert parse_package_names("../x\n-dash\nok\n a b \n") == ["ok"]
    assert image_size_kib(parse_image_info("IMAGESIZE = lots\n")) is None
    assert image_size_kib(parse_image_info("IMAGESIZE = ９９\n")) is None  # not ASCII digits
    assert image_size_kib({}) is None


def test_the_manifest_gives_each_package_its_version():
    text = "busybox core2-64 1.36.1-r0\nnetbase all 1:6.4-r0\nbusybox core2-64 9\nbad line\n"
    assert parse_manifest(text) == {"busybox": "1.36.1-r0", "netbase": "1:6.4-r0"}


@given(st.text())
def test_no_text_makes_a_parser_raise(text):
    sizes = parse_package_sizes(text)
    assert all(isinstance(v, int) and v >= 0 for v in sizes.values())
    assert len(parse_package_names(text)) <= len(text.splitlines())
    size = image_size_kib(parse_image_info(text))
    assert size is None or size >= 0
    assert len(parse_manifest(text)) == count_packages(text)


@given(st.binary())
def test_no_bytes_decoded_as_the_service_does_make_a_parser_raise(data):
    text = data.decode("utf-8", errors="replace")
    parse_package_sizes(text), parse_package_names(text), parse_image_info(text)
    parse_manifest(text)


@given(st.dictionaries(st.from_regex(r"[a-z0-9][a-z0-9+.-]{0,30}", fullmatch=True),
                       st.integers(0, 10**9), max_size=40))
def test_every_size_line_written_is_read_back(sizes):
    text = "".join(f"{kib}\tKiB\t{name}\n" for name, kib in sizes.items())
    assert parse_package_sizes(text) == sizes


def test_a_line_of_blanks_in_image_info_costs_no_more_than_reading_it():
    """image-info.txt is the build's: a pattern that took blanks two ways cost minutes per
    compare request on a 16 MiB file of them; the line is split at "=" instead."""
    info = parse_image_info("IMAGESIZE=" + " " * 2_000_000 + "x" * 5000 + "\nIMAGESIZE = 12\n")
    assert info == {"IMAGESIZE": "12"}
    assert parse_image_info("DISTRO =  poky \n") == {"DISTRO": "poky"}
