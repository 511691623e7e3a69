"""The job list's query parameters, one definition for the page (/) and the API (/api/jobs):
filters (owner, status, text, commit), keyset cursors (before, after) and old numbered links (page).
Invalid values are refused by validation (400), never reach SQLite."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError

from ..domain.jobs import JobStatus
from ..domain.ports import JobFilter
from ..domain.provenance import commit_prefix

MAX_ID = 2**63 - 1  # SQLite's INTEGER; a larger cursor would not bind
MAX_PAGE_NUMBER = 1_000_000
_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"  # a NUL would cut SQLite's full-text query short
_STATUS = "^(|" + "|".join(status.value for status in JobStatus) + ")$"


@dataclass(frozen=True)
class JobListParams:
    where: JobFilter
    before: int | None
    after: int | None
    page: int  # an old numbered link (?page=N); 1 otherwise

    def query(self, **cursor: int) -> dict[str, str | int]:
        """The filters that are set, plus ``cursor``: the query string of another page."""
        params: dict[str, str | int] = {}
        if self.where.owner:
            params["owner"] = self.where.owner
        if self.where.status:
            params["status"] = self.where.status.value
        if self.where.text:
            params["q"] = self.where.text
        if self.where.commit:
            params["commit"] = self.where.commit
        return {**params, **cursor}


def _job_list_params(
    owner: Annotated[str, Query(max_length=64, pattern=_NO_CONTROL)] = "",
    status: Annotated[str, Query(pattern=_STATUS)] = "",
    q: Annotated[str, Query(max_length=200, pattern=_NO_CONTROL)] = "",
    commit: Annotated[str, Query(
        max_length=80,
        description="A commit the job built: its full id or at least its first 7 hex digits",
    )] = "",
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE_NUMBER)] = 1,
) -> JobListParams:
    try:
        built = commit_prefix(commit) if commit.strip() else None
    except ValueError as exc:  # said as any other bad parameter is (400)
        raise RequestValidationError([{"loc": ("query", "commit"), "msg": str(exc),
                                       "type": "value_error"}]) from None
    where = JobFilter(owner=owner.strip() or None,
                      status=JobStatus(status) if status else None,
                      text=q.strip() or None,
                      commit=built)
    return JobListParams(where=where, before=before, after=after, page=page)


ListParams = Annotated[JobListParams, Depends(_job_list_params)]
