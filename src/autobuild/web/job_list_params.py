"""The job list's query parameters, one definition for the page (/) and the API (/api/jobs):
filters (owner, status, text, commit), keyset cursors (before, after) and old numbered links (page).
Invalid values are refused (400, in words from query_values.py), never reach SQLite."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError

from ..domain.jobs import JobStatus
from ..domain.ports import JobFilter
from ..domain.provenance import commit_prefix
from .query_values import build_number, job_status, not_a_build_number, refused

MAX_ID = 2**63 - 1  # SQLite's INTEGER; a larger cursor would not bind
MAX_PAGE_NUMBER = 1_000_000
_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"  # a NUL would cut SQLite's full-text query short
_STATUSES = ["", *(status.value for status in JobStatus)]


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


def _integer(description: str, lowest: int, highest: int) -> Any:
    """A query parameter read as text (query_values says what is wrong with it) that the
    schema documents as the integer it must be."""
    def document(schema: dict[str, Any]) -> None:
        schema.pop("anyOf", None)
        schema.update(type="integer", minimum=lowest, maximum=highest)
    return Query(description=description, json_schema_extra=document)


def _job_list_params(
    owner: Annotated[str, Query(max_length=64, pattern=_NO_CONTROL)] = "",
    # Read here rather than typed: a hand-edited ?status= or ?before= gets a clear message.
    status: Annotated[str, Query(json_schema_extra={"enum": _STATUSES})] = "",
    q: Annotated[str, Query(max_length=200, pattern=_NO_CONTROL)] = "",
    commit: Annotated[str, Query(
        max_length=80,
        description="A commit the job built: its full id or at least its first 7 hex digits",
    )] = "",
    before: Annotated[str | None, _integer("Cursor: the jobs below this id", 1, MAX_ID)] = None,
    after: Annotated[str | None, _integer("Cursor: the page just above this id", 0,
                                          MAX_ID)] = None,
    page: Annotated[str | None, _integer("An old numbered link", 1, MAX_PAGE_NUMBER)] = None,
) -> JobListParams:
    try:
        built = commit_prefix(commit) if commit.strip() else None
    except ValueError as exc:  # said as any other bad parameter is (400)
        raise RequestValidationError([{"loc": ("query", "commit"), "msg": str(exc),
                                       "type": "value_error"}]) from None
    try:
        wanted = job_status(status)
    except ValueError as exc:
        raise refused("status", str(exc)) from None
    cursors = {}
    for name, value, lowest in (("before", before, 1), ("after", after, 0)):
        cursors[name] = None if not value else build_number(value, lowest, MAX_ID)
        if value and cursors[name] is None:
            raise refused(name, not_a_build_number(value))
    number = build_number(page, 1, MAX_PAGE_NUMBER) if page else 1
    if number is None:
        raise refused("page", f"'{page[:20]}' is not a page number (1 to {MAX_PAGE_NUMBER:,}).")
    where = JobFilter(owner=owner.strip() or None, status=wanted, text=q.strip() or None,
                      commit=built)
    return JobListParams(where=where, before=cursors["before"], after=cursors["after"],
                         page=number)


ListParams = Annotated[JobListParams, Depends(_job_list_params)]
