"""Checkpoints that stop the process dead (as ``kill -9`` would) at one named step.

For the crash-consistency tests only (AUTO_BUILD_TEST_CRASH_AT=<step>): nothing after the
step runs, no cleanup, no ``finally``."""

from __future__ import annotations

import os
import signal
import sys


class CrashAt:
    def __init__(self, step: str | None) -> None:
        self._step = step

    def reached(self, name: str) -> None:
        if self._step is not None and name == self._step:
            print(f"autobuild: crashing at {name} (AUTO_BUILD_TEST_CRASH_AT)", file=sys.stderr,
                  flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
