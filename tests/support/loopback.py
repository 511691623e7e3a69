"""Servers on loopback for tests: a free port, waiting until something listens there, and an
app served by uvicorn in a thread of the test process (HTTPS when given a certificate)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"nothing listens on {port}")


@contextlib.contextmanager
def serving(app: Any, **config: Any) -> Iterator[int]:
    """``app`` served by uvicorn on 127.0.0.1 until the block ends; yields its port.
    ``config`` goes to uvicorn.Config (e.g. ssl_certfile and ssl_keyfile for HTTPS)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
