"""One background thread per notifier: slow or dead servers never hold up the service.

Not a plugin itself (the leading underscore): the notification plugins share it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class BackgroundSender:
    """Runs each submitted delivery in a daemon thread, retrying it with a growing pause.

    ``submit`` never blocks: when ``maxsize`` deliveries already wait, the new one is dropped
    and logged. The thread starts with the first delivery, not before. Deliveries still
    queued when the service stops are lost (it is a notification, not a record).
    """

    def __init__(self, name: str, attempts: int = 3, backoff: float = 2.0,
                 maxsize: int = 200) -> None:
        self._name = name
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._queue: queue.Queue[tuple[str, Callable[[], None]]] = queue.Queue(maxsize)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, what: str, deliver: Callable[[], None]) -> bool:
        """Queue ``deliver`` (described as ``what`` in the log); False when it was dropped."""
        try:
            self._queue.put_nowait((what, deliver))
        except queue.Full:
            log.warning("%s: %d notifications are waiting; dropped %s",
                        self._name, self._queue.maxsize, what)
            return False
        self._ensure_thread()
        return True

    def wait_idle(self, timeout: float) -> bool:
        """True once every queued delivery has been tried (for tests and a clean stop)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            what, deliver = self._queue.get()
            try:
                self._try(what, deliver)
            finally:
                self._queue.task_done()

    def _try(self, what: str, deliver: Callable[[], None]) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                deliver()
                return
            except Exception as exc:  # any failure of a server is retried, then logged
                if attempt == self._attempts:
                    log.error("%s: giving up on %s after %d attempts: %s",
                              self._name, what, attempt, exc)
                    return
                pause = self._backoff * 2 ** (attempt - 1)
                log.warning("%s: %s failed (%s); retrying in %.1fs", self._name, what, exc, pause)
                time.sleep(pause)
