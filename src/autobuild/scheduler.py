"""The one in-process scheduler: a loop that records finished builds and starts queued ones."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .domain.services import JobService

log = logging.getLogger(__name__)


class Scheduler:
    """Runs ``JobService.tick`` every ``interval`` seconds, or at once after ``wake()``."""

    def __init__(self, service: JobService, interval: float = 1.0) -> None:
        self._service = service
        self._interval = interval
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._task = self._loop.create_task(self._run(), name="autobuild-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Ask for a tick now (safe from any thread)."""
        if self._loop is not None and self._wakeup is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            try:
                await asyncio.to_thread(self._service.tick)
            except Exception:  # a broken tick must not stop the scheduler for good
                log.exception("scheduler tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._interval)
            self._wakeup.clear()
