"""Administrators = the members of a Linux group (``AUTO_BUILD_ADMIN_GROUP``), via grp/pwd."""

from __future__ import annotations

import grp
import logging
import pwd

log = logging.getLogger(__name__)


class GroupAdministrators:
    """Implements the Administrators port: a user is an administrator when ``group`` lists
    them as a member or is their primary group. No group configured (None or "") or a group
    that does not exist: nobody is. Looked up on every call, so membership changes apply at
    once (NSS caches such as nscd/sssd aside)."""

    def __init__(self, group: str | None) -> None:
        self._group = (group or "").strip() or None

    def is_admin(self, username: str) -> bool:
        if self._group is None or not username:
            return False
        try:
            entry = grp.getgrnam(self._group)
        except KeyError:
            log.warning("AUTO_BUILD_ADMIN_GROUP=%s: no such group; nobody is an administrator",
                        self._group)
            return False
        if username in entry.gr_mem:
            return True
        try:
            return pwd.getpwnam(username).pw_gid == entry.gr_gid
        except KeyError:
            return False
