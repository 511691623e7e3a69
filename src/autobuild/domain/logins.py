"""Failed logins: the brake on guessing passwords.

Business rules:
- at most ``max_failures`` failed logins within ``window`` per user name and per client
  address; beyond that no password is checked (not even the right one) until the oldest
  failure in the window is ``window`` old;
- every user name counts the same, whether it exists, is a member or not (so the brake says
  nothing about who exists);
- a successful login clears its user name's failures (not its address's);
- memory stays bounded whatever names and addresses are tried.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from datetime import datetime, timedelta

from .ports import Clock

DEFAULT_WINDOW = timedelta(minutes=1)
MAX_KEYS = 10_000  # names + addresses remembered; the least recently failed go first


class LoginThrottled(Exception):
    """Too many failed logins for this user name or from this address; the message is fit to
    show and ``retry_after`` says in how many whole seconds a new try is checked."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed sign-ins. Try again in {retry_after} seconds.")
        self.retry_after = retry_after


class LoginThrottle:
    """Not thread-safe: the web layer uses it from the event loop only."""

    def __init__(self, clock: Clock, max_failures: int = 5,
                 window: timedelta = DEFAULT_WINDOW, max_keys: int = MAX_KEYS) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self._clock = clock
        self._max = max_failures
        self._window = window
        self._max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], deque[datetime]] = OrderedDict()

    def check(self, username: str, address: str) -> None:
        """Raises LoginThrottled when a login for ``username`` from ``address`` must not be
        checked now."""
        now = self._clock.now()
        waits = [self._wait(key, now) for key in self._keys(username, address)]
        wait = max(waits)
        if wait > 0:
            raise LoginThrottled(max(1, math.ceil(wait)))

    def failed(self, username: str, address: str) -> None:
        now = self._clock.now()
        for key in self._keys(username, address):
            times = self._failures.pop(key, None) or deque()
            self._prune(times, now)
            times.append(now)
            while len(times) > self._max:
                times.popleft()
            self._failures[key] = times  # most recently failed last
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        self._failures.pop(("user", username.casefold()), None)

    def _keys(self, username: str, address: str) -> tuple[tuple[str, str], ...]:
        return (("user", username.casefold()), ("address", address))

    def _prune(self, times: deque[datetime], now: datetime) -> None:
        while times and now - times[0] >= self._window:
            times.popleft()

    def _wait(self, key: tuple[str, str], now: datetime) -> float:
        times = self._failures.get(key)
        if not times:
            return 0.0
        self._prune(times, now)
        if len(times) < self._max:
            return 0.0
        return (times[0] + self._window - now).total_seconds()
