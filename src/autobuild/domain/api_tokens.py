"""Personal API tokens: what lets a script call the API as an engineer.

Business rules:
- a token is ``abt_`` and 43 URL-safe characters (256 random bits); the prefix lets secret
  scanners find a leaked one; it is shown once, when made, and only its sha256 is kept, with
  ``id``, its first 8 characters after the prefix, to name it (an id is never reused);
- an engineer names each token (1-64 printable characters) and may give it a lifetime in
  whole days (1-3650); without one it lasts until revoked;
- an engineer has at most ``max_per_user`` live (unrevoked, unexpired) tokens, sees and
  revokes only their own;
- a token is accepted only while it is unrevoked, unexpired, matches the stored hash
  (compared in constant time) and its owner is a member of the users group (Members port):
  a removed member's tokens are refused, and work again only if they are added back;
- its last use is recorded at most once a minute (reading the API does not write the
  database on every request);
- a refusal never says why: unknown, malformed, revoked and expired look the same.

TokenAdministration: what an administrator does with every engineer's tokens (a token pasted
in a public chat, an engineer leaving); its rules are in its docstring.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from .permissions import NotAllowed
from .ports import Administrators, ApiTokenStore, Clock, Members, StoredApiToken

PREFIX = "abt_"
ID_LENGTH = 8
MAX_NAME = 64
MAX_EXPIRY_DAYS = 3650
MAX_PER_USER = 20
USE_RECORDED_EVERY = timedelta(seconds=60)
FORGET_AFTER = timedelta(days=30)  # revoked or expired tokens are listed no more, then forgotten
_TOKEN = re.compile(r"abt_[A-Za-z0-9_-]{43}")
# What an administrator may paste to find a token: the token, its first part as Settings shows
# it ("abt_" and the id, a "…" after it) or the bare id; surrounding blanks and quotes go.
_ID_OR_PREFIX = re.compile(r"(?:abt_(?P<id>[A-Za-z0-9_-]{8})[A-Za-z0-9_-]{0,34}"
                           r"|(?!abt_)(?P<bare>[A-Za-z0-9_-]{8}))(?:…|\.\.\.)?")
_PASTE_NOISE = " \t\r\n\"'`<>"
MAX_LOOKUP = 256

log = logging.getLogger(__name__)


class InvalidApiToken(Exception):
    """A token cannot be made as asked; the message is fit to show."""


@dataclass(frozen=True)
class NewApiToken:
    """A token just made: ``token`` is the secret, shown once and kept nowhere."""

    token: str
    stored: StoredApiToken


def digest(token: str) -> str:
    """The hex sha256 kept in place of ``token`` (it has 256 random bits: no salt or slow
    hash is needed to keep it from being guessed back)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def token_id(token: str) -> str:
    return token[len(PREFIX):len(PREFIX) + ID_LENGTH]


def clean_name(name: str) -> str:
    """``name`` stripped, or InvalidApiToken."""
    name = name.strip()
    if not name:
        raise InvalidApiToken("Give the token a name (what uses it, e.g. \"nightly CI\").")
    if len(name) > MAX_NAME:
        raise InvalidApiToken(f"A token name has at most {MAX_NAME} characters.")
    if not name.isprintable():
        raise InvalidApiToken("A token name has no line breaks or control characters.")
    return name


def parse_expiry_days(text: str) -> int | None:
    """The lifetime typed in the form: empty means none, else 1-3650 whole days."""
    text = text.strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 4 \
            or not 1 <= int(text) <= MAX_EXPIRY_DAYS:
        raise InvalidApiToken(
            f"The lifetime is a whole number of days from 1 to {MAX_EXPIRY_DAYS}, or empty "
            "for a token that lasts until you revoke it.")
    return int(text)


class ApiTokens:
    def __init__(self, store: ApiTokenStore, members: Members, clock: Clock,
                 max_per_user: int = MAX_PER_USER) -> None:
        self._store = store
        self._members = members
        self._clock = clock
        self._max = max_per_user

    def create(self, owner: str, name: str, expires_in_days: int | None = None) -> NewApiToken:
        """A new token for ``owner``; InvalidApiToken for a bad name or lifetime or when
        they already hold the most live tokens allowed."""
        name = clean_name(name)
        if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
            raise InvalidApiToken(f"A lifetime is 1 to {MAX_EXPIRY_DAYS} days.")
        now = self._clock.now()
        self._store.delete_ended_before(owner, now - FORGET_AFTER)
        if sum(1 for t in self._store.of_owner(owner) if self._is_live(t)) >= self._max:
            raise InvalidApiToken(f"You already have {self._max} tokens; revoke one you no "
                                  "longer use first.")
        while True:
            token = PREFIX + secrets.token_urlsafe(32)
            if looks_like_token(token) and self._store.get(token_id(token)) is None:
                break  # an id is never reused, even a revoked one's
        stored = StoredApiToken(
            id=token_id(token), owner=owner, name=name, digest=digest(token), created_at=now,
            expires_at=None if expires_in_days is None else now + timedelta(days=expires_in_days))
        self._store.add(stored)
        return NewApiToken(token=token, stored=stored)

    def list(self, owner: str) -> list[StoredApiToken]:
        """``owner``'s tokens not revoked, newest first (expired ones too, until forgotten)."""
        return [t for t in self._store.of_owner(owner) if t.revoked_at is None]

    def revoke(self, owner: str, token_id: str) -> bool:
        """Revoke ``owner``'s token ``token_id``; False when they have no such live token."""
        return self._store.revoke(token_id, owner, self._clock.now())

    def is_expired(self, token: StoredApiToken) -> bool:
        return expired_at(token, self._clock.now())

    def authenticate(self, presented: str) -> str | None:
        """The owner of the live token ``presented``, or None."""
        if not isinstance(presented, str) or not looks_like_token(presented):
            return None
        stored = self._store.get(token_id(presented))
        if stored is None or not secrets.compare_digest(digest(presented), stored.digest):
            return None
        if not self._is_live(stored) or not self._members.is_member(stored.owner):
            return None
        now = self._clock.now()
        if stored.last_used_at is None or now - stored.last_used_at >= USE_RECORDED_EVERY:
            self._store.mark_used(stored.id, now)
        return stored.owner

    def _is_live(self, token: StoredApiToken) -> bool:
        return token.revoked_at is None and not self.is_expired(token)


def expired_at(token: StoredApiToken, now: datetime) -> bool:
    """Whether ``token`` has expired at ``now`` (the one rule for engineers and admins)."""
    return token.expires_at is not None and now >= token.expires_at


TokenState = Literal["live", "expired", "revoked"]


class TokenAdministration:
    """What an administrator (the Administrators port) does with every engineer's API tokens:
    answer a leak ("a token of bob's was pasted in a public chat") or an engineer leaving.

    Business rules:
    - only administrators: anyone else gets NotAllowed for every method here (an engineer
      sees and revokes only their own tokens, through ApiTokens);
    - they list every live (unrevoked, unexpired) token of every engineer, or of one;
    - they find a token from what was leaked: the whole token matches only by its sha256
      (compared in constant time), its first part or bare id (``abt_1a2B3c4D…``) by the id;
      the token itself is never kept, shown back or logged;
    - they revoke any engineer's token, or all of one engineer's, at once: the API refuses
      them from the next request on;
    - every revoke is logged, naming the administrator, the owner and the token id.
    """

    NOT_ALLOWED = "Only build-server administrators may see or revoke other engineers' API tokens."

    def __init__(self, store: ApiTokenStore, admins: Administrators, clock: Clock) -> None:
        self._store = store
        self._admins = admins
        self._clock = clock

    def may_administer(self, user: str | None) -> bool:
        return user is not None and user != "" and self._admins.is_admin(user)

    def check(self, user: str | None) -> None:
        """NotAllowed unless ``user`` is an administrator."""
        if not self.may_administer(user):
            raise NotAllowed(self.NOT_ALLOWED)

    def state(self, token: StoredApiToken) -> TokenState:
        if token.revoked_at is not None:
            return "revoked"
        if expired_at(token, self._clock.now()):
            return "expired"
        return "live"

    def live(self, admin: str, owner: str | None = None) -> list[StoredApiToken]:
        """Every live token (of ``owner`` only, when given), by owner, newest first."""
        self.check(admin)
        return self._store.live_at(self._clock.now(), owner)

    def find(self, admin: str, pasted: str) -> StoredApiToken | None:
        """The token ``pasted`` names, whatever its state (a leak may be found after it was
        revoked), or None; InvalidApiToken when ``pasted`` is neither a token nor an id."""
        self.check(admin)
        text = pasted[:MAX_LOOKUP].strip(_PASTE_NOISE)
        if looks_like_token(text):
            stored = self._store.get(token_id(text))
            if stored is None or not secrets.compare_digest(digest(text), stored.digest):
                return None  # its id may exist, but this is not that token
            return stored
        match = _ID_OR_PREFIX.fullmatch(text)
        if match is None:
            raise InvalidApiToken(
                "Paste a token (abt_ and 43 characters), or its id as Settings shows it "
                "(abt_ and 8 characters).")
        return self._store.get(match.group("id") or match.group("bare"))

    def revoke(self, admin: str, token_id: str) -> StoredApiToken | None:
        """Revoke token ``token_id`` whoever owns it; the token as it is now, or None when
        there is no such unrevoked token."""
        self.check(admin)
        token = self._store.get(token_id)
        if token is None or token.revoked_at is not None:
            return None
        return self._revoke(admin, token)

    def revoke_all(self, admin: str, owner: str) -> list[StoredApiToken]:
        """Revoke every unrevoked token of ``owner`` (expired ones too); those revoked."""
        self.check(admin)
        revoked = []
        for token in self._store.of_owner(owner):
            if token.revoked_at is None and (done := self._revoke(admin, token)) is not None:
                revoked.append(done)
        return revoked

    def _revoke(self, admin: str, token: StoredApiToken) -> StoredApiToken | None:
        now = self._clock.now()
        if not self._store.revoke(token.id, token.owner, now):
            return None  # revoked meanwhile
        # The id only, never the token (it is not known here anyway, only its hash).
        log.warning("autobuild: administrator '%s' revoked API token %s of '%s'",
                    admin, token.id, token.owner)
        return dataclasses.replace(token, revoked_at=now)
