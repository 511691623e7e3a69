"""SqliteJobRepository.recent_builds: what the New build form's suggestions read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autobuild.adapters.sqlite_jobs import SqliteJobRepository
from autobuild.domain.jobs import Submission
from autobuild.domain.ports import RecentBuild
from autobuild.domain.requests import BuildRequest
from tests.support.query_plans import traced_plans

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def add(repo: SqliteJobRepository, owner: str, machine: str, kas_file: str | None = None):
    request = BuildRequest.parse("https://git.example.com/bsp/poky.git", "v1.2", machine,
                                 "core-image-minimal", kas_file=kas_file)
    return repo.add(Submission(owner=owner, request=request, created_at=T0))


@pytest.fixture
def db_path(tmp_path):
    (tmp_path / "data").mkdir()
    return tmp_path / "data" / "jobs.db"


@pytest.fixture
def repo(db_path):
    return SqliteJobRepository(db_path)


def test_recent_builds_newest_first_by_owner_and_bounded(repo):
    add(repo, "alice", "qemuarm")
    add(repo, "bob", "imx8mm-evk")
    add(repo, "alice", "qemux86-64", kas_file="kas/qemu.yml")

    assert repo.recent_builds("alice", 10) == [
        RecentBuild(3, "alice", "https://git.example.com/bsp/poky.git", "v1.2", "qemux86-64",
                    "core-image-minimal", "kas/qemu.yml"),
        RecentBuild(1, "alice", "https://git.example.com/bsp/poky.git", "v1.2", "qemuarm",
                    "core-image-minimal", None)]
    assert [b.id for b in repo.recent_builds(None, 2)] == [3, 2]
    assert repo.recent_builds("carol", 10) == []


@pytest.mark.parametrize("owner", [None, "alice"])
def test_recent_builds_walk_an_index_backwards_without_sorting(repo, db_path, owner):
    repo.count()  # migrated
    plans = traced_plans(repo, db_path)
    repo.recent_builds(owner, 200)
    plan = plans[-1]
    assert "TEMP B-TREE" not in plan, plan  # the rowid or the owner index gives id order
    expected = "SCAN jobs" if owner is None else "SEARCH jobs USING INDEX jobs_owner (owner=?)"
    assert plan == expected, plan
