"""A raw HTTP/1.0 client for the benchmarks (not a benchmark itself): one GET over a plain
socket, body counted as it arrives in 1 MiB reads and not kept (unless asked), so the client
costs little next to the server it measures, whatever the server is (app, nginx)."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

CHUNK = 1 << 20


@dataclass
class Got:
    status: int
    head: bytes
    seconds: float
    received: int  # bytes on the wire: head and body
    body: bytes  # when kept

    @property
    def mb_per_s(self) -> float:
        return self.received / 1e6 / self.seconds


def get(port: int, path: str, cookie: str = "", until: bytes | None = None, keep: bool = False,
        timeout: float = 300.0, headers: dict[str, str] | None = None) -> Got:
    """GET ``path`` from 127.0.0.1:``port`` until the server closes, or until ``until``
    arrives (an SSE stream's last event); the time covers connecting to the last byte."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    request = (f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n{extra}\r\n"
               .encode())
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    kept: list[bytes] = []
    head = b""
    received = 0
    tail = b""  # the end of what came so far, to find ``until`` across reads
    began = time.perf_counter()
    deadline = began + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        while True:
            sock.settimeout(max(0.1, deadline - time.perf_counter()))
            n = sock.recv_into(buffer)
            if not n:
                break
            received += n
            if len(head) < 4096 and b"\r\n\r\n" not in head:
                head += bytes(view[:min(n, 4096)])
            if keep:
                kept.append(bytes(view[:n]))
            if until is not None:
                tail = tail[-len(until):] + bytes(view[:n])
                if until in tail:
                    break
            if time.perf_counter() > deadline:
                raise TimeoutError(f"GET {path}: no end after {timeout:.0f} s")
    seconds = time.perf_counter() - began
    head = head.split(b"\r\n\r\n", 1)[0]
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    body = b"".join(kept)
    if keep:
        body = body.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in body else b""
    return Got(status, head, seconds, received, body)
