"""Linux groups via grp/pwd: the administrators (``AUTO_BUILD_ADMIN_GROUP``) and the members
who may use the service (``AUTO_BUILD_USERS_GROUP``)."""

from __future__ import annotations

import grp
import logging
import os
import pwd
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class CachedGroup:
    """Who is in one Linux group (listed as a member, or by primary group), each answer kept
    ``ttl`` seconds: asked on every request and for every row of a list, the group databases
    need not be read each time, and a change applies within ``ttl``. A group that does not
    exist has no members (logged, naming the ``setting`` and its ``consequence``)."""

    def __init__(self, group: str, setting: str, consequence: str, ttl: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._group, self._setting, self._consequence = group, setting, consequence
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[bool, float]] = {}

    def __contains__(self, username: str) -> bool:
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(username)
            if cached is not None and now < cached[1]:
                return cached[0]
        answer = in_group(username, self._group, self._setting, self._consequence)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[username] = (answer, now + self._ttl)
        return answer


class GroupAdministrators:
    """Implements the Administrators port: the members of ``group`` (CachedGroup: a change
    applies within ``ttl`` seconds). No group configured (None or ""), or a group that does
    not exist: nobody is an administrator."""

    def __init__(self, group: str | None, ttl: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        group = (group or "").strip()
        self._members = CachedGroup(group, "AUTO_BUILD_ADMIN_GROUP",
                                    "nobody is an administrator", ttl, monotonic) if group else None

    def is_admin(self, username: str) -> bool:
        return self._members is not None and username in self._members


class GroupMembers:
    """Implements the Members port: the members of ``group`` (CachedGroup: a removed member
    loses access within ``ttl`` seconds). A group that does not exist has no members."""

    def __init__(self, group: str, ttl: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._members = CachedGroup(group, "AUTO_BUILD_USERS_GROUP", "nobody may sign in",
                                    ttl, monotonic)

    def is_member(self, username: str) -> bool:
        return username in self._members


def in_group(username: str, group: str, setting: str, consequence: str) -> bool:
    """``username`` is listed in ``group`` or has it as primary group; a group that does not
    exist has no members (logged, naming the ``setting`` and its ``consequence``)."""
    if not username:
        return False
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        log.warning("%s=%s: no such group; %s", setting, group, consequence)
        return False
    if username in entry.gr_mem:
        return True
    try:
        return pwd.getpwnam(username).pw_gid == entry.gr_gid
    except KeyError:
        return False


class ServiceUserOnly:
    """The Members port without sudo (developer machines, tests): the runner can only check
    the password of the user the service runs as, so that user is the only member."""

    def is_member(self, username: str) -> bool:
        return bool(username) and username == pwd.getpwuid(os.getuid()).pw_name


def members_for(group: str, use_sudo: bool) -> GroupMembers | ServiceUserOnly:
    """The Members adapter for this configuration: the users group, or without sudo (where
    only the service's own user can sign in) that user."""
    return GroupMembers(group) if use_sudo else ServiceUserOnly()
