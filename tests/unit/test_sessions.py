"""Sessions: new id on sign-in, idle and absolute limits, sign-out everywhere, membership."""

from datetime import timedelta

import pytest

from autobuild.domain.sessions import TOUCH_EVERY, Sessions
from tests.fakes import FakeClock, FakeMembers, FakeSessionStore

HOURS = 8


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store():
    return FakeSessionStore()


@pytest.fixture
def members():
    return FakeMembers({"alice", "bob"})


@pytest.fixture
def sessions(store, members, clock):
    return Sessions(store, members, clock, timedelta(hours=HOURS))


def test_sign_in_makes_a_new_random_session_and_ends_the_one_it_replaces(sessions, store):
    first = sessions.start("alice")
    second = sessions.start("alice", replacing=first.id)

    assert first.id != second.id and first.csrf != second.csrf
    assert len(second.id) >= 40 and len(second.csrf) >= 40
    assert sessions.resume(first.id) is None
    assert sessions.resume(second.id) == second
    assert list(store.rows) == [second.id]


def test_ending_a_session_ends_it_for_every_holder(sessions):
    session = sessions.start("alice")
    sessions.end(session.id)

    assert sessions.resume(session.id) is None


@pytest.mark.parametrize("bad", [None, "", "unknown", "x" * 500, 42])
def test_unknown_or_malformed_ids_are_no_session(sessions, bad):
    sessions.start("alice")
    assert sessions.resume(bad) is None


def test_an_unused_session_ends_after_the_idle_limit(store, members, clock):
    sessions = Sessions(store, members, clock, timedelta(hours=HOURS), idle=timedelta(hours=1))
    session = sessions.start("alice")
    clock.advance(3600 - 1)
    assert sessions.resume(session.id) is not None  # used just in time: counts as use

    clock.advance(3600 - 1)
    assert sessions.resume(session.id) is not None  # idle < 1 h since that use
    clock.advance(3600)

    assert sessions.resume(session.id) is None
    assert session.id not in store.rows


def test_by_default_the_idle_limit_is_the_lifetime(sessions, clock):
    session = sessions.start("alice")
    clock.advance(HOURS * 3600 - 1)
    assert sessions.resume(session.id) is not None
    clock.advance(1)

    assert sessions.resume(session.id) is None


def test_a_session_in_constant_use_still_ends_after_the_absolute_limit(sessions, clock):
    session = sessions.start("alice")
    for _ in range(HOURS * 4 - 1):  # every 15 minutes
        clock.advance(15 * 60)
        assert sessions.resume(session.id) is not None
    clock.advance(15 * 60)

    assert sessions.resume(session.id) is None


def test_use_is_written_at_most_once_a_minute(sessions, clock, store):
    session = sessions.start("alice")
    clock.advance(TOUCH_EVERY.total_seconds() / 2)
    sessions.resume(session.id)
    assert store.rows[session.id].last_seen_at == session.created_at

    clock.advance(TOUCH_EVERY.total_seconds())
    sessions.resume(session.id)
    assert store.rows[session.id].last_seen_at == clock.now()


def test_a_user_who_left_the_group_loses_every_session(sessions, members, store):
    one, two = sessions.start("alice"), sessions.start("alice")
    bobs = sessions.start("bob")
    members.members.discard("alice")

    assert sessions.resume(one.id) is None
    assert store.of("alice") == []  # the other one ended too
    assert two.id not in store.rows
    assert sessions.resume(bobs.id) == bobs


def test_signing_in_forgets_sessions_past_their_limit(sessions, clock, store):
    old = sessions.start("bob")
    clock.advance(HOURS * 3600 + 1)
    sessions.start("alice")

    assert old.id not in store.rows


def test_end_all_of_a_user(sessions, store):
    sessions.start("alice"), sessions.start("alice"), sessions.start("bob")

    assert sessions.end_all_of("alice") == 2
    assert [s.user for s in store.rows.values()] == ["bob"]
