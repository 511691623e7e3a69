"""B6: a stand-in build through the service, against the runner run by hand on the same
order (issue 9).

The stand-in poky (tests/fixtures/poky-standin: a fake bitbake that prints a build and makes
images, no pause between lines) is cloned over HTTPS with a token from the test git server
(tests/support/git_https_server.py). Through the service: the whole service in a child
process (bench/_server.py "SERVICE": SQLite, scheduler, LocalBuildRunner and the real
runner/run_job.sh, as the current user without sudo); time from ``POST /new`` to
``GET /api/jobs/<id>`` saying SUCCESS (polled every 20 ms). By hand: run_job.sh started the
way the adapter starts it, on the order the service stored for its job (same artifact
patterns and settings; another job id), from start to exit. Builds taken in turn; prints the
medians and the service's overhead, +X s.

    .venv/bin/python -m bench.b6_standin_build [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from autobuild.adapters.sqlite_jobs import SqliteJobRepository
from autobuild.adapters.sudo_shim import runner_command, runner_env
from autobuild.domain.orders import (
    DEFAULT_ARTIFACT_PATTERNS,
    BuildOrder,
    BuildSettings,
    JobAddress,
)
from bench import _report as report
from bench._server import OWNER, RUNNER, Server
from tests.support.git_https_server import GitHttpsServer, installed_user_token
from tests.support.standin import create_standin_repo

TOKEN = "glpat-bench-token-0123456789"
TARGET_S = 0.2
POLL_S = 0.02
BUILD_TIMEOUT = 120.0
HAND_IDS = 1000  # job ids of the builds run by hand: far from the service's


def through_service(client: httpx.Client, url: str) -> tuple[int, float]:
    """(job id, seconds from submitting to the service saying SUCCESS)."""
    page = client.get("/new").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    began = time.perf_counter()
    response = client.post("/new", data={"repo_url": url, "ref": "main", "machine": "qemux86-64",
                                         "target": "core-image-minimal", "csrf_token": csrf})
    assert response.status_code == 303, (response.status_code, response.text[:500])
    job_id = int(response.headers["location"].rsplit("/", 1)[1])
    deadline = began + BUILD_TIMEOUT
    while time.perf_counter() < deadline:
        status = client.get(f"/api/jobs/{job_id}").json()["status"]
        if status == "SUCCESS":
            return job_id, time.perf_counter() - began
        if status in ("FAILED", "CANCELLED"):
            raise RuntimeError(f"the service's build #{job_id} ended {status}")
        time.sleep(POLL_S)
    raise TimeoutError(f"the service's build #{job_id} did not end in {BUILD_TIMEOUT:.0f} s")


def order_of(db: Path, job_id: int, jobs_root: Path, new_id: int) -> BuildOrder:
    """The order the service gave its runner for ``job_id`` (as LocalBuildRunner makes it),
    for job ``new_id``."""
    job = SqliteJobRepository(db).get(job_id)
    assert job is not None
    return BuildOrder(address=JobAddress(job_id=new_id, owner=job.owner, jobs_root=str(jobs_root)),
                      request=job.request(),
                      artifact_patterns=job.artifact_patterns or DEFAULT_ARTIFACT_PATTERNS,
                      settings=job.settings or BuildSettings())


def by_hand(order: BuildOrder, launch_log: Path) -> float:
    """Seconds from starting run_job.sh on ``order`` to its exit (status 0)."""
    command = runner_command(RUNNER, OWNER, ["build", str(order.address.job_id)], False)
    with open(launch_log, "wb") as log:
        began = time.perf_counter()
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=log,
                                   start_new_session=True, env=runner_env(False))
        try:
            process.communicate(order.to_json().encode(), timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
            raise
        seconds = time.perf_counter() - began
    if process.returncode != 0:
        raise RuntimeError(f"run_job.sh by hand exited {process.returncode}: "
                           f"{launch_log.read_text()[-500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="b6-standin-"))
    service, hand = [], []
    saved_env = dict(os.environ)
    try:
        with installed_user_token(TOKEN) as set_token:
            set_token(TOKEN)
            create_standin_repo(tmp / "repos" / "poky.git")
            with GitHttpsServer(tmp / "repos", token=TOKEN) as git:
                os.environ.update({"GIT_SSL_CAINFO": str(git.ca_file),
                                   "STANDIN_BITBAKE_DELAY": "0"})
                (tmp / "jobs").mkdir()
                with Server(tmp, "SERVICE") as server, \
                        httpx.Client(base_url=f"http://127.0.0.1:{server.port}",
                                     headers={"Cookie": server.cookie}, timeout=30) as client:
                    url = git.url("poky.git")
                    through_service(client, url)  # warm up: first clone, imports, caches
                    for run in range(args.runs):
                        job_id, seconds = through_service(client, url)
                        service.append(seconds)
                        order = order_of(tmp / "data" / "jobs.db", job_id, tmp / "jobs",
                                         HAND_IDS + run)
                        hand.append(by_hand(order, tmp / f"hand-{run}.log"))
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        shutil.rmtree(tmp, ignore_errors=True)
    med_service, med_hand = statistics.median(service), statistics.median(hand)
    extra = med_service - med_hand
    print(f"B6 stand-in build (STANDIN_BITBAKE_DELAY=0), {args.runs} of each, in turn")
    print("  through the service (POST /new -> SUCCESS in /api/jobs/<id>):",
          " ".join(f"{s:.3f}" for s in service))
    print("  run_job.sh by hand, same order (start -> exit):           ",
          " ".join(f"{s:.3f}" for s in hand))
    verdict = report.figure("B6 stand-in build through the service", f"{med_service:.3f} s",
                            f"runner by hand {med_hand:.3f} s", f"+{extra:.3f} s",
                            f"<= +{TARGET_S} s", report.verdict(extra, TARGET_S, " s"))
    print(f"  median: service {med_service:.3f} s, by hand {med_hand:.3f} s: +{extra:.3f} s "
          f"(target <= +{TARGET_S} s: {verdict}; the poll adds up to {POLL_S * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
