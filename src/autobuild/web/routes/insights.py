"""Insights: the team's sstate reuse over recent builds, and the trends of one repository +
MACHINE + target (pages with server-drawn SVG charts, and the same as JSON).

Anyone signed in may read every build (permissions.py), so these show everyone's builds; at
most insights.MAX_BUILDS builds are read per answer, and the pages say so."""

from typing import Annotated, Any

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from ...domain.insights import Insights, InvalidTarget, TargetKey
from ..containers import Container
from ..errors import error_response
from ..insights_render import (
    seen_json, team_chart, team_json, trend_charts, trend_json, trends_href,
)
from ..rendering import render
from ..schemas import SeenTarget, TeamReuse, Trend, errors, ok
from ..security import User

router = APIRouter(tags=["insights"])

Ins = Annotated[Insights, Depends(Provide[Container.insights])]
MAX_PARAM = 4096  # as long as a repository URL may be
Repo = Annotated[str, Query(max_length=MAX_PARAM, description="The repository URL, exactly")]
Machine = Annotated[str, Query(max_length=MAX_PARAM, description="MACHINE, exactly")]
Target = Annotated[str, Query(max_length=MAX_PARAM, description="The bitbake target, exactly")]


@router.get("/insights", response_class=HTMLResponse)
@inject
def team_page(request: Request, user: User, insights: Ins) -> Response:
    """The team's sstate reuse over its last ended builds, and the targets built lately."""
    team = insights.team_reuse()
    seen = insights.seen_targets()
    return render(request, "insights.html", {
        "team": team, "chart": team_chart(team), "seen": seen, "trends_href": trends_href})


@router.get("/insights/trends", response_class=HTMLResponse)
@inject
def trends_page(request: Request, user: User, insights: Ins, repo: Repo = "",
                machine: Machine = "", target: Target = "") -> Response:
    """Duration, sstate reuse, image size and package count of one target's recent builds;
    without parameters, the targets to choose from."""
    seen = insights.seen_targets()
    if not (repo or machine or target):
        return render(request, "trends.html", {"trend": None, "seen": seen,
                                               "trends_href": trends_href})
    try:
        key = TargetKey.parse(repo, machine, target)
    except InvalidTarget as exc:
        return error_response(request, 400, f"No trends to show: {exc}.", "Bad request",
                              "/insights/trends")
    trend = insights.trend(key)
    return render(request, "trends.html", {
        "trend": trend, "charts": trend_charts(trend), "seen": seen,
        "trends_href": trends_href})


@router.get("/api/insights/reuse", response_model=None,
            responses={**ok(TeamReuse, "The team's sstate reuse"), **errors(401)})
@inject
def team_reuse(user: User, insights: Ins) -> dict[str, Any]:
    """The last ended builds (at most 50, anyone's), oldest first, with their sstate reuse."""
    return team_json(insights.team_reuse())


@router.get("/api/insights/targets", response_model=None,
            responses={**ok(list[SeenTarget], "Recently built targets"), **errors(401)})
@inject
def seen_targets(user: User, insights: Ins) -> list[dict[str, Any]]:
    """The repository/MACHINE/target combinations of recent ended builds, newest first."""
    return [seen_json(seen) for seen in insights.seen_targets()]


@router.get("/api/insights/trends", response_model=None,
            responses={**ok(Trend, "The target's recent builds"), **errors(400, 401)})
@inject
def trends(request: Request, user: User, insights: Ins, repo: Repo = "", machine: Machine = "",
           target: Target = "") -> dict[str, Any] | Response:
    """The last ended builds (at most 50) of one repository + MACHINE + target, oldest
    first: duration, sstate reuse, largest image and package count of each."""
    try:
        key = TargetKey.parse(repo, machine, target)
    except InvalidTarget as exc:
        return error_response(request, 400, f"No trends to show: {exc}.")
    return trend_json(insights.trend(key))
