"""Builds through the installed service: live log over SSE through nginx, images downloaded
through nginx, files owned by the engineer, failures recorded, downloads that cannot escape."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.system.helpers import (
    SERVICE_USER,
    StreamedEvent,
    build_log,
    job_dir,
    launch_log,
    raw_get,
    stream_log,
    submit,
    wait_for_end,
)

# work/ (the clone and build tree) is removed once the artifacts are collected.
RUNNER_FILES = ("logs", "artifacts", "artifacts.sha256", "status.json", "runner.json")
ALICE = "abtest-alice"


@dataclass(frozen=True)
class FinishedBuild:
    job_id: int
    events: list[StreamedEvent]
    job: dict


@pytest.fixture(scope="module")
def success(alice, git) -> FinishedBuild:
    """A core-image-minimal build by abtest-alice, its log read live over SSE through nginx."""
    job_id = submit(alice, git.url, "core-image-minimal")
    events = stream_log(alice, job_id, ALICE)
    return FinishedBuild(job_id, events, wait_for_end(alice, job_id))


def test_sse_delivers_the_log_through_nginx_while_the_build_runs(success):
    events = success.events
    statuses = [e.data["status"] for e in events if e.kind == "status"]
    assert "RUNNING" in statuses and statuses[-1] == "SUCCESS"
    assert events[-1].kind == "end" and events[-1].data["status"] == "SUCCESS"

    # Received before the runner wrote status.json: nginx passed them on as they came.
    live = [e for e in events if e.kind == "log" and not e.build_over]
    assert len(live) >= 3, "the log arrived only after the build had ended (buffered?)"
    assert any("NOTE: Running task" in e.data["text"] for e in live)

    log_events = [e for e in events if e.kind == "log"]
    streamed = "".join(e.data["text"] for e in log_events)
    on_disk = build_log(success.job_id, ALICE)
    assert streamed == on_disk and "==> Build finished: SUCCESS (exit 0)" in streamed
    assert int(log_events[-1].event["id"]) == len(on_disk.encode())


def test_the_build_ends_success_and_its_images_download_byte_identical_through_nginx(alice, success):
    assert (success.job["status"], success.job["exit_code"]) == ("SUCCESS", 0)
    artifacts = job_dir(success.job_id, ALICE) / "artifacts"
    on_disk = {p.name: p for p in artifacts.iterdir()}
    assert any(n.endswith(".bin") for n in on_disk) and any(n.endswith(".mtd") for n in on_disk)
    assert not {"evil.bin", "outside-build.bin", "dangling.bin"} & set(on_disk)

    listing = alice.get(f"/api/jobs/{success.job_id}/artifacts")
    assert listing.status_code == 200
    assert {a["name"]: a["size"] for a in listing.json()} == {
        name: path.stat().st_size for name, path in on_disk.items()}
    for name, path in on_disk.items():
        response = alice.get(f"/api/jobs/{success.job_id}/artifacts/{name}")
        assert response.status_code == 200, name
        assert response.content == path.read_bytes(), name
        assert "attachment" in response.headers["content-disposition"]

    page = alice.get(f"/jobs/{success.job_id}")
    assert page.status_code == 200 and "badge-success" in page.text


def test_images_and_the_raw_log_are_served_by_nginx_itself_with_range(alice, success):
    # nginx's static module sends an ETag, the app never does: these bytes came from nginx,
    # read through the group autobuild-web the build granted (the service only checked).
    job = job_dir(success.job_id, ALICE)
    name = next(p.name for p in (job / "artifacts").iterdir() if p.name.endswith(".bin"))
    data = (job / "artifacts" / name).read_bytes()
    image = alice.get(f"/api/jobs/{success.job_id}/artifacts/{name}")
    part = alice.get(f"/api/jobs/{success.job_id}/artifacts/{name}", headers={"Range": "bytes=1-3"})
    log = alice.get(f"/api/jobs/{success.job_id}/log/raw")

    assert image.status_code == 200 and "etag" in image.headers
    assert image.content == data
    assert (part.status_code, part.content) == (206, data[1:4])
    assert log.status_code == 200 and "etag" in log.headers
    assert log.content == (job / "logs" / "build.log").read_bytes()
    assert log.headers["content-type"] == "text/plain; charset=utf-8"
    assert alice.get(f"/_autobuild/jobs/{ALICE}/{success.job_id}/logs/build.log").status_code == 404


def test_the_builds_files_on_disk_belong_to_the_engineer(success, accounts):
    directory = job_dir(success.job_id, ALICE)
    service_uid = pwd.getpwnam(SERVICE_USER).pw_uid
    service_gid = grp.getgrnam(SERVICE_USER).gr_gid
    # jobs/<owner>/<id>: the engineer's, readable by the service's group, nobody else's.
    for path in (directory.parent, directory):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (accounts.alice.uid, service_gid), path
        assert stat.S_IMODE(info.st_mode) == 0o2750, path

    owners = {}
    for name in RUNNER_FILES:
        top = directory / name
        owners[top] = top.lstat().st_uid
        if top.is_dir():
            for root, dirs, files in os.walk(top):
                for entry in (*dirs, *files):
                    path = Path(root, entry)
                    owners[path] = path.lstat().st_uid
    assert len(owners) > 8  # the logs, the images and their checksums
    assert not (directory / "work").exists()  # the workspace was cleaned up
    not_hers = {str(p): uid for p, uid in owners.items() if uid != accounts.alice.uid}
    assert not_hers == {}
    writable = {str(p) for p in owners if p.lstat().st_mode & 0o022}
    assert writable == set(), "writable by the group or others"
    # The service's own record of the launch is in its data directory, not among the build's.
    info = os.stat(launch_log(success.job_id))
    assert info.st_uid == service_uid and not info.st_mode & 0o007


def test_a_failing_build_ends_failed_with_its_exit_code_and_the_failing_lines(alice, git):
    job_id = submit(alice, git.url, "fail-image")
    job = wait_for_end(alice, job_id)
    assert (job["status"], job["exit_code"]) == ("FAILED", 1)
    log = alice.get(f"/api/jobs/{job_id}/log", params={"offset": 0, "limit": 1048576}).json()
    assert log["complete"]
    assert "ERROR: fail-image-1.0-r0 do_compile: oe_runmake failed" in log["text"]
    assert "failed with exit code '1'" in log["text"]
    assert "==> Build finished: FAILED (exit 1)" in log["text"]
    assert alice.get(f"/api/jobs/{job_id}/artifacts").json() == []
    page = alice.get(f"/jobs/{job_id}")
    assert "badge-failed" in page.text


# Each goes to /api/jobs/<id>/artifacts/<attempt> exactly as written (four levels up is /).
TRAVERSALS = [
    "../../../../etc/passwd",
    "..%2f..%2f..%2f..%2fetc%2fpasswd",
    "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "..%5c..%5c..%5c..%5cetc%5cpasswd",
    "%2Fetc%2Fpasswd",
    "/etc/passwd",
    "passwd",  # a symlink to /etc/passwd placed in artifacts/
]


@pytest.fixture(scope="module")
def planted_symlink(success):
    link = job_dir(success.job_id, ALICE) / "artifacts" / "passwd"
    link.unlink(missing_ok=True)
    link.symlink_to("/etc/passwd")
    yield link
    link.unlink(missing_ok=True)


@pytest.mark.parametrize("attempt", TRAVERSALS)
def test_download_traversal_through_nginx_answers_404(alice, success, planted_symlink, attempt):
    base = f"/api/jobs/{success.job_id}/artifacts/"
    real = next((job_dir(success.job_id, ALICE) / "artifacts").glob("*.bin")).name
    assert raw_get(base + real, alice.cookies)[0] == 200  # the same request shape works

    status, body = raw_get(base + attempt, alice.cookies)
    assert status == 404, (attempt, body[:200])
    assert b"root:x:0:0" not in body


@pytest.mark.parametrize("attempt", ["passwd%00", "a%00b", "%00"])
def test_a_nul_in_the_name_is_refused_before_anything_is_read(alice, success, planted_symlink, attempt):
    # nginx itself rejects an encoded NUL in a URI (400) before the app sees it; the app
    # answers 404 to one that reaches it (tests/integration/test_end_to_end.py).
    status, body = raw_get(f"/api/jobs/{success.job_id}/artifacts/{attempt}", alice.cookies)
    assert status in (400, 404), (attempt, status)
    assert b"root:x:0:0" not in body
