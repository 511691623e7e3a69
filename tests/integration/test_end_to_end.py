"""The whole product in one process: web app, SQLite, job files and the real run_job.sh,
cloning from the token-protected HTTPS git server and building with the stand-in bitbake.

Only the login is a fake here (PAM needs a real user with a password: the system tests have
that); the runner runs as the current user without sudo, as with AUTO_BUILD_NO_SUDO=1.
"""

from __future__ import annotations

import hashlib
import json
import pwd
import os
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from autobuild.config import Settings
from autobuild.web.app import create_app
from tests.fakes import FakeAuthenticator
from tests.integration.conftest import RUNNER, TOKEN
from tests.web.helpers import csrf_from, event_data, page_csrf, parse_sse

USER = pwd.getpwuid(os.getuid()).pw_name
PASSWORD = "e2e-password"


@pytest.fixture
def client(tmp_path, git, user_token, monkeypatch):
    monkeypatch.setenv("GIT_SSL_CAINFO", str(git.server.ca_file))
    user_token(None)  # no token on file until the user saves one in Settings
    jobs_root = tmp_path / "jobs"
    jobs_root.mkdir()
    (tmp_path / "data").mkdir()
    settings = Settings(db_path=tmp_path / "data" / "jobs.db", jobs_root=jobs_root,
                        runner_path=RUNNER, dev_mode=True, use_sudo=False, poll_interval=0.2,
                        cache_dir=tmp_path / "no-cache")
    app = create_app(settings, overrides={"auth": FakeAuthenticator({USER: PASSWORD})})
    try:
        with TestClient(app, follow_redirects=False) as test_client:
            test_client.jobs_root = jobs_root
            yield test_client
    finally:
        app.state.container.unwire()


def sign_in_and_save_token(client: TestClient) -> None:
    response = client.post("/login", data={"username": USER, "password": PASSWORD,
                                           "csrf_token": page_csrf(client, "/login")})
    assert response.status_code == 303
    page = client.get("/settings")
    assert "No token on file" in page.text
    response = client.post("/settings", data={"token": f"  {TOKEN}\n",
                                              "csrf_token": csrf_from(page.text)})
    assert response.status_code in (200, 303)
    page = client.get("/settings")
    assert "token is on file" in page.text and TOKEN not in page.text


def submit(client: TestClient, target: str) -> int:
    response = client.post("/new", data={
        "repo_url": client.git_url, "ref": "main", "machine": "qemux86-64", "target": target,
        "csrf_token": page_csrf(client, "/new"),
    })
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def stream_until_end(client: TestClient, job_id: int) -> list[dict]:
    events = []
    with client.stream("GET", f"/api/jobs/{job_id}/log/stream") as response:
        assert response.status_code == 200
        for event in parse_sse(response.iter_lines()):
            events.append(event)
            if event.get("event") == "end":
                break
    return events


def wait_for_status(client: TestClient, job_id: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("SUCCESS", "FAILED", "CANCELLED"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end: {job}")


def test_a_build_submitted_in_the_browser_streams_live_and_delivers_its_images(client, git):
    client.git_url = git.url
    sign_in_and_save_token(client)
    job_id = submit(client, "core-image-minimal")

    events = stream_until_end(client, job_id)
    statuses = [event_data(e)["status"] for e in events if e.get("event") == "status"]
    log_events = [e for e in events if e.get("event") == "log"]
    text = "".join(event_data(e)["text"] for e in log_events)
    # Lines arrived while the build was RUNNING, before the SUCCESS status was sent.
    success_at = next(i for i, e in enumerate(events)
                      if e.get("event") == "status" and event_data(e)["status"] == "SUCCESS")
    live = [e for e in events[:success_at] if e.get("event") == "log"
            and "NOTE: Running task" in event_data(e)["text"]]
    assert live, "no bitbake task line was streamed while the build was running"
    assert "RUNNING" in statuses and statuses[-1] == "SUCCESS"
    assert "Tasks Summary" in text and TOKEN not in text
    offsets = [int(e["id"]) for e in log_events]
    assert offsets == sorted(offsets)
    log_file = client.jobs_root / USER / str(job_id) / "logs" / "build.log"
    assert offsets[-1] == log_file.stat().st_size

    job = wait_for_status(client, job_id)
    assert (job["status"], job["exit_code"]) == ("SUCCESS", 0)
    assert json.loads((client.jobs_root / USER / str(job_id) / "status.json").read_text())["exit_code"] == 0

    listing = client.get(f"/api/jobs/{job_id}/artifacts").json()
    names = {a["name"] for a in listing}
    assert any(n.endswith(".bin") for n in names) and any(n.endswith(".mtd") for n in names)
    assert "evil.bin" not in names  # a symlink out of the build tree is never collected
    for artifact in listing:
        body = client.get(f"/api/jobs/{job_id}/artifacts/{artifact['name']}")
        assert body.status_code == 200
        # The image the runner built (checked byte for byte against the deploy dir in
        # test_runner.py) arrives whole: its sha256 is the one the runner recorded.
        assert hashlib.sha256(body.content).hexdigest() == artifact["sha256"]
        assert (b"version=1.1" in body.content or artifact["name"].startswith("u-boot")
                or ".manifest" in artifact["name"] or ".spdx." in artifact["name"])
        assert len(body.content) == artifact["size"]
    # The service's default settings: the workspace is removed once the images are collected.
    assert not (client.jobs_root / USER / str(job_id) / "work").exists()
    assert "Removed work/ (the clone and build/tmp)" in log_file.read_text()

    page = client.get(f"/jobs/{job_id}")
    assert "SUCCESS" in page.text
    assert listing[0]["sha256"][:12] in page.text and "copy-link" in page.text
    # The built-in sbom plugin collected the stand-in's manifest; the page counts its packages.
    manifest = "core-image-minimal-qemux86-64.rootfs.manifest"
    assert {manifest, "core-image-minimal-qemux86-64.rootfs.spdx.tar.zst"} <= names
    assert job["packages"] == {"count": 16, "manifest": manifest}
    assert f'Packages: 16 <span class="muted">(from {manifest})</span>' in page.text


def test_a_failing_target_ends_failed_with_its_exit_code_and_error_lines(client, git):
    client.git_url = git.url
    sign_in_and_save_token(client)
    job_id = submit(client, "fail-image")
    job = wait_for_status(client, job_id)
    assert (job["status"], job["exit_code"]) == ("FAILED", 1)
    log = client.get(f"/api/jobs/{job_id}/log?offset=0&limit=1000000").json()
    assert log["complete"] and "ERROR:" in log["text"]
    assert client.get(f"/api/jobs/{job_id}/artifacts").json() == []


@pytest.mark.parametrize("name", ["../evil", "%2e%2e%2fx", "%2Fetc%2Fpasswd", "a%00b", "passwd"])
def test_download_traversal_answers_404(client, git, name):
    client.git_url = git.url
    sign_in_and_save_token(client)
    job_id = submit(client, "core-image-minimal")
    wait_for_status(client, job_id)
    artifacts = client.jobs_root / USER / str(job_id) / "artifacts"
    (artifacts / "passwd").unlink(missing_ok=True)
    os.symlink("/etc/passwd", artifacts / "passwd")
    response = client.get(f"/api/jobs/{job_id}/artifacts/{name}")
    assert response.status_code == 404
    assert b"root:" not in response.content


def test_rebuild_exact_builds_the_same_commit_after_the_branch_moved_on(client, git):
    from tests.support.standin import advance_branch, create_standin_repo
    bare = git.bare.parent / "moving.git"
    first_commit = create_standin_repo(bare)
    client.git_url = git.server.url("moving.git")
    sign_in_and_save_token(client)
    original = wait_for_status(client, submit(client, "core-image-minimal"))
    assert original["status"] == "SUCCESS" and original["commit"] == first_commit
    assert original["provenance"]["commit"] == first_commit
    assert original["provenance"]["variables"]["DISTRO_VERSION"] == "1.1"

    moved_to = advance_branch(bare, "1.2")
    headers = {"X-CSRF-Token": page_csrf(client, "/")}
    exact = client.post(f"/api/jobs/{original['id']}/rebuild", json={"exact": True},
                        headers=headers)
    assert exact.status_code == 201 and exact.json()["ref"] == first_commit
    again = wait_for_status(client, exact.json()["id"])
    assert again["status"] == "SUCCESS"
    assert again["commit"] == again["provenance"]["commit"] == first_commit
    assert again["provenance"]["variables"]["DISTRO_VERSION"] == "1.1"  # not the moved branch

    plain = client.post(f"/api/jobs/{original['id']}/rebuild", headers=headers)
    latest = wait_for_status(client, plain.json()["id"])
    assert latest["commit"] == moved_to != first_commit
    assert latest["provenance"]["variables"]["DISTRO_VERSION"] == "1.2"
    builds = client.get("/api/jobs", params={"commit": first_commit[:7]}).json()["items"]
    assert [job["id"] for job in builds] == [again["id"], original["id"]]
