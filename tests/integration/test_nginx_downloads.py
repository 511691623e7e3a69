"""Downloads through a real nginx with the shipped site (deploy/nginx/autobuild.conf) in front
of the real app and build tree: nginx serves what the app hands over, Range included, and
what the app refuses (links, FIFOs, hard links, traversal) stays refused; what nginx cannot
open goes back to the app."""

from __future__ import annotations

import os
import pwd
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from autobuild.config import Settings
from autobuild.domain.jobs import Job
from autobuild.web.app import create_app
from tests.fakes import (
    FakeAuthenticator, FakeClock, FakeJobFiles, FakeJobRepository, FakeMembers, FakeRunner,
)
from tests.support.loopback import free_port, serving
from tests.support.nginx_site import Nginx, site_config

pytestmark = pytest.mark.skipif(not shutil.which("nginx"), reason="nginx not installed")

OWNER = pwd.getpwuid(os.getuid()).pw_name
PASSWORD = "pw"


@pytest.fixture
def tree(tmp_path):
    """<root>/<owner>/1/{artifacts,logs} as a build leaves them (0644 files, 0755 dirs)."""
    old = os.umask(0o022)
    root = tmp_path / "jobs"
    job = root / OWNER / "1"
    (job / "artifacts").mkdir(parents=True)
    (job / "logs").mkdir()
    yield root
    os.umask(old)


@pytest.fixture
def app_port(tmp_path, tree):
    jobs = FakeJobRepository()
    jobs.rows[1] = Job(id=1, owner=OWNER, repo_url="https://git.example.com/bsp/poky.git",
                       ref="main", machine="qemux86-64", target="core-image-minimal",
                       created_at=datetime(2026, 1, 1, tzinfo=UTC))
    (tmp_path / "data").mkdir()
    settings = Settings(db_path=tmp_path / "data" / "jobs.db", jobs_root=tree,
                        runner_path=tmp_path / "run_job.sh", secret_key_file=tmp_path / "key",
                        dev_mode=True, use_sudo=False, poll_interval=0.05)
    app = create_app(settings, overrides={
        "jobs": jobs, "auth": FakeAuthenticator({OWNER: PASSWORD}),
        "members": FakeMembers({OWNER}), "runner": FakeRunner(FakeJobFiles(), FakeClock())})
    with serving(app, proxy_headers=True, forwarded_allow_ips="127.0.0.1") as port:
        yield port


def start_nginx(tmp: Path, app_port: int, jobs_root: Path) -> Nginx:
    port = free_port()
    return Nginx(tmp, site_config(app_port, port, jobs_root), port)


@pytest.fixture
def nginx(tmp_path, app_port, tree):
    server = start_nginx(tmp_path / "nginx", app_port, tree)
    yield server
    server.stop()


def signed_in(port: int) -> httpx.Client:
    web = httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=False, timeout=20)
    page = web.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = web.post("/login", data={"username": OWNER, "password": PASSWORD,
                                        "csrf_token": token})
    assert response.status_code == 303, response.text
    return web


def served_by_nginx(response: httpx.Response) -> bool:
    # nginx's static module sends an ETag; the app never does.
    return "etag" in response.headers


def test_an_artifact_comes_from_nginx_byte_identical_with_range(nginx, tree):
    data = os.urandom(3 * 1024 * 1024 + 5)
    (tree / OWNER / "1" / "artifacts" / "image.bin").write_bytes(data)
    web = signed_in(nginx.port)

    whole = web.get("/api/jobs/1/artifacts/image.bin")
    middle = web.get("/api/jobs/1/artifacts/image.bin", headers={"Range": "bytes=10-19"})
    tail = web.get("/api/jobs/1/artifacts/image.bin", headers={"Range": "bytes=-7"})
    beyond = web.get("/api/jobs/1/artifacts/image.bin",
                     headers={"Range": f"bytes={len(data)}-"})

    assert whole.status_code == 200 and served_by_nginx(whole)
    assert whole.content == data
    assert whole.headers["content-type"] == "application/octet-stream"
    assert whole.headers["content-disposition"].startswith('attachment; filename="image.bin"')
    assert whole.headers["x-content-type-options"] == "nosniff"
    assert "x-accel-redirect" not in whole.headers
    assert (middle.status_code, middle.content) == (206, data[10:20])
    assert middle.headers["content-range"] == f"bytes 10-19/{len(data)}"
    assert (tail.status_code, tail.content) == (206, data[-7:])
    assert beyond.status_code == 416


def test_the_raw_log_comes_from_nginx_as_plain_text(nginx, tree):
    data = "NOTE: Running task 1 of 2\n<script>alert(1)</script>\nÜ\n".encode() * 100
    (tree / OWNER / "1" / "logs" / "build.log").write_bytes(data)
    web = signed_in(nginx.port)

    whole = web.get("/api/jobs/1/log/raw")
    part = web.get("/api/jobs/1/log/raw", headers={"Range": "bytes=5-11"})

    assert served_by_nginx(whole) and whole.content == data
    assert whole.headers["content-type"] == "text/plain; charset=utf-8"
    assert whole.headers["content-disposition"].startswith('inline; filename="build-1.log"')
    assert "sandbox" in whole.headers["content-security-policy"]
    assert (part.status_code, part.content) == (206, data[5:12])


def test_odd_names_are_handed_over_intact(nginx, tree):
    name = 'büld "x" 100%?#;.bin'
    (tree / OWNER / "1" / "artifacts" / name).write_bytes(b"odd")
    web = signed_in(nginx.port)

    response = web.get("/api/jobs/1/artifacts/b%C3%BCld%20%22x%22%20100%25%3F%23%3B.bin")

    assert (response.status_code, response.content) == (200, b"odd")
    assert served_by_nginx(response)


def test_links_fifos_hard_links_and_traversal_stay_refused_through_nginx(nginx, tree, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"not for the web")
    artifacts = tree / OWNER / "1" / "artifacts"
    (artifacts / "link.bin").symlink_to(secret)
    (artifacts / "inner.bin").write_bytes(b"INNER-ARTIFACT-BYTES")
    (artifacts / "inner-link.bin").symlink_to(artifacts / "inner.bin")
    os.mkfifo(artifacts / "fifo.bin")
    os.link(secret, artifacts / "hard.bin")
    web = signed_in(nginx.port)

    for path in ["/api/jobs/1/artifacts/link.bin", "/api/jobs/1/artifacts/inner-link.bin",
                 "/api/jobs/1/artifacts/fifo.bin", "/api/jobs/1/artifacts/hard.bin",
                 "/api/jobs/1/artifacts/..%2f..%2f..%2fsecret",
                 "/api/jobs/1/artifacts/%2e%2e%2fartifacts%2finner.bin",
                 "/api/jobs/1/artifacts/../../../../secret",
                 f"/_autobuild/jobs/{OWNER}/1/artifacts/inner.bin",
                 f"/_autobuild/jobs/{OWNER}/1/artifacts/../../../../secret"]:
        response = web.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert b"not for the web" not in response.content and b"INNER-ARTIFACT" not in response.content


def test_a_client_cannot_turn_the_hand_over_on_or_off(nginx, tree):
    (tree / OWNER / "1" / "artifacts" / "a.bin").write_bytes(b"abc")
    web = signed_in(nginx.port)

    for value in ("0", "", "1"):
        response = web.get("/api/jobs/1/artifacts/a.bin", headers={"X-Autobuild-Accel": value})
        assert response.content == b"abc" and served_by_nginx(response)


def test_what_nginx_cannot_open_is_served_by_the_app(tmp_path, app_port, tree):
    # nginx looks in an empty jobs root (a build from before the grants, a file it may not
    # read): it goes back to the app, which serves the file it checked itself, with Range.
    data = os.urandom(100_000)
    (tree / OWNER / "1" / "artifacts" / "a.bin").write_bytes(data)
    (tree / OWNER / "1" / "logs" / "build.log").write_bytes(b"log line\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    server = start_nginx(tmp_path / "nginx-empty", app_port, empty)
    try:
        web = signed_in(server.port)
        whole = web.get("/api/jobs/1/artifacts/a.bin")
        part = web.get("/api/jobs/1/artifacts/a.bin", headers={"Range": "bytes=100-199"})
        log = web.get("/api/jobs/1/log/raw")
        missing = web.get("/api/jobs/1/artifacts/missing.bin")
    finally:
        server.stop()

    assert whole.status_code == 200 and not served_by_nginx(whole)
    assert whole.content == data
    assert (part.status_code, part.content) == (206, data[100:200])
    assert log.content == b"log line\n"
    assert log.headers["content-type"] == "text/plain; charset=utf-8"
    assert missing.status_code == 404
    assert missing.json() == {"detail": "This build has no artifact of that name."}
