"""The job page, list and API show why a job waits and when its files were removed."""

from datetime import timedelta

from autobuild.domain.disk import GB
from tests.web.helpers import login

URL = "https://git.example.com/yocto/poky.git"


def test_a_job_waiting_for_disk_space_says_so_on_its_page_the_list_and_the_api(
        alice, supervisor, commands, fakes):
    fakes.disk.free = int(3.5 * GB)
    job = commands.submit("alice", URL, "main", "qemux86-64", "core-image-minimal")
    supervisor.tick()

    reason = "Waiting for disk space: 3.5 GB free on"
    page = alice.get(f"/jobs/{job.id}").text
    assert reason in page and "20 GB needed" in page
    assert reason in alice.get("/").text
    assert alice.get(f"/api/jobs/{job.id}").json()["waiting_reason"].startswith(reason)

    fakes.disk.free = 100 * GB
    supervisor.tick()
    assert reason not in alice.get(f"/jobs/{job.id}").text
    assert alice.get(f"/api/jobs/{job.id}").json()["waiting_reason"] is None


def test_a_purged_job_says_when_and_links_to_no_download(alice, supervisor, commands, fakes):
    job = commands.submit("alice", URL, "main", "qemux86-64", "core-image-minimal")
    supervisor.tick()
    fakes.files.artifacts[job.id] = {"image.bin": b"x"}
    fakes.runner.finish(job.id, 0)
    supervisor.tick()
    assert "/artifacts/image.bin" in alice.get(f"/jobs/{job.id}").text

    fakes.clock.advance(timedelta(days=31).total_seconds())
    stored = fakes.jobs.get(job.id)
    fakes.runner.purge(stored)  # removes what the build left
    stored.mark_purged(fakes.clock.now())
    fakes.jobs.save(stored)
    login(alice, "alice")  # a month later: the session of then has ended

    page = alice.get(f"/jobs/{job.id}").text
    when = fakes.clock.now().strftime("%Y-%m-%d %H:%M UTC")
    assert f"Logs and artifacts were removed on {when} (kept 30 days)." in page
    assert "/artifacts/image.bin" not in page and 'id="artifacts-table"' not in page
    data = alice.get(f"/api/jobs/{job.id}").json()
    assert data["purged_at"].startswith(fakes.clock.now().strftime("%Y-%m-%dT%H:%M"))
    assert alice.get(f"/api/jobs/{job.id}/artifacts").json() == []
    assert alice.get(f"/api/jobs/{job.id}/artifacts/image.bin").status_code == 404
