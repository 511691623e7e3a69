"""How password checks are paced: a bounded number in flight, and every failed login answered
after the same time, whoever the user is.

A wrong password for a member costs PAM its failure delay (~2 s), while an unknown user or a
non-member is refused at once; padding every failure to ``failure_seconds`` after the request
began makes them indistinguishable. The padding is an async sleep: it holds no worker thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Protocol

from fastapi.concurrency import run_in_threadpool

QUEUE_WAIT_SECONDS = 5.0  # a check waits this long for a free slot, then gets 503
SLOT_POLL_SECONDS = 0.05


class Timer(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemTimer:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class LoginBusy(Exception):
    """Too many password checks are in flight; the message is fit to show (503)."""

    retry_after = 5

    def __init__(self) -> None:
        super().__init__("Too many people are signing in right now. Try again in a few seconds.")


class LoginPacer:
    def __init__(self, max_checks: int, failure_seconds: float, timer: Timer | None = None,
                 queue_wait: float | None = None) -> None:
        self._max_checks = max_checks
        self._failure_seconds = failure_seconds
        self._timer = timer or SystemTimer()
        self._queue_wait = queue_wait
        # A counter, not an asyncio.Semaphore: it must not belong to one event loop.
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def failure_seconds(self) -> float:
        return self._failure_seconds

    def started(self) -> float:
        """The moment a login attempt began (pass it to ``pad_failure``)."""
        return self._timer.monotonic()

    async def check(self, authenticate: Callable[[str, str], bool], username: str,
                    password: str) -> bool:
        """``authenticate(username, password)`` in a worker thread, at most ``max_checks`` at
        once; raises LoginBusy when no slot frees within the queue wait."""
        wait = QUEUE_WAIT_SECONDS if self._queue_wait is None else self._queue_wait
        deadline = time.monotonic() + wait
        while not self._take_slot():
            if time.monotonic() >= deadline:
                raise LoginBusy()
            await asyncio.sleep(SLOT_POLL_SECONDS)
        try:
            return await run_in_threadpool(authenticate, username, password)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _take_slot(self) -> bool:
        with self._lock:
            if self._in_flight >= self._max_checks:
                return False
            self._in_flight += 1
            return True

    async def pad_failure(self, started: float) -> float:
        """Sleep until ``failure_seconds`` after ``started``; returns how long it slept."""
        remaining = started + self._failure_seconds - self._timer.monotonic()
        if remaining > 0:
            await self._timer.sleep(remaining)
        return max(0.0, remaining)
