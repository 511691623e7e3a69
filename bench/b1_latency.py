"""B1: latency from a line appended to a build log to an SSE viewer receiving it (issue 9).

Serves the real app with uvicorn in a child process (bench/_server.py: real JobDirectory on a
real build tree, so reads go through the owner-checked build tree and the inotify watch; the
job row is kept in memory), signs in, opens N live-log streams over loopback -- straight to
uvicorn ("direct") and through a real nginx with the deployed site config in front of it
("nginx", bench/_nginx.py) -- and appends timestamped lines to the log. The reference,
measured in the same run on the same file: ``tail -F``. Prints p50/p99 per viewer count and
the ratio to ``tail -F``, and how long N viewers took to connect.

    .venv/bin/python -m bench.b1_latency [--via direct,nginx] [--viewers 1,100,500] [--marks 40] [--gap 0.05]

Bounded: every wait has a timeout; the server, nginx and ``tail`` are ended when it is done.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from bench import _report as report
from bench._nginx import Nginx
from bench._server import Server, prepare, raise_file_limit
from bench._sse import Tail, connect, ms, percentile, write_marks

# The targets, through nginx too: p50 by viewer count, p99 and connecting at 500.
P50_TARGET = {1: 0.010, 500: 0.030}
P99_TARGET = {500: 0.100}
CONNECT_TARGET = {500: 1.0}


async def measure(port: int, cookie: str, log: Path, count: int, marks: int, gap: float,
                  start: int) -> dict[str, float]:
    tail = Tail()
    await tail.start(log)
    viewers, connect_s = await connect(port, cookie, count, log.stat().st_size)
    await asyncio.sleep(0.2)
    await write_marks(log, marks, gap, start)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
            len(tail.latencies) < marks or any(len(v.latencies) < marks for v in viewers)):
        await asyncio.sleep(0.05)
    for viewer in viewers:
        await viewer.stop()
    await tail.stop()
    seen = [x for v in viewers for x in v.latencies]
    return {"viewers": count, "connect_s": connect_s,
            "p50": percentile(seen, 0.5), "p99": percentile(seen, 0.99),
            "ref_p50": percentile(tail.latencies, 0.5), "ref_p99": percentile(tail.latencies, 0.99),
            "missing": count * marks - len(seen)}


def record(via: str, r: dict[str, float]) -> str:
    """The figures of one row against the issue's targets; returns the verdicts."""
    count = int(r["viewers"])
    report.series(f"{via} p50", count, r["p50"] * 1000)
    report.series(f"{via} p99", count, r["p99"] * 1000)
    said = []
    for label, key, targets in (("p50", "p50", P50_TARGET), ("p99", "p99", P99_TARGET)):
        limit = targets.get(count)
        ratio = r[key] / r[f"ref_{key}"]
        verdict = report.verdict(r[key] * 1000, limit * 1000, " ms") if limit else ""
        report.figure(f"B1 {label}, {count} viewer{'' if count == 1 else 's'}, {via}", ms(r[key]).strip(),
                      f"tail -F {ms(r[f'ref_{key}']).strip()}", f"{ratio:.1f}x",
                      f"<= {limit * 1000:g} ms" if limit else "", verdict)
        if limit:
            said.append(f"{label} {verdict}")
    limit = CONNECT_TARGET.get(count)
    if limit:
        verdict = report.verdict(r["connect_s"], limit, " s")
        report.figure(f"B1 connecting {count} viewers, {via}", f"{r['connect_s']:.3f} s",
                      target=f"<= {limit:g} s", verdict=verdict)
        said.append(f"connect {verdict}")
    return "; ".join(said)


async def run(vias: list[str], counts: list[int], marks: int, gap: float) -> None:
    raise_file_limit()
    tmp = Path(tempfile.mkdtemp(prefix="b1-latency-"))
    log = prepare(tmp)
    server = Server(tmp)
    nginx = None
    try:
        print("B1 append -> SSE client (loopback); reference: tail -F on the same file")
        print(f"{'via':<7}{'viewers':>7} {'p50':>11} {'p99':>11} {'tail p50':>11} "
              f"{'tail p99':>11} {'p50 ratio':>10} {'p99 ratio':>10} {'connect':>9} missing  "
              "targets")
        start = 0
        for via in vias:
            port = server.port
            if via == "nginx":
                nginx = Nginx(tmp, server.port, tmp / "jobs", tmp)
                port = nginx.port
            for count in counts:
                r = await measure(port, server.cookie, log, count, marks, gap, start)
                start += marks
                print(f"{via:<7}{count:7d} {ms(r['p50'])} {ms(r['p99'])} {ms(r['ref_p50'])} "
                      f"{ms(r['ref_p99'])} {r['p50'] / r['ref_p50']:9.1f}x "
                      f"{r['p99'] / r['ref_p99']:9.1f}x {r['connect_s']:8.3f}s "
                      f"{r['missing']:7d}  {record(via, r)}", flush=True)
            if nginx is not None:
                nginx.stop()
                nginx = None
    finally:
        if nginx is not None:
            nginx.stop()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--via", default="direct,nginx", help="direct, nginx or both")
    parser.add_argument("--viewers", default="1,100,500")
    parser.add_argument("--marks", type=int, default=40)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between lines")
    args = parser.parse_args()
    vias = args.via.split(",")
    if not set(vias) <= {"direct", "nginx"}:
        parser.error("--via takes direct, nginx or direct,nginx")
    counts = [int(c) for c in args.viewers.split(",")]
    asyncio.run(asyncio.wait_for(run(vias, counts, args.marks, args.gap), 600))


if __name__ == "__main__":
    main()
