"""The session store on the real SQLite file, and group membership on the real grp/pwd
databases (with a cache of fixed length)."""

import grp
import os
import pwd
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from autobuild.adapters.sqlite_jobs import SCHEMA_VERSION, SqliteJobRepository
from autobuild.adapters.sqlite_sessions import SqliteSessionStore
from autobuild.adapters.unix_groups import (
    GroupAdministrators, GroupMembers, ServiceUserOnly, members_for,
)
from autobuild.domain.ports import StoredSession

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    return SqliteSessionStore(tmp_path / "jobs.db")


def session(sid, user="alice", at=T0):
    return StoredSession(id=sid, user=user, csrf=f"csrf-{sid}", created_at=at, last_seen_at=at)


def test_sessions_are_stored_read_touched_and_deleted(store):
    store.add(session("s1"))
    store.add(session("s2"))
    store.add(session("s3", user="bob"))

    assert store.get("s1") == session("s1")
    assert store.get("nope") is None
    store.touch("s1", T0 + timedelta(minutes=5))
    assert store.get("s1").last_seen_at == T0 + timedelta(minutes=5)
    store.delete("s2")
    assert store.get("s2") is None
    assert store.delete_user("alice") == 1
    assert store.get("s3") is not None


def test_old_sessions_are_purged(store):
    store.add(session("old", at=T0))
    store.add(session("new", at=T0 + timedelta(hours=2)))

    assert store.delete_unused_since(T0 + timedelta(hours=1)) == 1
    assert store.get("old") is None and store.get("new") is not None


def test_sessions_live_in_the_jobs_database_at_the_current_schema(tmp_path, store):
    store.add(session("s1"))
    jobs = SqliteJobRepository(tmp_path / "jobs.db")
    assert jobs.count() == 0  # the same file, already migrated
    with sqlite3.connect(tmp_path / "jobs.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1


def test_a_database_of_the_previous_version_gets_the_sessions_table(tmp_path):
    db = tmp_path / "jobs.db"
    SqliteJobRepository(db).ensure_schema()
    with sqlite3.connect(db) as conn:  # as the release before sessions (version 4) left it
        conn.execute("DROP TABLE sessions")
        conn.execute("DROP INDEX jobs_owner")  # migrations 6 and 7, after sessions
        conn.execute("DROP INDEX jobs_owner_status")
        for trigger in ("insert", "delete", "update"):
            conn.execute(f"DROP TRIGGER jobs_text_{trigger}")
        conn.execute("DROP TABLE jobs_text")
        conn.execute("ALTER TABLE jobs DROP COLUMN node")  # migration 8
        conn.execute("DROP TABLE api_tokens")  # migration 9
        conn.execute("DROP INDEX jobs_built_commit")  # migration 10
        conn.execute("ALTER TABLE jobs DROP COLUMN built_commit")
        conn.execute("PRAGMA user_version = 4")

    SqliteSessionStore(db).add(session("s1"))
    assert SqliteSessionStore(db).get("s1") == session("s1")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fake_group(monkeypatch, members):
    """grp.getgrnam sees an autobuild-users group listing ``members`` (as they are now)."""
    real = grp.getgrnam

    def getgrnam(name):
        if name == "autobuild-users":
            return grp.struct_group(("autobuild-users", "x", 64000, list(members)))
        return real(name)

    monkeypatch.setattr(grp, "getgrnam", getgrnam)


def test_group_members_are_cached_for_the_ttl_then_looked_up_again(monkeypatch):
    members = ["alice"]
    fake_group(monkeypatch, members)
    clock = Clock()
    group = GroupMembers("autobuild-users", ttl=60, monotonic=clock)

    assert group.is_member("alice") and not group.is_member("mallory")
    members.remove("alice")  # the admin runs gpasswd -d alice autobuild-users
    clock.now = 59.9
    assert group.is_member("alice")  # still cached
    clock.now = 60.0
    assert not group.is_member("alice")  # within the cache time, never later


def test_a_missing_group_has_no_members(caplog):
    assert not GroupMembers("no-such-group-for-autobuild-tests").is_member("root")
    assert "no such group" in caplog.text


def test_the_primary_group_counts():
    me = pwd.getpwuid(os.getuid())
    primary = grp.getgrgid(me.pw_gid).gr_name
    assert GroupMembers(primary).is_member(me.pw_name)


def test_without_sudo_only_the_service_user_is_a_member():
    me = pwd.getpwuid(os.getuid()).pw_name
    members = members_for("autobuild-users", use_sudo=False)
    assert isinstance(members, ServiceUserOnly)
    assert members.is_member(me) and not members.is_member("someone-else")
    assert isinstance(members_for("autobuild-users", use_sudo=True), GroupMembers)


def test_administrators_are_cached_too_and_looked_up_once_per_ttl(monkeypatch):
    members = ["alice"]
    fake_group(monkeypatch, members)
    lookups = []
    getgrnam = grp.getgrnam
    monkeypatch.setattr(grp, "getgrnam", lambda name: lookups.append(name) or getgrnam(name))
    clock = Clock()
    admins = GroupAdministrators("autobuild-users", ttl=60, monotonic=clock)

    assert all(admins.is_admin("alice") for _ in range(25))  # a page of 25 jobs
    assert lookups == ["autobuild-users"]
    members.remove("alice")
    clock.now = 60.0
    assert not admins.is_admin("alice")  # a removed administrator is one no longer
