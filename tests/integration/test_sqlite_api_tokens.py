"""The API token store on the real SQLite file, and its migration."""

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from autobuild.adapters.sqlite_api_tokens import SqliteApiTokenStore
from autobuild.adapters.sqlite_jobs import MIGRATIONS, SCHEMA_VERSION, SqliteJobRepository
from autobuild.domain.api_tokens import ApiTokens, TokenAdministration
from autobuild.domain.ports import StoredApiToken
from tests.fakes import FakeAdministrators, FakeClock, FakeMembers

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    return SqliteApiTokenStore(tmp_path / "jobs.db")


def token(tid, owner="alice", at=T0, **fields):
    return StoredApiToken(id=tid, owner=owner, name=f"name {tid}", digest="d" * 64,
                          created_at=at, **fields)


def test_tokens_are_stored_read_listed_newest_first_and_marked_used(store):
    store.add(token("t1"))
    store.add(token("t2", at=T0 + timedelta(minutes=1), expires_at=T0 + timedelta(days=3)))
    store.add(token("t3", owner="bob"))

    assert store.get("t1") == token("t1")
    assert store.get("nope") is None
    assert [t.id for t in store.of_owner("alice")] == ["t2", "t1"]
    assert store.get("t2").expires_at == T0 + timedelta(days=3)
    store.mark_used("t1", T0 + timedelta(minutes=5))
    assert store.get("t1").last_used_at == T0 + timedelta(minutes=5)


def test_only_the_owner_revokes_and_only_once(store):
    store.add(token("t1"))

    assert not store.revoke("t1", "bob", T0)
    assert store.get("t1").revoked_at is None
    assert store.revoke("t1", "alice", T0 + timedelta(hours=1))
    assert store.get("t1").revoked_at == T0 + timedelta(hours=1)
    assert not store.revoke("t1", "alice", T0 + timedelta(hours=2))
    assert store.get("t1").revoked_at == T0 + timedelta(hours=1)


def test_live_tokens_of_everybody_or_one_owner_by_owner_newest_first(store):
    store.add(token("a1", at=T0))
    store.add(token("a2", at=T0 + timedelta(minutes=1), expires_at=T0 + timedelta(days=1)))
    store.add(token("b1", owner="bob", at=T0 - timedelta(days=1)))
    store.add(token("gone", revoked_at=T0 + timedelta(minutes=2)))
    store.add(token("old", expires_at=T0 + timedelta(hours=1)))
    store.add(token("ends", owner="bob", expires_at=T0 + timedelta(days=1)))

    later = T0 + timedelta(hours=1)  # "old" expires at this very moment
    assert [t.id for t in store.live_at(later)] == ["a2", "a1", "ends", "b1"]
    assert [t.id for t in store.live_at(later, "bob")] == ["ends", "b1"]
    assert [t.id for t in store.live_at(T0 + timedelta(days=1), "bob")] == ["b1"]
    assert store.live_at(later, "carol") == []
    assert store.live_at(later)[0] == store.get("a2")


def test_the_admin_revokes_a_colleagues_token_on_the_real_store(store):
    tokens = ApiTokens(store, FakeMembers({"alice", "bob"}), FakeClock())
    made = tokens.create("bob", "ci")
    admin = TokenAdministration(store, FakeAdministrators({"alice"}), FakeClock())

    assert admin.find("alice", made.token) == made.stored
    assert admin.revoke("alice", made.stored.id).owner == "bob"
    assert tokens.authenticate(made.token) is None
    assert admin.live("alice") == []


def test_ended_tokens_of_one_owner_are_forgotten(store):
    store.add(token("revoked", revoked_at=T0))
    store.add(token("expired", expires_at=T0))
    store.add(token("live", expires_at=T0 + timedelta(days=60)))
    store.add(token("bobs", owner="bob", revoked_at=T0))

    assert store.delete_ended_before("alice", T0 + timedelta(days=30)) == 2
    assert [t.id for t in store.of_owner("alice")] == ["live"]
    assert store.get("bobs") is not None


def test_the_domain_works_on_the_real_store_and_keeps_no_token(tmp_path, store):
    tokens = ApiTokens(store, FakeMembers({"alice"}), FakeClock())
    made = tokens.create("alice", "ci", expires_in_days=7)

    assert tokens.authenticate(made.token) == "alice"
    assert made.token.encode() not in (tmp_path / "jobs.db").read_bytes()
    assert made.token.encode() not in b"".join(
        path.read_bytes() for path in tmp_path.iterdir() if path.is_file())  # nor in the WAL


def _api_tokens_step() -> int:
    return next(number for number, step in enumerate(MIGRATIONS)
                if any("CREATE TABLE api_tokens" in statement for statement in step))


def test_a_database_of_the_previous_version_gets_the_api_tokens_table(tmp_path):
    db = tmp_path / "jobs.db"
    before = _api_tokens_step()
    with sqlite3.connect(db) as conn:  # as the release before API tokens left it
        for step in MIGRATIONS[:before]:
            for statement in step:
                conn.execute(statement)
        conn.execute("INSERT INTO jobs (owner, repo_url, ref, machine, target, status, "
                     "created_at) VALUES ('alice', 'https://g.example.com/p.git', 'main', "
                     "'qemux86-64', 'core-image-minimal', 'SUCCESS', "
                     "'2026-01-01T12:00:00.000000+00:00')")
        conn.execute(f"PRAGMA user_version = {before}")

    SqliteApiTokenStore(db).add(token("t1"))

    assert SqliteApiTokenStore(db).get("t1") == token("t1")
    assert SqliteJobRepository(db).count() == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
