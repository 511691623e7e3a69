"""B3: the job page, SSE catch-up and failure summary of a 500 MB log against a 1 MB one
(issue 9, point 3).

Writes two synthetic bitbake logs of a FAILED build (repeated realistic NOTE lines; a failed
task near the START, where no tail scan reaches, another near the end, and bitbake's
``Summary: 2 tasks failed:`` last) and serves both with the real app (bench/_server.py, jobs #1 and #2) and
a real nginx in front (bench/_nginx.py). If the runner keeps a digest of its log
(autobuild.runner.digesting), it is made the runner's way before the app starts. Then, for
each log, over loopback HTTP:

* job page: ``GET /jobs/<id>`` plus what its JS fetches to show the log: the SSE stream from
  the page's tail offset (``data-log-size`` - 256 KiB; the file size if the page does not
  say) until the tail has arrived (``end``): time and bytes, 500 MB against 1 MB;
* "load earlier": ``GET /api/jobs/<id>/log?offset=&limit=256 KiB`` just before the tail;
* failure summary: ``GET /api/jobs/<id>`` -> ``failure``; complete = both failed tasks with
  their ERROR messages;
* catch-up: the SSE stream of the whole log from offset 0 (MB/s), against nginx serving the
  same file statically, and the raw log (``/api/jobs/<id>/log/raw``) through nginx.

    .venv/bin/python -m bench.b3_huge_log [--mb 500] [--small-mb 1] [--repeat 9] [--no-digest]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench import _report as report
from bench._http import get
from bench._nginx import Nginx
from bench._server import JOB_ID, OWNER, Server, job_dir

TAIL_BYTES = 256 * 1024  # what the job page opens on
PAGE_RATIO_TARGET = 1.2
PAGE_BYTES_TARGET = 1_000_000
TASKS = ("do_fetch", "do_unpack", "do_patch", "do_configure", "do_compile", "do_install",
         "do_package", "do_populate_sysroot", "do_package_write_rpm")
RECIPES = (("core", "busybox", "1.36.1"), ("core", "glibc", "2.39"), ("devtools", "cmake", "3.28.3"),
           ("connectivity", "openssl", "3.2.1"), ("support", "sqlite", "3.45.1"),
           ("graphics", "mesa", "24.0.2"), ("kernel", "linux-yocto", "6.6"))
EARLY_FAILURE = (
    "ERROR: busybox-1.36.1-r0 do_compile: oe_runmake failed\n"
    "ERROR: Logfile of failure stored in: /b/tmp/work/core2-64-poky-linux/busybox/1.36.1-r0/"
    "temp/log.do_compile.2245\n"
    "ERROR: Task (/poky/meta/recipes-core/busybox/busybox_1.36.1.bb:do_compile) failed with "
    "exit code '1'\n")
LATE_FAILURE = (
    "ERROR: linux-yocto-6.6.21+git-r0 do_compile_kernelmodules: oe_runmake failed\n"
    "ERROR: Logfile of failure stored in: /b/tmp/work/qemux86_64-poky-linux/linux-yocto/"
    "6.6.21+git-r0/temp/log.do_compile_kernelmodules.9911\n"
    "ERROR: Task (/poky/meta/recipes-kernel/linux/linux-yocto_6.6.bb:do_compile_kernelmodules) "
    "failed with exit code '1'\n")
END = (
    "NOTE: Tasks Summary: Attempted 4567 tasks of which 1203 didn't need to be rerun and 2 "
    "failed.\n\n"
    "Summary: 2 tasks failed:\n"
    "  /poky/meta/recipes-core/busybox/busybox_1.36.1.bb:do_compile\n"
    "    log: /b/tmp/work/core2-64-poky-linux/busybox/1.36.1-r0/temp/log.do_compile.2245\n"
    "  /poky/meta/recipes-kernel/linux/linux-yocto_6.6.bb:do_compile_kernelmodules\n"
    "    log: /b/tmp/work/qemux86_64-poky-linux/linux-yocto/6.6.21+git-r0/temp/"
    "log.do_compile_kernelmodules.9911\n"
    "Summary: There were 2 ERROR messages, returning a non-zero exit code.\n")
# Both failed tasks, each with its own ERROR message: what a complete summary shows.
EXPECTED = (("busybox", "oe_runmake failed"), ("linux-yocto", "oe_runmake failed"))


def block(size: int = 1 << 20) -> bytes:
    """About ``size`` bytes of bitbake's console output: tasks started and finished."""
    lines, n = [], 0
    total = 0
    while total < size:
        category, pn, pv = RECIPES[n % len(RECIPES)]
        task = TASKS[n // len(RECIPES) % len(TASKS)]
        for line in (f"NOTE: Running task {n % 4567 + 1} of 4567 (/poky/meta/recipes-{category}/"
                     f"{pn}/{pn}_{pv}.bb:{task})\n",
                     f"NOTE: recipe {pn}-{pv}-r0: task {task}: Started\n",
                     f"NOTE: recipe {pn}-{pv}-r0: task {task}: Succeeded\n"):
            lines.append(line)
            total += len(line)
        n += 1
    return "".join(lines).encode()


def write_log(path: Path, megabytes: float) -> int:
    """The log of a failed build, ``megabytes`` MB (10**6 bytes); returns its size."""
    size = int(megabytes * 1e6)
    body = block()
    head = block(64 * 1024) + EARLY_FAILURE.encode()
    end = block(32 * 1024) + LATE_FAILURE.encode() + block(16 * 1024) + END.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "wb") as out:
        out.write(head)
        left = size - len(head) - len(end)
        while left > 0:
            piece = body[:left] if left < len(body) else body
            if left < len(body):  # end on a whole line
                piece = piece[:piece.rfind(b"\n") + 1] or piece
            out.write(piece)
            left -= len(body)
        out.write(end)
    return path.stat().st_size


def make_digest(log: Path, wanted: bool) -> tuple[float, str]:
    """logs/digest.json made the runner's way, if the runner keeps one: (seconds, what)."""
    if not wanted:
        return float("nan"), "no digest (--no-digest)"
    try:
        from autobuild.runner.digesting import KeptDigest
    except ImportError:
        return float("nan"), "no digest: the runner keeps none (autobuild.runner.digesting absent)"
    log_fd = os.open(log, os.O_RDONLY)
    logs_fd = os.open(log.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        began = time.perf_counter()
        KeptDigest(log_fd, logs_fd).finish()
        seconds = time.perf_counter() - began
    finally:
        os.close(log_fd)
        os.close(logs_fd)
    digest = log.parent / "digest.json"
    if not digest.exists():
        return seconds, "the runner's digest was not written"
    return seconds, f"the runner's digest: {digest.stat().st_size:,} bytes"


def tree(tmp: Path, job_id: int, megabytes: float, digest: bool) -> dict[str, object]:
    """The build tree of job ``job_id`` as the runner leaves it (2750 directories, 0640
    files): its log and, if the runner keeps one, its digest; sizes and times."""
    old = os.umask(0o027)
    try:
        logs = job_dir(tmp, job_id) / "logs"
        logs.mkdir(parents=True, mode=0o2750)
        for directory in (logs, logs.parent, logs.parent.parent):
            directory.chmod(0o2750)
        began = time.perf_counter()
        size = write_log(logs / "build.log", megabytes)
        written = time.perf_counter() - began
        digest_s, digest_note = make_digest(logs / "build.log", digest)
        return {"job": job_id, "size": size, "written_s": written, "digest_s": digest_s,
                "digest_note": digest_note}
    finally:
        os.umask(old)


def page_open(server: Server, job_id: int, size: int) -> dict[str, float | int | bool]:
    """The job page and the tail of the log its JS streams, as a browser opening it does."""
    page = get(server.port, f"/jobs/{job_id}", server.cookie, keep=True)
    assert page.status == 200, page.head
    said = re.search(rb'data-log-size="(\d+)"', page.body)
    log_size = int(said.group(1)) if said else size
    offset = max(0, log_size - TAIL_BYTES)
    tail = get(server.port, f"/api/jobs/{job_id}/log/stream?offset={offset}", server.cookie,
               until=b"event: end")
    assert tail.status == 200 and tail.received >= size - offset, tail.head
    return {"page_s": page.seconds, "tail_s": tail.seconds, "open_s": page.seconds + tail.seconds,
            "open_bytes": page.received + tail.received, "told": said is not None}


def failure(server: Server, job_id: int) -> dict[str, object]:
    """``GET /api/jobs/<id>``: time, whether its failure summary is complete, what it lacks."""
    got = get(server.port, f"/api/jobs/{job_id}", server.cookie, keep=True)
    assert got.status == 200, got.head
    tasks = (json.loads(got.body).get("failure") or {}).get("tasks") or []
    missing = [recipe for recipe, message in EXPECTED
               if not any(recipe in t["recipe"] and any(message in m for m in t["messages"])
                          for t in tasks)]
    return {"failure_s": got.seconds, "complete": not missing,
            "lacks": ", ".join(f"{m}'s ERROR" for m in missing)}


def earlier(server: Server, job_id: int, size: int) -> dict[str, float]:
    """"Load earlier": the 256 KiB before the tail, through the chunk endpoint."""
    offset = max(0, size - 2 * TAIL_BYTES)
    got = get(server.port, f"/api/jobs/{job_id}/log?offset={offset}&limit={TAIL_BYTES}",
              server.cookie)
    assert got.status == 200, got.head
    return {"earlier_s": got.seconds}


def catch_up(server: Server, nginx: Nginx, job_id: int, size: int) -> dict[str, float]:
    """The whole log: SSE from offset 0, nginx static, the raw log through nginx."""
    stream = get(server.port, f"/api/jobs/{job_id}/log/stream?offset=0", server.cookie,
                 until=b"event: end", timeout=240)
    static = get(nginx.static_port, f"/{OWNER}/{job_id}/logs/build.log")
    raw = get(nginx.port, f"/api/jobs/{job_id}/log/raw", server.cookie, timeout=120)
    return {"catch_up_s": stream.seconds, "catch_up_mb_s": size / 1e6 / stream.seconds,
            "catch_up_ok": stream.status == 200 and stream.received >= size,
            "static_mb_s": size / 1e6 / static.seconds, "raw_status": raw.status,
            "raw_mb_s": size / 1e6 / raw.seconds if raw.status == 200 else float("nan")}


def medians(runs: list[dict[str, object]]) -> dict[str, object]:
    """Each timing's median over the runs; other values from the first run (the largest
    byte count)."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if key.endswith("_s"):
            out[key] = statistics.median(r[key] for r in runs)
        elif key.endswith("_bytes"):
            out[key] = max(r[key] for r in runs)
    return out


def measure(small_mb: float, large_mb: float, repeat: int, digest: bool) -> tuple[dict, dict]:
    """Both logs served by one app (jobs #1 and #2), measured in turn."""
    tmp = Path(tempfile.mkdtemp(prefix="b3-huge-log-"))
    try:
        (tmp / "data").mkdir()
        logs = [tree(tmp, JOB_ID, small_mb, digest), tree(tmp, JOB_ID + 1, large_mb, digest)]
        with Server(tmp, status="FAILED", jobs=2) as server, \
                Nginx(tmp, server.port, tmp / "jobs", tmp / "jobs") as nginx:
            for log in logs:  # warm up: templates, first connections
                page_open(server, log["job"], log["size"])
                failure(server, log["job"])
            runs: list[list[dict[str, object]]] = [[], []]
            for _ in range(repeat):  # in turn, so that whatever else runs slows both alike
                for log, done in zip(logs, runs):
                    done.append({**page_open(server, log["job"], log["size"]),
                                 **failure(server, log["job"]),
                                 **earlier(server, log["job"], log["size"])})
            for log, done in zip(logs, runs):
                log.update(medians(done))
            for log in logs:
                log.update(catch_up(server, nginx, log["job"], log["size"]))
        return logs[0], logs[1]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def show(small: dict, large: dict) -> None:
    mb = f"{large['size'] / 1e6:,.0f} MB"
    print(f"B3 huge log: {mb} log against {small['size'] / 1e6:,.1f} MB (reference), FAILED build")
    for r in (small, large):
        print(f"  {r['size'] / 1e6:8,.1f} MB log written in {r['written_s']:.1f} s; "
              f"{r['digest_note']}" + (f" in {r['digest_s']:.1f} s "
                                       f"({r['size'] / 1e6 / r['digest_s']:.0f} MB/s)"
                                       if r['digest_s'] == r['digest_s'] else ""))
    if not large["told"]:
        print("  (the page does not give the log size: the tail offset is the file size "
              "- 256 KiB, as the page's JS would compute it)")
    print(f"  {'':38}{'1 MB':>12}{mb:>12}{'ratio':>8}")
    rows = (("job page HTML", "page_s"), ("tail stream (SSE, last 256 KiB)", "tail_s"),
            ("page + tail", "open_s"), ("load earlier (256 KiB chunk)", "earlier_s"),
            ("failure summary (GET /api/jobs/<id>)", "failure_s"))
    for label, key in rows:
        print(f"  {label:38}{ms(small[key]):>12}{ms(large[key]):>12}"
              f"{large[key] / small[key]:7.2f}x")
    print(f"  {'bytes to open the page':38}{small['open_bytes']:>12,}{large['open_bytes']:>12,}")
    for r in (small, large):
        print(f"  failure summary of the {r['size'] / 1e6:,.1f} MB log: "
              + ("complete" if r["complete"] else f"INCOMPLETE (lacks {r['lacks']})"))
    print(f"  catch-up from offset 0 (SSE): {large['catch_up_mb_s']:.0f} MB/s "
          f"({large['catch_up_s']:.1f} s for {mb}{'' if large['catch_up_ok'] else ', CUT SHORT'}); "
          f"nginx static, same file: {large['static_mb_s']:.0f} MB/s; ratio "
          f"{large['catch_up_mb_s'] / large['static_mb_s']:.3f}x")
    print("  raw log through nginx (/api/jobs/<id>/log/raw): " +
          (f"{large['raw_mb_s']:.0f} MB/s, {large['raw_mb_s'] / large['static_mb_s']:.2f}x static"
           if large["raw_status"] == 200 else f"HTTP {large['raw_status']}"))
    record(small, large, mb)


def record(small: dict, large: dict, mb: str) -> None:
    ratio = large["open_s"] / small["open_s"]
    report.figure(f"B3 job page + log tail, {mb} log", ms(large["open_s"]),
                  f"1 MB log {ms(small['open_s'])}", f"{ratio:.2f}x", f"<= {PAGE_RATIO_TARGET}x",
                  report.verdict(ratio, PAGE_RATIO_TARGET, "x"))
    report.figure(f"B3 bytes to open the page, {mb} log", f"{large['open_bytes']:,} B",
                  f"1 MB log {small['open_bytes']:,} B", "", "<= 1 MB",
                  report.verdict(large["open_bytes"] / 1e6, PAGE_BYTES_TARGET / 1e6, " MB"))
    report.figure(f"B3 failure summary, {mb} log", ms(large["failure_s"]),
                  f"1 MB log {ms(small['failure_s'])}",
                  f"{large['failure_s'] / small['failure_s']:.2f}x", "complete",
                  "met" if large["complete"] else f"missed: lacks {large['lacks']}")
    report.figure(f"B3 SSE catch-up from offset 0, {mb} log", f"{large['catch_up_mb_s']:.0f} MB/s",
                  f"nginx static {large['static_mb_s']:.0f} MB/s",
                  f"{large['catch_up_mb_s'] / large['static_mb_s']:.3f}x")
    if large["raw_status"] == 200:
        report.figure(f"B3 raw log through nginx, {mb}", f"{large['raw_mb_s']:.0f} MB/s",
                      f"nginx static {large['static_mb_s']:.0f} MB/s",
                      f"{large['raw_mb_s'] / large['static_mb_s']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=500)
    parser.add_argument("--small-mb", type=float, default=1)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--no-digest", action="store_true",
                        help="serve the logs without the runner's digest (as builds before it)")
    args = parser.parse_args()
    show(*measure(args.small_mb, args.mb, args.repeat, not args.no_digest))


if __name__ == "__main__":
    main()
