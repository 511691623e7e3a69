"""Live-log clients for the benchmarks (not a benchmark itself): SSE viewers of job #1 over
raw HTTP/1.0 connections, the ``tail -F`` reference, and timestamped log lines to measure
the delay between a line appended and a client receiving it."""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench._server import JOB_ID, TIMEOUT, cpu_seconds

MARK = re.compile(rb"MARK (\d+) (\d+)")


@dataclass
class Viewer:
    """One SSE stream over a raw HTTP/1.0 connection (no chunking to undo)."""

    latencies: list[float] = field(default_factory=list)  # seconds
    received: int = 0  # bytes of body
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def run(self, port: int, cookie: str, offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        writer.write(f"GET /api/jobs/{JOB_ID}/log/stream?offset={offset} HTTP/1.0\r\n"
                     "Host: 127.0.0.1\r\n"
                     f"Cookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n".encode())
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            assert b" 200 " in head.split(b"\r\n", 1)[0], head[:200]
            while True:
                line = await reader.readline()
                if not line:
                    return
                self.received += len(line)
                if line.startswith(b"event: status"):
                    self.connected.set()
                elif line.startswith(b"data:"):
                    now = time.monotonic_ns()
                    for _, sent in MARK.findall(line):
                        self.latencies.append((now - int(sent)) / 1e9)
        finally:
            writer.close()

    def start(self, port: int, cookie: str, offset: int) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(port, cookie, offset))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class Tail:
    """The reference: ``tail -F`` on the same file, read by this process."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.received = 0

    async def start(self, log: Path) -> None:
        self.process = await asyncio.create_subprocess_exec(
            "tail", "-F", "-n", "0", str(log), stdout=asyncio.subprocess.PIPE)
        self.task = asyncio.get_running_loop().create_task(self._read())
        await asyncio.sleep(0.3)  # tail has opened the file and set its watch

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.received += len(line)
            now = time.monotonic_ns()
            for _, sent in MARK.findall(line):
                self.latencies.append((now - int(sent)) / 1e9)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    async def stop(self) -> None:
        self.process.terminate()
        await self.process.wait()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def connect(port: int, cookie: str, count: int, offset: int) -> tuple[list[Viewer], float]:
    """``count`` viewers from byte ``offset``, each past its first status event; and how
    long that took."""
    viewers = [Viewer() for _ in range(count)]
    began = time.perf_counter()
    for viewer in viewers:
        viewer.start(port, cookie, offset)
    try:
        await asyncio.wait_for(asyncio.gather(*(v.connected.wait() for v in viewers)), TIMEOUT)
    except BaseException:
        for viewer in viewers:
            await viewer.stop()
        raise
    return viewers, time.perf_counter() - began


def append(log: Path, data: bytes) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


async def write_marks(log: Path, marks: int, gap: float, start: int) -> None:
    for seq in range(start, start + marks):
        append(log, f"NOTE: MARK {seq} {time.monotonic_ns()}\n".encode())
        await asyncio.sleep(gap)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"
