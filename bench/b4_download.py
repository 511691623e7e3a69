"""B4: a 1 GiB artifact downloaded through nginx, against nginx serving the same file
statically and the app directly (issue 9, point 4).

Writes a 1 GiB image into the build tree of a finished job as the runner leaves it (0640
file, 2750 directories, the current user's; a 1 MiB random block repeated, so it is quick to
make and does not compress), serves it with the real app (bench/_server.py) and a real nginx
running the deployed site config in front (bench/_nginx.py: when the app hands downloads
over, ``X-Accel-Redirect`` to the internal /_autobuild/jobs/ location, nginx sends the file
itself). Downloads it with curl to /dev/null, in turn: nginx static (the reference), through
nginx, and straight from the app; prints MB/s (median of ``--repeat``) and the ratios.

    .venv/bin/python -m bench.b4_download [--mib 1024] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench import _report as report
from bench._http import get
from bench._nginx import Nginx
from bench._server import JOB_ID, OWNER, Server, job_dir

NAME = "core-image-minimal-qemux86-64.wic"
TARGET_RATIO = 0.9


def write_image(tmp: Path, mib: int) -> Path:
    old = os.umask(0o027)
    try:
        artifacts = job_dir(tmp) / "artifacts"
        artifacts.mkdir(parents=True, mode=0o2750)
        for directory in (artifacts, artifacts.parent, artifacts.parent.parent):
            directory.chmod(0o2750)
        path = artifacts / NAME
        chunk = os.urandom(1 << 20)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "wb") as out:
            for _ in range(mib):
                out.write(chunk)
        return path
    finally:
        os.umask(old)


def curl(url: str, cookie: str, size: int) -> float:
    """MB/s of one download to /dev/null (the whole file, status 200, or an error)."""
    result = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "--max-time", "120", "-H", f"Cookie: {cookie}",
         "-w", "%{http_code} %{size_download} %{time_total}", url],
        capture_output=True, text=True, timeout=150)
    status, downloaded, seconds = result.stdout.split()
    if result.returncode != 0 or status != "200" or int(downloaded) != size:
        raise RuntimeError(f"{url}: HTTP {status}, {downloaded} of {size} bytes "
                           f"{result.stderr.strip()}")
    return size / 1e6 / float(seconds)


def handed_over(server: Server) -> bool:
    """Does the app hand the download over to nginx (X-Accel-Redirect) when nginx says it is
    there? Asked for one byte, so a full answer costs nothing."""
    got = get(server.port, f"/api/jobs/{JOB_ID}/artifacts/{NAME}", server.cookie,
              headers={"X-Autobuild-Accel": "1", "Range": "bytes=0-0"}, timeout=30)
    return b"\nx-accel-redirect:" in got.head.lower()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="b4-download-"))
    try:
        image = write_image(tmp, args.mib)
        size = image.stat().st_size
        with Server(tmp, status="SUCCESS") as server, \
                Nginx(tmp, server.port, tmp / "jobs", tmp / "jobs") as nginx:
            path = f"/api/jobs/{JOB_ID}/artifacts/{NAME}"
            ways = {"nginx static": f"http://127.0.0.1:{nginx.static_port}/{OWNER}/{JOB_ID}/"
                                    f"artifacts/{NAME}",
                    "through nginx": f"http://127.0.0.1:{nginx.port}{path}",
                    "app direct": f"http://127.0.0.1:{server.port}{path}"}
            speeds: dict[str, list[float]] = {way: [] for way in ways}
            curl(ways["nginx static"], server.cookie, size)  # warm: the file is in the page cache
            for _ in range(args.repeat):
                for way, url in ways.items():
                    speeds[way].append(curl(url, server.cookie, size))
            accel = handed_over(server)
            errors = nginx.errors().strip()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    mb_s = {way: statistics.median(values) for way, values in speeds.items()}
    static = mb_s["nginx static"]
    print(f"B4 download of a {size / 2**30:.2f} GiB artifact with curl, median of {args.repeat}; "
          f"reference: nginx static, same file, same run")
    print(f"  the app hands downloads over to nginx (X-Accel-Redirect): {'yes' if accel else 'NO'}")
    for way, value in mb_s.items():
        runs = " ".join(f"{v:.0f}" for v in speeds[way])
        print(f"  {way:<14}{value:8.0f} MB/s  {value / static:5.2f}x static   (runs: {runs})")
    ratio = mb_s["through nginx"] / static
    verdict = report.figure(f"B4 1 GiB download through nginx{'' if accel else ' (no hand-over)'}",
                            f"{mb_s['through nginx']:.0f} MB/s", f"nginx static {static:.0f} MB/s",
                            f"{ratio:.2f}x", f">= {TARGET_RATIO}x static",
                            report.verdict(ratio, TARGET_RATIO, "x", higher_is_better=True))
    report.figure("B4 1 GiB download, app direct", f"{mb_s['app direct']:.0f} MB/s",
                  f"nginx static {static:.0f} MB/s", f"{mb_s['app direct'] / static:.2f}x")
    print(f"  through nginx / static: {ratio:.2f}x (target >= {TARGET_RATIO}x): {verdict}")
    if errors:
        print(f"  nginx said: {errors[-500:]}")


if __name__ == "__main__":
    main()
