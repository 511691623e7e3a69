"""Web side of kas builds, artifact checksums with copy-link buttons, and a full disk."""

import html
import re

import pytest

from autobuild.domain.failures import DISK_FULL
from tests.web.helpers import submit

pytestmark = pytest.mark.timeout(30)

DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_the_form_has_a_kas_file_field_and_the_job_keeps_it(alice, queries, fakes):
    assert 'name="kas_file"' in alice.get("/new").text

    response = submit(alice, kas_file="kas/qemu.yml")

    assert response.status_code == 303
    job = queries.get(1)
    assert job.kas_file == "kas/qemu.yml"
    assert alice.get("/api/jobs/1").json()["kas_file"] == "kas/qemu.yml"
    assert "kas/qemu.yml" in alice.get("/jobs/1").text
    # "Edit and rebuild" starts from the same kas file.
    assert 'value="kas/qemu.yml"' in alice.get("/new", params={"from": 1}).text


@pytest.mark.parametrize("bad", ["../etc/passwd.yml", "/abs.yml", "kas/x.txt", "-x.yml"])
def test_a_kas_file_outside_the_repository_is_refused_with_its_field_marked(alice, queries, bad):
    response = submit(alice, kas_file=bad)

    assert response.status_code == 422
    assert 'id="e-kas_file"' in response.text
    assert queries.list_page().items == []


def test_job_page_and_api_show_the_sha256_and_a_copy_link_button(alice, fakes, supervisor):
    submit(alice)
    fakes.files.artifacts[1] = {"core-image.bin": b"test", "other.mtd": b"x"}
    fakes.files.checksums[1] = {"core-image.bin": DIGEST}

    page = alice.get("/jobs/1").text
    api = alice.get("/api/jobs/1/artifacts").json()

    assert {a["name"]: a["sha256"] for a in api} == {"core-image.bin": DIGEST, "other.mtd": None}
    assert f'title="{DIGEST}"' in page and f"{DIGEST[:12]}…" in page
    buttons = re.findall(r'<button[^>]*class="[^"]*copy-link[^"]*"[^>]*data-href="([^"]+)"', page)
    assert buttons == ["/api/jobs/1/artifacts/core-image.bin", "/api/jobs/1/artifacts/other.mtd"]
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", page))  # CSP: no inline JS


def test_copy_link_is_wired_in_app_js_not_inline(client):
    script = client.get("/static/app.js").text
    assert "navigator.clipboard" in script and "copy-link" in script


def test_a_full_disk_gets_its_line_in_the_failure_box(alice, fakes, supervisor, queries):
    submit(alice)
    supervisor.tick()
    fakes.files.append_log(1, b"==> bitbake core-image-minimal (MACHINE=qemux86-64)\n"
                              b"ERROR: No space left on device: the disk holding "
                              b"/srv/autobuild/jobs/1 filled up during this build\n"
                              b"==> Build finished: FAILED (exit 1)\n")
    fakes.runner.finish(1, 1)
    supervisor.tick()

    page = alice.get("/jobs/1").text

    assert queries.get(1).status.value == "FAILED"
    assert "Why it failed" in page and html.escape(DISK_FULL) in page
    # The API says the same, not only "exit code 1".
    failure = alice.get("/api/jobs/1").json()["failure"]
    assert failure["disk_problem"] == DISK_FULL and failure["tasks"] == []
