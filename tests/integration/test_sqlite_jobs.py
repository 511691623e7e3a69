"""SqliteJobRepository against real database files."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from autobuild.adapters.sqlite_jobs import SCHEMA_VERSION, SqliteJobRepository
from autobuild.domain.jobs import Job, JobStatus, Submission
from autobuild.domain.orders import BuildSettings
from autobuild.domain.ports import JobFilter
from autobuild.domain.requests import BuildRequest
from tests.support.query_plans import traced_plans

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def new_job(owner: str = "alice", minutes: int = 0) -> Submission:
    request = BuildRequest.parse("https://git.example.com/bsp/poky.git", "v1.2", "qemux86-64",
                                 "core-image-minimal")
    return Submission(owner=owner, request=request, created_at=T0 + timedelta(minutes=minutes))


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "data" / "jobs.db"


@pytest.fixture
def repo(db_path):
    db_path.parent.mkdir()
    return SqliteJobRepository(db_path)


def test_every_field_round_trips(repo):
    job = repo.add(new_job())
    job.status = JobStatus.FAILED
    job.started_at = T0 + timedelta(seconds=5, microseconds=123456)
    # Stored in UTC whatever zone it came in, and read back as the same instant.
    job.finished_at = datetime(2026, 1, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    job.exit_code = 2
    job.reason = "the build ended with exit code 2"
    job.runner_ref = "local"
    job.cancel_requested_by = "alice"
    job.decide(("*.bin", "*.wic.gz"), BuildSettings(cache_dir="/srv/cache", hashserve="auto",
                                                    bb_number_threads=8, parallel_make=4,
                                                    keep_workspace=True))
    repo.save(job)

    loaded = repo.get(job.id)

    assert loaded == job
    assert isinstance(loaded.status, JobStatus)
    assert loaded.created_at.tzinfo is not None and loaded.created_at.utcoffset() == timedelta(0)
    assert loaded.finished_at == datetime(2026, 1, 1, 12, 30, tzinfo=UTC)


def test_optional_fields_stay_empty_and_timestamps_are_utc_text(repo, db_path):
    job = repo.add(new_job())
    assert repo.get(job.id) == job
    with sqlite3.connect(db_path) as conn:
        row = conn.execute("SELECT status, created_at, started_at FROM jobs").fetchone()
    assert row == ("PENDING", "2026-01-01T12:00:00.000000+00:00", None)


def test_add_assigns_increasing_ids_and_get_of_unknown_is_none(repo):
    first, second = repo.add(new_job()), repo.add(new_job())
    assert (first.id, second.id) == (1, 2)
    assert repo.get(99) is None


def test_saving_a_job_that_was_never_added_raises(repo):
    job = Job.from_submission(5, new_job())
    with pytest.raises(LookupError):
        repo.save(job)


def test_ids_are_not_reused_after_a_delete(repo, db_path):
    repo.add(new_job())
    last = repo.add(new_job())
    with sqlite3.connect(db_path) as conn:
        conn.execute("DELETE FROM jobs WHERE id = ?", (last.id,))
    assert repo.add(new_job()).id == last.id + 1


def test_list_page_is_newest_first_and_paginates(repo):
    for minute in range(5):
        repo.add(new_job(owner=f"user{minute}", minutes=minute))

    assert repo.count() == 5
    assert [j.id for j in repo.list_page(limit=2, offset=0)] == [5, 4]
    assert [j.id for j in repo.list_page(limit=2, offset=2)] == [3, 2]
    assert [j.id for j in repo.list_page(limit=2, offset=4)] == [1]
    assert repo.list_page(limit=2, offset=6) == []


def test_with_status_is_oldest_first(repo):
    jobs = [repo.add(new_job(minutes=m)) for m in range(4)]
    for job, status in zip(jobs, [JobStatus.RUNNING, JobStatus.PENDING, JobStatus.SUCCESS,
                                  JobStatus.PENDING], strict=True):
        job.status = status
        repo.save(job)

    assert [j.id for j in repo.with_status(JobStatus.PENDING)] == [2, 4]
    assert [j.id for j in repo.with_status(JobStatus.PENDING, JobStatus.RUNNING)] == [1, 2, 4]
    assert repo.with_status(JobStatus.CANCELLED) == []
    assert repo.with_status() == []


def test_list_keyset_pages_both_ways_with_filters(repo):
    for minute in range(10):
        job = repo.add(new_job(owner="alice" if minute % 2 else "bob", minutes=minute))
        job.status = JobStatus.FAILED if minute % 3 == 0 else JobStatus.SUCCESS
        repo.save(job)

    def ids(where=JobFilter(), limit=3, **cursor):
        return [j.id for j in repo.list_keyset(where, limit, **cursor)]

    assert ids() == [10, 9, 8]
    assert ids(before=8) == [7, 6, 5] and ids(before=2) == [1] and ids(before=1) == []
    assert ids(after=7) == [10, 9, 8] and ids(after=2) == [5, 4, 3] and ids(after=10) == []
    assert ids(JobFilter(owner="alice"), 10) == [10, 8, 6, 4, 2]
    assert ids(JobFilter(status=JobStatus.FAILED), 10) == [10, 7, 4, 1]
    assert ids(JobFilter(owner="bob", status=JobStatus.FAILED), 10, before=9) == [7, 1]
    assert ids(JobFilter(text="QEMUX86"), 2, after=1) == [3, 2]
    assert ids(JobFilter(text="v1.2"), 1) == [10]
    assert ids(JobFilter(text="%"), 10) == [] and ids(JobFilter(text="_"), 10) == []
    assert ids(JobFilter(text="x8_6"), 10) == []  # LIKE wildcards are plain characters
    assert ids(JobFilter(text="86"), 2, before=5) == [4, 3]  # too short for trigrams
    assert ids(JobFilter(owner="bob", text="POKY"), 2) == [9, 7]  # owner index, then text
    assert ids(JobFilter(status=JobStatus.FAILED, text="poky"), 10, after=1) == [10, 7, 4]
    assert ids(JobFilter(text='a"b'), 10) == []  # quotes are characters too


def test_the_text_index_follows_inserts_updates_and_deletes(repo, db_path):
    job = repo.add(new_job())
    repo.add(new_job())
    job.target = "core-image-sato"
    repo.save(job)
    assert [j.id for j in repo.list_keyset(JobFilter(text="sato"), 10)] == [1]
    assert [j.id for j in repo.list_keyset(JobFilter(text="minimal"), 10)] == [2]
    with repo.connection() as conn:
        conn.execute("DELETE FROM jobs WHERE id = 2")
    assert repo.list_keyset(JobFilter(text="minimal"), 10) == []


@pytest.mark.parametrize("where", [JobFilter(), JobFilter(owner="alice"),
                                   JobFilter(status=JobStatus.RUNNING),
                                   JobFilter(owner="alice", status=JobStatus.RUNNING),
                                   JobFilter(text="sato"),
                                   JobFilter(text="sato", status=JobStatus.RUNNING)])
def test_list_keyset_walks_an_index_in_id_order(repo, db_path, where):
    repo.count()  # migrated
    plans = traced_plans(repo, db_path)
    repo.list_keyset(where, 25, before=100)
    repo.list_keyset(where, 25, after=100)
    assert "TEMP B-TREE" not in plans[-1], plans[-1]
    plan = plans[-1]
    assert plan.startswith("SEARCH jobs USING") or plan.startswith("SCAN jobs_text VIRTUAL"), plan
    assert "TEMP B-TREE" not in plan, plan  # no sort: the index gives id order


def test_a_thread_reuses_its_connection_and_threads_do_not_share_one(repo):
    with repo.connection() as first, repo.connection() as nested:
        assert first is nested
    with repo.connection() as again:
        assert again is first
    seen = []
    thread = threading.Thread(target=lambda: seen.append(repo.connection().__enter__()))
    thread.start()
    thread.join()
    assert seen[0] is not first


def test_after_an_error_the_next_call_gets_a_fresh_working_connection(repo):
    with pytest.raises(sqlite3.OperationalError):
        with repo.connection() as conn:
            conn.execute("BEGIN")
            conn.execute("INSERT INTO no_such_table VALUES (1)")
    with repo.connection() as fresh:
        assert fresh is not conn and not fresh.in_transaction
    assert repo.add(new_job()).id == 1


def test_a_transaction_left_open_is_not_carried_into_the_next_call(repo, db_path):
    with repo.connection() as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE forgotten (x)")
    assert not conn.in_transaction
    with sqlite3.connect(db_path) as other:  # not locked, and nothing was committed
        other.execute("BEGIN IMMEDIATE")
        assert other.execute("SELECT count(*) FROM sqlite_master WHERE name = 'forgotten'"
                             ).fetchone()[0] == 0


def test_concurrent_writes_from_threads_do_not_lock_each_other_out(repo):
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(25):
                job = repo.add(new_job(owner=f"user{n}", minutes=i))
                job.status = JobStatus.RUNNING
                repo.save(job)
                repo.list_page(limit=10, offset=0)
        except BaseException as exc:  # collected: an exception in a thread would be lost
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert repo.count() == 200
    assert len(repo.with_status(JobStatus.RUNNING)) == 200


def test_nothing_touches_the_file_before_first_use(db_path):
    db_path.parent.mkdir()
    SqliteJobRepository(db_path)
    assert not db_path.exists()


def test_schema_is_created_on_a_fresh_file_and_shared_by_a_second_repository(repo, db_path):
    job = repo.add(new_job())

    other = SqliteJobRepository(db_path)

    assert other.get(job.id) == job
    assert other.count() == 1
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexed = {row[0] for row in conn.execute(
            "SELECT name FROM pragma_index_list('jobs')")}
        indexed_columns = {conn.execute(f"SELECT name FROM pragma_index_info('{index}')")
                           .fetchone()[0] for index in indexed}
    assert {"status", "created_at"} <= indexed_columns


def test_a_database_at_user_version_0_is_migrated(db_path):
    db_path.parent.mkdir()
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE unrelated (x)")  # an existing file, schema version 0
    assert sqlite3.connect(db_path).execute("PRAGMA user_version").fetchone()[0] == 0

    repo = SqliteJobRepository(db_path)
    job = repo.add(new_job())

    assert repo.get(job.id) == job
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM unrelated").fetchone()[0] == 0


def test_a_database_from_a_newer_version_is_refused(db_path):
    db_path.parent.mkdir()
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        SqliteJobRepository(db_path).count()


def test_wal_mode_is_on(repo, db_path):
    repo.count()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_missing_directory_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere" / "jobs.db"
    with pytest.raises(RuntimeError, match=str(missing.parent)):
        SqliteJobRepository(missing).count()
    assert not missing.parent.exists()


def test_a_version_1_database_keeps_its_jobs_and_gains_the_new_fields(db_path):
    from autobuild.adapters.sqlite_jobs import MIGRATIONS

    db_path.parent.mkdir()
    with sqlite3.connect(db_path) as conn:  # as the first release left it
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO jobs (owner, repo_url, ref, machine, target, status, created_at,"
                     " pid) VALUES ('alice', 'https://g.example.com/p.git', 'main', 'qemux86-64',"
                     " 'core-image-minimal', 'RUNNING', '2026-01-01T12:00:00.000000+00:00', 42)")
        conn.execute("PRAGMA user_version = 1")

    repo = SqliteJobRepository(db_path)
    [job] = repo.with_status(JobStatus.RUNNING)
    # A build started by the release before the runner port spoke in jobs: its pid survives
    # as the runner's reference, so the runner adapter can follow it to its end.
    assert (job.owner, job.runner_ref, job.kas_file) == ("alice", "pid:42:", None)
    assert (job.artifact_patterns, job.settings) == (None, None)
    job.kas_file = "kas/qemu.yml"
    job.waiting_reason = "waiting for disk space"
    repo.save(job)
    again = repo.get(job.id)
    assert (again.kas_file, again.waiting_reason) == ("kas/qemu.yml", "waiting for disk space")


def test_a_version_3_database_turns_pid_and_start_time_into_the_runner_reference(db_path):
    from autobuild.adapters.sqlite_jobs import MIGRATIONS

    db_path.parent.mkdir()
    with sqlite3.connect(db_path) as conn:
        for step in MIGRATIONS[:3]:
            for statement in step:
                conn.execute(statement)
        conn.execute("INSERT INTO jobs (owner, repo_url, ref, machine, target, status, created_at,"
                     " pid, pid_start_time) VALUES ('bob', 'https://g.example.com/p.git', 'main',"
                     " 'qemux86-64', 'core-image-minimal', 'RUNNING',"
                     " '2026-01-01T12:00:00.000000+00:00', 4242, 987654)")
        conn.execute("PRAGMA user_version = 3")
    [job] = SqliteJobRepository(db_path).with_status(JobStatus.RUNNING)
    assert job.runner_ref == "pid:4242:987654"
    with sqlite3.connect(db_path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    assert "pid" not in columns and "pid_start_time" not in columns


def test_the_built_commit_is_stored_and_a_prefix_of_it_filters_through_its_index(repo, db_path):
    sha = "0f14567a2c1d6e0e7e1d2c3b4a5968778695a4b3"
    jobs = [repo.add(new_job(minutes=m)) for m in range(4)]
    for job, commit in zip(jobs, [sha, "0f14568" + "0" * 33, None, sha], strict=True):
        job.commit = commit
        repo.save(job)
    assert repo.get(1).commit == sha and repo.get(3).commit is None

    def ids(**where):
        return [j.id for j in repo.list_keyset(JobFilter(**where), 10)]

    assert ids(commit=sha) == [4, 1] and ids(commit=sha[:7]) == [4, 1]
    assert ids(commit="0f1456") == [4, 2, 1]  # the repository takes any prefix it is given
    assert ids(commit="0f14568") == [2] and ids(commit="1234567") == []
    assert ids(commit=sha[:7], owner="alice") == [4, 1]
    assert ids(commit=sha[:7], text="poky") == [4, 1]  # with the trigram index too
    plans = traced_plans(repo, db_path)
    repo.list_keyset(JobFilter(commit=sha[:7]), 25, before=100)
    # A range of the index (the few builds of one commit are then put in id order).
    assert "INDEX jobs_built_commit (built_commit>? AND built_commit<?)" in plans[-1], plans[-1]
