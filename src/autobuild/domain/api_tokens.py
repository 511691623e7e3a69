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
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from .ports import ApiTokenStore, Clock, Members, StoredApiToken

PREFIX = "abt_"
ID_LENGTH = 8
MAX_NAME = 64
MAX_EXPIRY_DAYS = 3650
MAX_PER_USER = 20
USE_RECORDED_EVERY = timedelta(seconds=60)
FORGET_AFTER = timedelta(days=30)  # revoked or expired tokens are listed no more, then forgotten
_TOKEN = re.compile(r"abt_[A-Za-z0-9_-]{43}")


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
        return token.expires_at is not None and self._clock.now() >= token.expires_at

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
