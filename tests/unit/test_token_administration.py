"""Administrators find and revoke any engineer's API tokens (a leak, an engineer leaving);
nobody else can, and the token itself is never kept, shown or logged."""

import logging

import pytest

from autobuild.domain.api_tokens import ApiTokens, InvalidApiToken, TokenAdministration
from autobuild.domain.permissions import NotAllowed
from tests.fakes import FakeAdministrators, FakeApiTokenStore, FakeClock, FakeMembers


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store():
    return FakeApiTokenStore()


@pytest.fixture
def tokens(store, clock):
    return ApiTokens(store, FakeMembers({"alice", "bob", "carol"}), clock)


@pytest.fixture
def admin(store, clock):
    return TokenAdministration(store, FakeAdministrators({"carol"}), clock)


def test_only_administrators_list_find_or_revoke(admin, tokens):
    made = tokens.create("bob", "ci")

    for user in ("alice", "bob", "", None):
        with pytest.raises(NotAllowed, match="Only build-server administrators"):
            admin.live(user)
        with pytest.raises(NotAllowed):
            admin.find(user, made.token)
        with pytest.raises(NotAllowed):
            admin.revoke(user, made.stored.id)
        with pytest.raises(NotAllowed):
            admin.revoke_all(user, "bob")
        assert not admin.may_administer(user)
    assert tokens.authenticate(made.token) == "bob"
    assert admin.may_administer("carol")


def test_without_an_admin_group_nobody_administers_tokens(store, clock, tokens):
    made = tokens.create("bob", "ci")
    nobody = TokenAdministration(store, FakeAdministrators(set()), clock)

    with pytest.raises(NotAllowed):
        nobody.revoke("carol", made.stored.id)


def test_an_administrator_lists_every_live_token_by_owner_newest_first(admin, tokens, clock):
    bob_old = tokens.create("bob", "old").stored
    clock.advance(60)
    bob_new = tokens.create("bob", "new").stored
    alice = tokens.create("alice", "ci").stored
    revoked = tokens.create("alice", "gone").stored
    tokens.revoke("alice", revoked.id)
    expired = tokens.create("alice", "short", expires_in_days=1).stored
    clock.advance(86400)

    assert admin.live("carol") == [alice, bob_new, bob_old]
    assert admin.live("carol", owner="bob") == [bob_new, bob_old]
    assert admin.live("carol", owner="dave") == []
    assert admin.state(expired) == "expired" and admin.state(bob_new) == "live"


def test_an_administrator_revokes_another_engineers_token_at_once_and_it_is_logged(
        admin, tokens, caplog):
    made = tokens.create("bob", "pasted in chat")
    other = tokens.create("bob", "kept")

    with caplog.at_level(logging.INFO):
        revoked = admin.revoke("carol", made.stored.id)

    assert revoked is not None and revoked.owner == "bob" and revoked.revoked_at is not None
    assert admin.state(revoked) == "revoked"
    assert tokens.authenticate(made.token) is None
    assert tokens.authenticate(other.token) == "bob"
    assert [t.id for t in tokens.list("bob")] == [other.stored.id]
    [line] = [r.getMessage() for r in caplog.records if "revoked API token" in r.getMessage()]
    assert line == f"autobuild: administrator 'carol' revoked API token {made.stored.id} of 'bob'"
    assert made.token not in caplog.text and made.token[12:] not in caplog.text
    assert admin.revoke("carol", made.stored.id) is None  # once
    assert admin.revoke("carol", "nosuchid") is None


def test_revoke_all_of_one_engineer_leaves_the_others(admin, tokens, caplog):
    bobs = [tokens.create("bob", f"t{n}") for n in range(3)]
    tokens.revoke("bob", bobs[0].stored.id)
    alices = tokens.create("alice", "ci")

    with caplog.at_level(logging.INFO):
        revoked = admin.revoke_all("carol", "bob")

    assert sorted(t.id for t in revoked) == sorted(b.stored.id for b in bobs[1:])
    assert all(tokens.authenticate(b.token) is None for b in bobs)
    assert tokens.authenticate(alices.token) == "alice"
    assert caplog.text.count("administrator 'carol' revoked API token") == 2
    assert admin.revoke_all("carol", "bob") == []
    assert admin.revoke_all("carol", "nobody-at-all") == []


def test_a_leaked_token_is_found_by_its_hash(admin, tokens):
    made = tokens.create("bob", "ci")

    assert admin.find("carol", made.token) == made.stored
    assert admin.find("carol", f'  "{made.token}"\n') == made.stored  # as pasted from a chat
    last = "A" if made.token[-1] != "A" else "B"
    assert admin.find("carol", made.token[:-1] + last) is None  # its id, not its secret


@pytest.mark.parametrize("shown", ["abt_{id}", "abt_{id}…", "abt_{id}...", "{id}",
                                   "abt_{id}{more}"])
def test_a_token_is_found_by_its_id_as_settings_shows_it_or_a_cut_off_token(
        admin, tokens, shown):
    made = tokens.create("bob", "ci")

    pasted = shown.format(id=made.stored.id, more=made.token[12:30])
    assert admin.find("carol", pasted) == made.stored


def test_a_revoked_token_is_still_found_for_a_while(admin, tokens):
    made = tokens.create("bob", "ci")
    tokens.revoke("bob", made.stored.id)

    found = admin.find("carol", made.token)
    assert found is not None and admin.state(found) == "revoked"


@pytest.mark.parametrize("pasted", ["", "abt_", "abt_1234", "short", "abt_" + "A" * 44,
                                    "glpat-xxxxxxxxxxxxxxxxxxxx", "abt_1234567é", "x" * 5000])
def test_what_is_neither_a_token_nor_an_id_is_refused(admin, tokens, pasted):
    tokens.create("bob", "ci")
    with pytest.raises(InvalidApiToken, match="Paste a token"):
        admin.find("carol", pasted)


def test_an_unknown_id_is_nobody(admin):
    assert admin.find("carol", "abt_ZZZZZZZZ") is None
