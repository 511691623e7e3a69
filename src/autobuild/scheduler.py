"""The one in-process scheduler: starts queued builds and records ended ones, at once when the
runner says a build may have ended (or a job was queued), and every ``interval`` seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .domain.ports import BuildRunner
from .domain.supervision import Supervisor

log = logging.getLogger(__name__)


class Scheduler:
    """Runs ``Supervisor.reconcile`` until it succeeds once, then ``Supervisor.tick`` every
    ``interval`` seconds or at once after ``wake()``."""

    def __init__(self, supervisor: Supervisor, runner: BuildRunner, interval: float = 1.0) -> None:
        self._supervisor = supervisor
        self._interval = interval
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        runner.on_change(self.wake)

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
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wakeup.set)

    async def _run(self) -> None:
        assert self._wakeup is not None
        step = self._supervisor.reconcile
        while True:
            self._wakeup.clear()
            try:
                await asyncio.to_thread(step)
            except Exception:  # a broken tick must not stop the scheduler for good
                log.exception("scheduler tick failed")
            else:
                # Ticks only once reconcile has succeeded: before, a runner a stopped service
                # launched but did not record would be launched a second time.
                step = self._supervisor.tick
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._interval)
