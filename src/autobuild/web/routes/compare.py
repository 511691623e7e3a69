"""Two builds compared (issue 12, point 4): the page /jobs/compare?a=&b= and its JSON,
/api/jobs/compare?a=&b=. Either build may be of another repository, MACHINE or target: the
comparison says so at the top rather than refusing (the same image on two boards is a fair
question)."""

from typing import Annotated, Any

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from ...domain.artifacts import MAX_ARTIFACTS_LISTED
from ...domain.comparison import MAX_PACKAGES_LISTED, BuildComparisons
from ...domain.permissions import Permissions
from ...domain.ports import Clock
from ...domain.queries import JobQueries
from ..containers import Container
from ..errors import error_response
from ..query_values import build_number, not_a_build_number
from ..rendering import comparison_json, render
from ..schemas import Comparison, errors, ok
from ..security import User

router = APIRouter()

Comparisons = Annotated[BuildComparisons, Depends(Provide[Container.comparisons])]
Queries = Annotated[JobQueries, Depends(Provide[Container.queries])]
Perms = Annotated[Permissions, Depends(Provide[Container.permissions])]
Now = Annotated[Clock, Depends(Provide[Container.clock])]
# Not bounded here: any text is read by _ids, which says "'...' is not a build number".
BuildId = Annotated[str, Query(description="A build's id")]


def _ids(a: str, b: str) -> tuple[int, int] | str:
    """The two build ids, or why they are not two builds."""
    if not a or not b:
        return "Choose two builds to compare: a and b are their numbers (?a=12&b=15)."
    ids = []
    for value in (a, b):
        number = build_number(value)
        if number is None:
            return not_a_build_number(value)
        ids.append(number)
    return ids[0], ids[1]


def _answer(request: Request, user: str, comparisons: BuildComparisons, queries: JobQueries,
            perms: Permissions, a: str, b: str) -> tuple[Any, ...] | Response:
    ids = _ids(a, b)
    if isinstance(ids, str):
        return error_response(request, 400, ids, "Cannot compare these", "/")
    job_a, job_b = queries.get(ids[0]), queries.get(ids[1])  # JobNotFound: 404
    for job in (job_a, job_b):
        perms.check_read(job, user)  # NotAllowed: 403
    return job_a, job_b, comparisons.compare(job_a.id, job_b.id)


@router.get("/jobs/compare", response_class=HTMLResponse, tags=["pages"])
@inject
def compare_page(request: Request, user: User, comparisons: Comparisons, queries: Queries,
                 perms: Perms, clock: Now, a: BuildId = "", b: BuildId = "") -> Response:
    answer = _answer(request, user, comparisons, queries, perms, a, b)
    if isinstance(answer, Response):
        return answer
    job_a, job_b, result = answer
    return render(request, "compare.html", {"a": job_a, "b": job_b, "comparison": result,
                                            "now": clock.now(), "listed": MAX_PACKAGES_LISTED,
                                            "artifacts_listed": MAX_ARTIFACTS_LISTED})


@router.get("/api/jobs/compare", response_model=None, tags=["api"],
            responses={**ok(Comparison, "What changed from build a to build b"),
                       **errors(400, 401, 403, 404)})
@inject
def compare_json(request: Request, user: User, comparisons: Comparisons, queries: Queries,
                 perms: Perms, clock: Now, a: BuildId = "", b: BuildId = "") -> Any:
    """Build `a` against build `b`: each difference as `before` (a) and `after` (b).
    `different` names what makes them builds of different things (repository, MACHINE,
    target); sizes are bytes, `image_size_kib` is buildhistory's IMAGESIZE."""
    answer = _answer(request, user, comparisons, queries, perms, a, b)
    if isinstance(answer, Response):
        return answer
    job_a, job_b, result = answer
    return comparison_json(result, job_a, job_b, clock.now(), user)
