"""Personal API tokens: shown once, kept hashed, named, expiring, revoked, members only."""

import hashlib
from datetime import timedelta

import pytest

from autobuild.domain.api_tokens import (
    MAX_EXPIRY_DAYS, PREFIX, USE_RECORDED_EVERY, ApiTokens, InvalidApiToken, digest,
    looks_like_token, parse_expiry_days, token_id,
)
from tests.fakes import FakeApiTokenStore, FakeClock, FakeMembers


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store():
    return FakeApiTokenStore()


@pytest.fixture
def members():
    return FakeMembers({"alice", "bob"})


@pytest.fixture
def tokens(store, members, clock):
    return ApiTokens(store, members, clock, max_per_user=3)


def test_a_token_has_the_prefix_256_random_bits_and_only_its_hash_is_kept(tokens, store):
    made = tokens.create("alice", "nightly CI")

    assert made.token.startswith(PREFIX) and len(made.token) == len(PREFIX) + 43
    assert looks_like_token(made.token)
    assert made.stored.id == made.token[4:12] == token_id(made.token)
    assert made.stored.digest == hashlib.sha256(made.token.encode()).hexdigest()
    assert made.token not in repr(store.rows)  # not the token, not even inside another field
    assert tokens.create("alice", "other").token != made.token


def test_a_live_token_is_its_owner_and_records_its_use(tokens, store, clock):
    made = tokens.create("alice", "ci")

    assert tokens.authenticate(made.token) == "alice"
    assert store.get(made.stored.id).last_used_at == clock.now()


def test_last_use_is_written_at_most_once_a_minute(tokens, store, clock):
    made = tokens.create("alice", "ci")
    tokens.authenticate(made.token)
    writes = store.writes
    first_use = clock.now()

    clock.advance(USE_RECORDED_EVERY.total_seconds() - 1)
    assert tokens.authenticate(made.token) == "alice"
    assert store.writes == writes and store.get(made.stored.id).last_used_at == first_use
    clock.advance(1)
    assert tokens.authenticate(made.token) == "alice"
    assert store.get(made.stored.id).last_used_at == clock.now()


@pytest.mark.parametrize("presented", [
    "", "abt_", "Bearer", "abt_" + "A" * 42, "abt_" + "A" * 44, "abx_" + "A" * 43,
    "abt_" + "A" * 42 + "=", "abt_" + "A" * 42 + "é", "abt_" + "A" * 42 + "\n",
])
def test_malformed_tokens_are_nobody(tokens, presented):
    tokens.create("alice", "ci")
    assert tokens.authenticate(presented) is None


def test_a_token_with_a_known_id_but_other_secret_is_nobody(tokens):
    made = tokens.create("alice", "ci")
    last = "A" if made.token[-1] != "A" else "B"

    assert tokens.authenticate(made.token[:-1] + last) is None
    assert tokens.authenticate(PREFIX + "x" * 43) is None  # unknown id


def test_an_expired_token_is_nobody_from_the_moment_it_expires(tokens, clock):
    made = tokens.create("alice", "ci", expires_in_days=2)
    assert made.stored.expires_at == clock.now() + timedelta(days=2)

    clock.advance(2 * 86400 - 1)
    assert tokens.authenticate(made.token) == "alice"
    clock.advance(1)
    assert tokens.authenticate(made.token) is None
    assert tokens.is_expired(tokens.list("alice")[0])


def test_a_revoked_token_is_nobody_at_once_and_leaves_the_list(tokens):
    made = tokens.create("alice", "ci")
    kept = tokens.create("alice", "laptop")

    assert tokens.revoke("alice", made.stored.id)
    assert tokens.authenticate(made.token) is None
    assert [t.name for t in tokens.list("alice")] == ["laptop"]
    assert tokens.authenticate(kept.token) == "alice"
    assert not tokens.revoke("alice", made.stored.id)  # already revoked


def test_nobody_revokes_or_sees_another_engineers_token(tokens):
    made = tokens.create("alice", "ci")

    assert not tokens.revoke("bob", made.stored.id)
    assert tokens.list("bob") == []
    assert tokens.authenticate(made.token) == "alice"


def test_a_removed_member_is_refused_and_accepted_again_when_added_back(tokens, members):
    made = tokens.create("alice", "ci")

    members.members.discard("alice")
    assert tokens.authenticate(made.token) is None
    members.members.add("alice")
    assert tokens.authenticate(made.token) == "alice"


def test_live_tokens_are_capped_per_user_revoked_and_expired_do_not_count(tokens, clock):
    short = tokens.create("alice", "one", expires_in_days=1)
    second = tokens.create("alice", "two")
    tokens.create("alice", "three")

    with pytest.raises(InvalidApiToken, match="already have 3 tokens"):
        tokens.create("alice", "four")
    tokens.create("bob", "bob's own")  # the cap is per user
    tokens.revoke("alice", second.stored.id)
    tokens.create("alice", "four")
    clock.advance(86400)
    assert tokens.is_expired(next(t for t in tokens.list("alice") if t.id == short.stored.id))
    tokens.create("alice", "five")


def test_tokens_revoked_or_expired_long_ago_are_forgotten(tokens, store, clock):
    old = tokens.create("alice", "old")
    tokens.revoke("alice", old.stored.id)
    clock.advance(31 * 86400)

    tokens.create("alice", "new")
    assert old.stored.id not in store.rows


@pytest.mark.parametrize("name, message", [
    ("", "Give the token a name"), ("   ", "Give the token a name"),
    ("x" * 65, "at most 64"), ("a\nb", "control"), ("a\x00b", "control"),
])
def test_names_are_required_bounded_and_printable(tokens, name, message):
    with pytest.raises(InvalidApiToken, match=message):
        tokens.create("alice", name)


def test_names_are_stripped_and_may_be_any_printable_text(tokens):
    assert tokens.create("alice", "  Release script (ü) ").stored.name == "Release script (ü)"
    assert tokens.create("alice", "x" * 64).stored.name == "x" * 64


@pytest.mark.parametrize("text, days", [("", None), ("  ", None), ("1", 1), (" 30 ", 30),
                                        (str(MAX_EXPIRY_DAYS), MAX_EXPIRY_DAYS)])
def test_expiry_days_from_the_form(text, days):
    assert parse_expiry_days(text) == days


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "3651", "99999", "abc", "١", "1e3"])
def test_bad_expiry_days_are_refused(text):
    with pytest.raises(InvalidApiToken, match="whole number of days"):
        parse_expiry_days(text)


def test_the_digest_is_sha256_hex():
    assert digest("abt_x") == hashlib.sha256(b"abt_x").hexdigest()
