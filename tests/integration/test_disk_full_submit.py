"""A full disk is an answer, not a crash: submitting while the database's filesystem is full
says why (507), stores nothing, and the same connection keeps working (issue 8, point 4).

The app runs with its real SQLite database (jobs and sessions) on a 2 MiB tmpfs that the
test fills (root only); PAM, the users group and the runner are fakes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from autobuild.config import Settings
from autobuild.web.app import create_app
from tests.fakes import FakeAuthenticator, FakeClock, FakeJobFiles, FakeMembers, FakeRunner
from tests.web.helpers import VALID_JOB, page_csrf

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"),
                                reason="needs root to mount a small tmpfs")


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "data"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                   check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> None:
    with open(directory / "filler", "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass


def test_a_submission_on_a_full_disk_says_why_stores_nothing_and_the_service_goes_on(
        small_disk, tmp_path, monkeypatch):
    settings = Settings(db_path=small_disk / "jobs.db", jobs_root=tmp_path / "jobs",
                        runner_path=tmp_path / "run_job.sh", dev_mode=True, use_sudo=False,
                        min_free_gb=0, secret_key_file=tmp_path / "no-key")
    files = FakeJobFiles()
    app = create_app(settings, overrides={"auth": FakeAuthenticator({"alice": "pw"}),
                                          "members": FakeMembers({"alice"}),
                                          "runner": FakeRunner(files, FakeClock())})
    try:
        with TestClient(app, follow_redirects=False) as web:
            response = web.post("/login", data={"username": "alice", "password": "pw",
                                                "csrf_token": page_csrf(web, "/login")})
            assert response.status_code == 303
            form = page_csrf(web, "/new")
            fill(small_disk)

            response = web.post("/new", data={**VALID_JOB, "csrf_token": form})
            assert response.status_code == 507
            assert "disk is full" in response.text and "nothing was saved" in response.text
            assert "Traceback" not in response.text
            # Reading works on a thread's open connection; a new one needs the disk (the WAL
            # index), and then says why.
            api = web.get("/api/jobs")
            assert api.status_code in (200, 507)
            if api.status_code == 507:
                assert "disk is full" in api.json()["detail"]
            else:
                assert api.json()["items"] == []

            (small_disk / "filler").unlink()  # the admin frees space: the same session goes on
            listing = web.get("/api/jobs")
            assert listing.status_code == 200 and listing.json()["items"] == []
            response = web.post("/new", data={**VALID_JOB, "csrf_token": page_csrf(web, "/new")})
            assert response.status_code == 303
            assert len(web.get("/api/jobs").json()["items"]) == 1
    finally:
        app.state.container.unwire()
