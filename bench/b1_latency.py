"""B1: latency from a line appended to a build log to an SSE viewer receiving it (issue 9).

Serves the real app with uvicorn in a child process (real JobDirectory on a real build tree,
so reads go through the owner-checked build tree and the inotify watch; the job row is kept
in memory), signs in, opens N live-log streams over loopback and appends timestamped lines
to the log. The reference, measured in the same run on the same file: ``tail -F``. Prints
p50/p99 per viewer count and the ratio to ``tail -F``, and how long N viewers took to connect.

    .venv/bin/python -m bench.b1_latency [--viewers 1,100,500] [--marks 40] [--gap 0.05]

Bounded: every wait has a timeout; the server and ``tail`` are ended when it is done.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

OWNER = pwd.getpwuid(os.getuid()).pw_name  # the build tree must be a real user's
PASSWORD = "bench-pw"
JOB_ID = 1
MARK = re.compile(rb"MARK (\d+) (\d+)")
TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def prepare(tmp: Path) -> Path:
    """A build tree with the (empty) log of a running job; returns the log's path."""
    old = os.umask(0o022)  # as a build writes it: nothing writable by group or others
    try:
        logs = tmp / "jobs" / OWNER / str(JOB_ID) / "logs"
        logs.mkdir(parents=True)
        (tmp / "data").mkdir()
        log = logs / "build.log"
        log.write_bytes(b"")
        return log
    finally:
        os.umask(old)


def serve(tmp: Path, port: int) -> None:
    """The child process: the app on 127.0.0.1:port, one RUNNING job of OWNER."""
    from datetime import UTC, datetime

    import uvicorn

    from autobuild.config import Settings
    from autobuild.domain.jobs import Job
    from autobuild.domain.ports import Running
    from autobuild.web.app import create_app
    from tests.fakes import (
        FakeAuthenticator,
        FakeClock,
        FakeJobFiles,
        FakeJobRepository,
        FakeMembers,
        FakeRunner,
    )

    now = datetime.now(UTC)
    repo = FakeJobRepository()
    job = Job(id=JOB_ID, owner=OWNER, repo_url="https://git.example.com/bsp/poky.git",
              ref="v1", machine="qemux86-64", target="core-image-minimal", created_at=now)
    job.start(now)
    repo.rows[JOB_ID] = job
    runner = FakeRunner(FakeJobFiles(), FakeClock())
    runner.states[JOB_ID] = Running()
    settings = Settings(db_path=tmp / "data" / "jobs.db", jobs_root=tmp / "jobs",
                        secret_key_file=tmp / "secret_key", dev_mode=True, use_sudo=False,
                        login_failures=10_000, max_streams_per_user=100_000)
    app = create_app(settings, overrides={
        "jobs": repo, "runner": runner, "auth": FakeAuthenticator({OWNER: PASSWORD}),
        "members": FakeMembers({OWNER}),
    })
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=2048)


class Server:
    """The app in a child process (so its CPU is its own)."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.b1_latency", "--serve", str(tmp), str(self.port)],
            cwd=Path(__file__).resolve().parents[1])
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.05)
        self.cookie = self._sign_in()

    def _sign_in(self) -> str:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}") as client:
            page = client.get("/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            response = client.post("/login", data={"username": OWNER, "password": PASSWORD,
                                                   "csrf_token": token})
            assert response.status_code == 303, response.status_code
            return "; ".join(f"{name}={value}" for name, value in client.cookies.items())

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


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
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def stop(self) -> None:
        self.process.terminate()
        await self.process.wait()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def connect(server: Server, count: int, offset: int) -> tuple[list[Viewer], float]:
    """``count`` viewers from byte ``offset``, each past its first status event; and how
    long that took."""
    viewers = [Viewer() for _ in range(count)]
    began = time.perf_counter()
    for viewer in viewers:
        viewer.start(server.port, server.cookie, offset)
    await asyncio.wait_for(asyncio.gather(*(v.connected.wait() for v in viewers)), TIMEOUT)
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


async def measure(server: Server, log: Path, count: int, marks: int, gap: float,
                  start: int) -> dict[str, float]:
    tail = Tail()
    await tail.start(log)
    viewers, connect_s = await connect(server, count, log.stat().st_size)
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


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


async def run(counts: list[int], marks: int, gap: float) -> None:
    raise_file_limit()
    tmp = Path(tempfile.mkdtemp(prefix="b1-latency-"))
    log = prepare(tmp)
    server = Server(tmp)
    try:
        print("B1 append -> SSE client, direct (loopback); reference: tail -F on the same file")
        print(f"{'viewers':>7} {'p50':>11} {'p99':>11} {'tail p50':>11} {'tail p99':>11} "
              f"{'p50 ratio':>10} {'p99 ratio':>10} {'connect':>9} missing")
        for n, count in enumerate(counts):
            r = await measure(server, log, count, marks, gap, start=n * marks)
            print(f"{count:7d} {ms(r['p50'])} {ms(r['p99'])} {ms(r['ref_p50'])} "
                  f"{ms(r['ref_p99'])} {r['p50'] / r['ref_p50']:9.1f}x "
                  f"{r['p99'] / r['ref_p99']:9.1f}x {r['connect_s']:8.3f}s {r['missing']}",
                  flush=True)
    finally:
        server.stop()


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        raise_file_limit()
        serve(Path(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--viewers", default="1,100,500")
    parser.add_argument("--marks", type=int, default=40)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between lines")
    args = parser.parse_args()
    counts = [int(c) for c in args.viewers.split(",")]
    asyncio.run(asyncio.wait_for(run(counts, args.marks, args.gap), 600))


if __name__ == "__main__":
    main()
