"""B2: server CPU with idle viewers, and per MB delivered to viewers (issue 9).

Same setup as B1 (bench/_server.py: the app in a child process, real build tree, loopback).
Idle: N viewers connected to a running job whose log does not grow; the server's CPU over a
window, as % of one core (target: 500 idle viewers <= 2 %). Delivery: V viewers while MB of
log lines are appended; server CPU seconds per MB delivered (summed over viewers), against
``tail -F`` delivering the same bytes in the same run.

    .venv/bin/python -m bench.b2_cpu [--idle 500] [--window 5] [--viewers 10] [--mb 8]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from bench import _report as report
from bench._server import TIMEOUT, Server, prepare, raise_file_limit
from bench._sse import Tail, append, connect

LINE = b"NOTE: recipe-sysroot-native: " + b"x" * 90 + b"\n"


async def idle(server: Server, log: Path, count: int, window: float) -> float:
    """% of one core the server uses while ``count`` viewers watch a quiet log."""
    viewers, _ = await connect(server.port, server.cookie, count, log.stat().st_size)
    await asyncio.sleep(1.0)  # past the connection burst
    cpu, began = server.cpu_seconds(), time.monotonic()
    await asyncio.sleep(window)
    used = (server.cpu_seconds() - cpu) / (time.monotonic() - began)
    for viewer in viewers:
        await viewer.stop()
    return 100 * used


async def delivery(server: Server, log: Path, count: int, megabytes: float) -> dict[str, float]:
    """Server and ``tail -F`` CPU seconds per MB they delivered while ``megabytes`` MB of
    lines were appended in 64 KiB writes."""
    tail = Tail()
    await tail.start(log)
    start = log.stat().st_size
    viewers, _ = await connect(server.port, server.cookie, count, start)
    await asyncio.sleep(0.5)
    server_cpu, tail_cpu = server.cpu_seconds(), tail.cpu_seconds()
    base = [v.received for v in viewers]
    block = LINE * (64 * 1024 // len(LINE))
    total = int(megabytes * 1024 * 1024)
    written = 0
    while written < total:
        append(log, block)
        written += len(block)
        await asyncio.sleep(0.002)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and (
            tail.received < written or any(v.received - b < written for v, b in zip(viewers, base))):
        await asyncio.sleep(0.05)
    server_used = server.cpu_seconds() - server_cpu
    tail_used = tail.cpu_seconds() - tail_cpu
    delivered = sum(v.received - b for v, b in zip(viewers, base)) / 1e6
    for viewer in viewers:
        await viewer.stop()
    await tail.stop()
    return {"server_s_per_mb": server_used / delivered,
            "tail_s_per_mb": max(tail_used, 0.01) / (tail.received / 1e6),
            "delivered_mb": delivered, "complete": tail.received >= written}


async def run(idle_count: int, window: float, count: int, megabytes: float) -> None:
    raise_file_limit()
    tmp = Path(tempfile.mkdtemp(prefix="b2-cpu-"))
    log = prepare(tmp)
    server = Server(tmp)
    try:
        await asyncio.sleep(1.0)
        baseline = await idle(server, log, 0, window)
        busy = await idle(server, log, idle_count, window)
        verdict = report.figure(f"B2 server CPU, {idle_count} idle viewers", f"{busy:.2f} % of a core",
                                f"no viewers {baseline:.2f} %", "", "<= 2 %",
                                report.verdict(busy, 2.0, " points"))
        print(f"B2 idle: server CPU with {idle_count} idle viewers {busy:.2f} % of a core "
              f"(no viewers: {baseline:.2f} %; target <= 2 %: {verdict})", flush=True)
        r = await delivery(server, log, count, megabytes)
        print(f"B2 delivery: {count} viewers, {r['delivered_mb']:.1f} MB delivered: server "
              f"{r['server_s_per_mb'] * 1000:.1f} ms CPU per MB; tail -F "
              f"{r['tail_s_per_mb'] * 1000:.2f} ms CPU per MB (<= that: clock-tick bound); "
              f"ratio {r['server_s_per_mb'] / r['tail_s_per_mb']:.1f}x", flush=True)
        report.figure(f"B2 server CPU per MB delivered ({count} viewers)",
                      f"{r['server_s_per_mb'] * 1000:.1f} ms",
                      f"tail -F {r['tail_s_per_mb'] * 1000:.2f} ms",
                      f"{r['server_s_per_mb'] / r['tail_s_per_mb']:.1f}x")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=int, default=500)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--mb", type=float, default=8.0)
    args = parser.parse_args()
    asyncio.run(asyncio.wait_for(run(args.idle, args.window, args.viewers, args.mb), 600))


if __name__ == "__main__":
    main()
