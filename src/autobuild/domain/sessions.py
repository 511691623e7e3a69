"""Sessions: who is signed in, for how long, and when that ends.

Business rules:
- a session lives ``lifetime`` after sign-in at most (absolute) and ends when unused for
  ``idle`` (by default the same: AUTO_BUILD_SESSION_HOURS is both);
- signing in always makes a new session with a new random id (no fixation); the one it
  replaces ends;
- signing out ends the session for every browser or script that holds its id;
- a user who is no longer a member of the users group loses every session at the next use
  (membership is looked up through the Members port, which may cache it briefly);
- ids and CSRF tokens are 256-bit random values; an unknown id is simply not a session.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from .ports import Clock, Members, SessionStore, StoredSession

# Last use is written at most this often, so reading pages does not write the database
# on every request; the idle limit is then exact to within this.
TOUCH_EVERY = timedelta(seconds=60)


def new_token() -> str:
    return secrets.token_urlsafe(32)


class Sessions:
    def __init__(self, store: SessionStore, members: Members, clock: Clock,
                 lifetime: timedelta, idle: timedelta | None = None) -> None:
        self._store = store
        self._members = members
        self._clock = clock
        self._lifetime = lifetime
        self._idle = min(idle, lifetime) if idle is not None else lifetime

    @property
    def lifetime(self) -> timedelta:
        return self._lifetime

    def start(self, user: str, replacing: str | None = None) -> StoredSession:
        """A new session for ``user``; the session ``replacing`` (if any) ends."""
        if replacing:
            self._store.delete(replacing)
        self.purge_expired()  # sign-ins are rare: a good moment to forget dead sessions
        now = self._clock.now()
        session = StoredSession(id=new_token(), user=user, csrf=new_token(),
                                created_at=now, last_seen_at=now)
        self._store.add(session)
        return session

    def resume(self, session_id: str | None) -> StoredSession | None:
        """The live session with this id, or None (unknown, expired, or its user is no longer
        a member: such sessions are ended here)."""
        if not session_id or not isinstance(session_id, str) or len(session_id) > 128:
            return None
        session = self._store.get(session_id)
        if session is None:
            return None
        now = self._clock.now()
        if (now - session.created_at >= self._lifetime
                or now - session.last_seen_at >= self._idle):
            self._store.delete(session_id)
            return None
        if not self._members.is_member(session.user):
            self._store.delete_user(session.user)
            return None
        if now - session.last_seen_at >= TOUCH_EVERY:
            self._store.touch(session_id, now)
        return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._store.delete(session_id)

    def end_all_of(self, user: str) -> int:
        return self._store.delete_user(user)

    def purge_expired(self) -> int:
        """Forget sessions past their idle limit; those past the absolute limit are only
        forgotten here once idle too (resume refuses them anyway)."""
        return self._store.delete_unused_since(self._clock.now() - self._idle)
