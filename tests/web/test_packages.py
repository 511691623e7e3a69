"""The package count of the image manifest on the job page and in GET /api/jobs/{id}."""

import html

import pytest

from tests.web.helpers import submit

MANIFEST = "core-image-minimal-qemux86-64.rootfs.manifest"
PACKAGES = b"base-files qemux86_64 3.0.14-r0\nbusybox core2-64 1.36.1-r0\nnetbase all 1:6.4-r0\n"


@pytest.fixture
def built(alice, fakes, supervisor):
    assert submit(alice).status_code == 303  # core-image-minimal for qemux86-64
    supervisor.tick()
    fakes.runner.finish(1, 0)
    supervisor.tick()
    return fakes.files.artifacts.setdefault(1, {})


def test_the_job_page_and_the_api_show_the_package_count_of_the_manifest(alice, bob, built):
    built.update({MANIFEST: PACKAGES, "core-image-minimal-qemux86-64.rootfs.spdx.json": b"{}",
                  "core-image-minimal-qemux86-64.rootfs-20260101120000.manifest": PACKAGES})

    page = html.unescape(bob.get("/jobs/1").text)
    body = alice.get("/api/jobs/1").json()

    assert f"Packages: 3 <span class=\"muted\">(from {MANIFEST})</span>" in page
    assert body["packages"] == {"count": 3, "manifest": MANIFEST}


def test_without_a_manifest_there_is_no_count(alice, built):
    built["core-image.bin"] = b"x"

    assert 'id="packages"' not in alice.get("/jobs/1").text
    assert alice.get("/api/jobs/1").json()["packages"] is None


@pytest.mark.parametrize("content", [b"", b"\x00\xff\xfe garbage\n" * 100,
                                     "caf\u00e9 \u2028 x\n".encode(), b"a b\n" * 1000])
def test_a_malformed_manifest_is_counted_as_far_as_it_goes_never_a_500(alice, built, content):
    built[MANIFEST] = content

    page = alice.get("/jobs/1")
    api = alice.get("/api/jobs/1")

    assert page.status_code == 200 and api.status_code == 200
    assert api.json()["packages"] == {"count": 0, "manifest": MANIFEST}
    assert "Packages: 0" in page.text


def test_a_manifest_name_is_escaped_on_the_page(alice, built):
    name = "<img src=x onerror=alert(1)>.manifest"  # a plain file name: no slash
    built[name] = PACKAGES

    page = alice.get("/jobs/1").text

    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.manifest" in page
