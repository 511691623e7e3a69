"""B5: the job list with 100k jobs against 1k, at several page depths (issue 9, point 5).

Fills two databases through the app's real repository (SqliteJobRepository: the same schema,
indexes and connection handling as the service; rows written in one transaction to save
time), then times ``JobQueries.list_page`` -- what ``/`` and ``/api/jobs`` call -- at the
same relative depths in both: the newest page, 10 %, 50 %, 90 % down, the oldest page,
unfiltered and filtered by owner, status, owner + status and text. The reference is the 1k
database in the same run; a ratio near 1 means a page costs the same at any size and depth.
The old way (COUNT(*) then OFFSET) is timed too, for comparison. Filling 100k jobs
takes a few seconds (the trigram index is kept by triggers).

    .venv/bin/python -m bench.b5_lists [--repeat N] [--large N] [--small N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from autobuild.adapters.sqlite_jobs import _COLUMNS, SqliteJobRepository, _job_values
from autobuild.domain.jobs import Job, JobStatus, Submission
from autobuild.domain.ports import JobFilter
from autobuild.domain.queries import JobQueries
from autobuild.domain.requests import BuildRequest
from bench import _report as report

PER_PAGE = 25
TARGET_RATIO = 1.5
DEPTHS = (("newest", 0.0), ("10 %", 0.1), ("50 %", 0.5), ("90 %", 0.9), ("oldest", 1.0))
FILTERS = {
    "all": JobFilter(),
    "owner": JobFilter(owner="user07"),                      # 1 job in 20
    "status": JobFilter(status=JobStatus.FAILED),            # 1 in 7
    "owner+status": JobFilter(owner="user07", status=JobStatus.FAILED),  # 1 in 140
    "text": JobFilter(text="sato"),                          # 1 in 10
}
# A text no job matches: the whole trigram index answers (a LIKE would read every row).
RARE_TEXT = JobFilter(text="nowhere")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fill(db: Path, count: int) -> SqliteJobRepository:
    repo = SqliteJobRepository(db)
    request = BuildRequest.parse("https://git.example.com/bsp/poky.git", "main", "qemux86-64",
                                 "core-image-minimal")
    template = Job.from_submission(0, Submission(owner="user00", request=request, created_at=T0))
    rows = []
    for n in range(count):
        template.owner = f"user{n % 20:02d}"
        template.target = "core-image-sato" if n % 10 == 3 else "core-image-minimal"
        template.machine = ("qemux86-64", "raspberrypi4", "imx8mm-evk")[n % 3]
        template.status = JobStatus.FAILED if n % 7 == 0 else JobStatus.SUCCESS
        template.created_at = T0 + timedelta(seconds=n)
        rows.append(_job_values(template))
    marks = ", ".join("?" * len(_COLUMNS))
    with repo.connection() as conn:
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({marks})", rows)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    return repo


def median_ms(calls: tuple[Callable[[], object], ...], repeat: int) -> list[float]:
    """Median time of each call in ms, the calls taken in turn (so that whatever else the
    machine does slows both sides alike)."""
    times: list[list[float]] = [[] for _ in calls]
    for call in calls:
        call()  # warm the page cache and the connection
    for _ in range(repeat):
        for call, spent in zip(calls, times, strict=True):
            start = time.perf_counter()
            call()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) * 1000 for spent in times]


def matching_ids(repo: SqliteJobRepository, where: JobFilter) -> list[int]:
    """Ids of the jobs ``where`` matches, newest first (to place the cursors)."""
    return [job.id for job in repo.list_keyset(where, 10**9)]


def list_call(queries: JobQueries, ids: list[int], where: JobFilter,
              depth: float) -> Callable[[], object]:
    """The page a reader reaches by paging down to ``depth`` of the matching jobs (a full
    page: the oldest one ends at the oldest job)."""
    index = min(round(len(ids) * depth), len(ids) - PER_PAGE)
    before = None if index <= 0 else ids[index - 1]
    return lambda: queries.list_page(where, PER_PAGE, before=before)


def offset_call(repo: SqliteJobRepository, size: int, depth: float) -> Callable[[], object]:
    offset = min(round(size * depth), size - PER_PAGE)
    return lambda: (repo.count(), repo.list_page(PER_PAGE, offset))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="b5-") as tmp:
        started = time.perf_counter()
        repos = {size: fill(Path(tmp) / f"jobs-{size}.db", size)
                 for size in (args.small, args.large)}
        print(f"B5 job list: {args.large:,} jobs against {args.small:,} (reference), "
              f"{PER_PAGE} a page, median of {args.repeat} "
              f"(filled in {time.perf_counter() - started:.1f} s)")
        queries = {size: JobQueries(repo, files=None) for size, repo in repos.items()}  # type: ignore[arg-type]
        worst = 0.0
        print(f"  {'filter':<13}{'depth':<8}{'1k ms':>8}{'100k ms':>9}{'ratio':>8}")
        for name, where in FILTERS.items():
            ids = {size: matching_ids(repo, where) for size, repo in repos.items()}
            small_where = where
            if len(ids[args.small]) < PER_PAGE:  # not a page: the 1k unfiltered list instead
                small_where = JobFilter()
                ids[args.small] = matching_ids(repos[args.small], small_where)
                name += "*"
            for label, depth in DEPTHS:
                small, large = median_ms(
                    (list_call(queries[args.small], ids[args.small], small_where, depth),
                     list_call(queries[args.large], ids[args.large], where, depth)),
                    args.repeat)
                ratio = large / small
                worst = max(worst, ratio)
                print(f"  {name:<13}{label:<8}{small:>8.3f}{large:>9.3f}{ratio:>7.2f}x")
        small, large = median_ms(tuple(
            (lambda q=queries[size]: q.list_page(RARE_TEXT, PER_PAGE))
            for size in (args.small, args.large)), args.repeat)
        worst = max(worst, large / small)
        print(f"  {'no match':<13}{'-':<8}{small:>8.3f}{large:>9.3f}{large / small:>7.2f}x")
        print("  * the 1k reference has fewer matching jobs than a page: its unfiltered pages")
        verdict = report.figure(
            f"B5 job list page, {args.large:,} jobs against {args.small:,}, worst depth/filter",
            f"{worst:.2f}x", f"{args.small:,} jobs", f"{worst:.2f}x", f"<= {TARGET_RATIO}x",
            report.verdict(worst, TARGET_RATIO, "x"))
        print(f"  worst ratio {worst:.2f}x (target <= {TARGET_RATIO}x): {verdict}")
        print("  for comparison, the old way (COUNT(*) + OFFSET), unfiltered:")
        for label, depth in DEPTHS:
            small, large = median_ms(tuple(offset_call(repos[size], size, depth)
                                           for size in (args.small, args.large)),
                                     max(10, args.repeat // 10))
            print(f"  {'offset':<13}{label:<8}{small:>8.3f}{large:>9.3f}{large / small:>7.2f}x")


if __name__ == "__main__":
    main()
