"""How long after a build's runner ends does the service know? (issue 7, point 5)

Runs the stand-in build several times through LocalBuildRunner (the real run_job.sh, as the
current user, without sudo) and measures, for each, the time from the runner's last act
(writing status.json: its mtime) to the moment the service's change callback fired and the
adapter reported the build Ended. The reference is measured in the same run: the same
builds seen by polling ``state()`` once a second, as the scheduler did before (a 1 s poll).

    .venv/bin/python -m bench.end_detection [--runs N]

Prints each delay and the ratio of the medians (reference / lock waiter).
"""

from __future__ import annotations

import argparse
import os
import pwd
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from autobuild.adapters.local_runner import LocalBuildRunner
from autobuild.domain import layout
from autobuild.domain.jobs import Job
from autobuild.domain.orders import BuildSettings
from autobuild.domain.ports import Ended
from tests.support.git_https_server import GitHttpsServer, installed_user_token
from tests.support.standin import create_standin_repo

RUNNER = Path(__file__).resolve().parents[1] / "runner" / "run_job.sh"
USER = pwd.getpwuid(os.getuid()).pw_name
TOKEN = "glpat-bench-token-0123456789"
POLL_INTERVAL = 1.0


def status_mtime(jobs_root: Path, job_id: int) -> float:
    return (jobs_root / USER / str(job_id) / layout.STATUS).stat().st_mtime


def one_build(adapter: LocalBuildRunner, jobs_root: Path, url: str, job_id: int,
              poll: bool) -> float:
    job = Job(id=job_id, owner=USER, repo_url=url, ref="main", machine="qemux86-64",
              target="core-image-minimal", created_at=datetime.now(UTC))
    job.decide(("*.bin",), BuildSettings(cache_dir=str(jobs_root / "no-cache")))
    told = threading.Event()
    adapter.on_change(told.set)
    adapter.launch(job)
    if poll:  # the old way: look once a second
        while not isinstance(adapter.state(job), Ended):
            time.sleep(POLL_INTERVAL)
    else:
        told.wait(120)
        assert isinstance(adapter.state(job), Ended)
    seen = time.time()
    return seen - status_mtime(jobs_root, job_id)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, installed_user_token(TOKEN) as set_token:
        set_token(TOKEN)
        root = Path(tmp)
        create_standin_repo(root / "repos" / "poky.git")
        with GitHttpsServer(root / "repos", token=TOKEN) as server:
            os.environ.update({"GIT_SSL_CAINFO": str(server.ca_file),
                               "STANDIN_BITBAKE_DELAY": "0"})
            jobs_root = root / "jobs"
            jobs_root.mkdir()
            waiter, polled = [], []
            for run in range(args.runs):
                for poll, results in ((False, waiter), (True, polled)):
                    adapter = LocalBuildRunner(RUNNER, jobs_root, root / "launch",
                                               use_sudo=False)
                    job_id = 2 * run + (2 if poll else 1)
                    results.append(one_build(adapter, jobs_root, server.url("poky.git"),
                                             job_id, poll))
    print("end seen after the runner's status, seconds")
    print("  lock waiter:", " ".join(f"{d:.3f}" for d in waiter))
    print("  1 s poll   :", " ".join(f"{d:.3f}" for d in polled))
    med_w, med_p = statistics.median(waiter), statistics.median(polled)
    print(f"median: lock waiter {med_w * 1000:.0f} ms, 1 s poll {med_p * 1000:.0f} ms, "
          f"ratio poll/waiter {med_p / max(med_w, 1e-3):.1f}x, max waiter {max(waiter) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
