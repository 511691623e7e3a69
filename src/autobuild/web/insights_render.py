"""How cache reuse and trends are shown: their JSON shapes, and the geometry of the
server-rendered SVG charts (templates/_chart.html draws them; no script needed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..domain.insights import BuildPoint, SeenTarget, TargetKey, TeamReuse, Trend
from ..domain.sstate import CacheReuse
from .rendering import human_duration, human_size, iso

# The chart's box in SVG user units; it scales with the page (viewBox).
WIDTH, HEIGHT = 640, 220
TEAM_WIDTH = 1160  # the team view's one chart spans the page
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 36


def trends_href(key: TargetKey) -> str:
    """The trends page of ``key`` (the job page links there)."""
    return "/insights/trends?" + urlencode(
        {"repo": key.repo_url, "machine": key.machine, "target": key.target})


def trends_api_href(key: TargetKey) -> str:
    return "/api/insights/trends?" + urlencode(
        {"repo": key.repo_url, "machine": key.machine, "target": key.target})


# --- JSON ----------------------------------------------------------------------------------------

def cache_json(reuse: CacheReuse) -> dict[str, Any] | None:
    """A build's cache reuse as the API gives it; None when its log says nothing of it (yet)."""
    if reuse.is_empty:
        return None
    return {
        "summaries": reuse.summaries,
        "wanted": reuse.wanted, "found": reuse.found, "local": reuse.local,
        "mirrors": reuse.mirrors, "missed": reuse.missed, "current": reuse.current,
        "match_percent": reuse.match_percent, "complete_percent": reuse.complete_percent,
        "setscene_tasks": reuse.setscene_run, "tasks_run": reuse.tasks_run,
        "noexec_tasks": reuse.noexec_run, "tasks_attempted": reuse.attempted,
        "tasks_not_rerun": reuse.not_rerun, "tasks_failed": reuse.failed,
    }


def point_json(point: BuildPoint) -> dict[str, Any]:
    job = point.job
    return {
        "id": job.id, "owner": job.owner, "status": str(job.status),
        "repo_url": job.repo_url, "machine": job.machine, "target": job.target,
        "finished_at": iso(job.finished_at), "duration_seconds": point.duration_seconds,
        "match_percent": point.match_percent,
        "cache": cache_json(point.reuse),
        "image": None if point.image is None else {"name": point.image.name,
                                                    "size": point.image.size},
        "packages": point.packages,
    }


def team_json(team: TeamReuse) -> dict[str, Any]:
    found, wanted = team.objects
    return {"limit": team.limit, "median_match_percent": team.median,
            "average_match_percent": team.average, "found": found, "wanted": wanted,
            "builds": [point_json(p) for p in team.points]}


def trend_json(trend: Trend) -> dict[str, Any]:
    return {"repo_url": trend.key.repo_url, "machine": trend.key.machine,
            "target": trend.key.target, "limit": trend.limit,
            "builds": [point_json(p) for p in trend.points]}


def seen_json(seen: SeenTarget) -> dict[str, Any]:
    return {"repo_url": seen.key.repo_url, "machine": seen.key.machine,
            "target": seen.key.target, "builds": seen.builds, "last_id": seen.last_id,
            "last_at": iso(seen.last_at), "trends": trends_api_href(seen.key)}


# --- SVG charts ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mark:
    """One build on a chart: where, how tall (bars), what it says, where it links."""

    x: float
    y: float
    height: float
    href: str
    tip: str


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Chart:
    """What _chart.html draws: ``kind`` "line" (a path through the marks) or "bars"."""

    id: str
    title: str
    description: str
    kind: str
    marks: list[Mark]
    path: str
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    bar_width: float
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM

    @property
    def is_empty(self) -> bool:
        return not self.marks


def chart(chart_id: str, title: str, points: Sequence[BuildPoint],
          value: Callable[[BuildPoint], float | None], label: Callable[[float], str],
          kind: str = "line", scale: str = "count", width: int = WIDTH) -> Chart:
    """A chart of ``value`` over ``points`` (oldest first, one slot each; a build without a
    value leaves its slot empty). The y axis starts at 0 and ends at a round number of its
    ``scale`` ("percent": 100; "duration", "size", "count": just above the largest value)."""
    plot_w, plot_h = width - RIGHT - LEFT, HEIGHT - BOTTOM - TOP
    values = [value(p) for p in points]
    known = [v for v in values if v is not None]
    top = axis_end(max(known, default=0.0), scale)
    slot = plot_w / max(1, len(points))
    marks: list[Mark] = []
    for index, (point, v) in enumerate(zip(points, values)):
        if v is None:
            continue
        height = plot_h * min(max(v, 0.0), top) / top if top else 0.0
        x = LEFT + slot * (index + 0.5)
        marks.append(Mark(round(x, 1), round(HEIGHT - BOTTOM - height, 1), round(height, 1),
                          f"/jobs/{point.job.id}",
                          f"Build #{point.job.id} ({point.job.status}): {label(v)}"))
    path = " ".join(f"{'M' if i == 0 else 'L'}{m.x},{m.y}" for i, m in enumerate(marks))
    fractions = (0.0, 0.25, 0.5, 0.75, 1.0) if scale == "percent" else (0.0, 0.5, 1.0)
    y_ticks = ([Tick(round(HEIGHT - BOTTOM - plot_h * f, 1), label(top * f)) for f in fractions]
               if top else [Tick(HEIGHT - BOTTOM, label(0))])
    step = max(1, -(-len(points) // 8))  # at most 8 build numbers under the axis
    x_ticks = [Tick(round(LEFT + slot * (i + 0.5), 1), f"#{p.job.id}")
               for i, p in enumerate(points) if i % step == 0]
    shown = [label(v) for v in known]
    description = (f"{title}: {len(known)} of {len(points)} builds have a value"
                   + (f", from {shown[0]} (oldest) to {shown[-1]} (newest)" if shown else ""))
    return Chart(chart_id, title, description, kind, marks, path, y_ticks, x_ticks,
                 round(max(2.0, min(24.0, slot * 0.6)), 1), width=width, right=width - RIGHT)


# Round ends of a duration axis, in seconds: their halves read well too (5m, 15m, 1h...).
_DURATION_ENDS = (10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 10800, 14400, 21600,
                  28800, 43200, 86400)


def axis_end(value: float, scale: str) -> float:
    """Where the y axis of ``scale`` ends for a largest value ``value`` (0 for none)."""
    if value <= 0:
        return 100.0 if scale == "percent" else 0.0
    if scale == "percent":
        return 100.0
    if scale == "duration" and value > 10:
        return float(next((end for end in _DURATION_ENDS if end >= value),
                          _round_up(value / 86400) * 86400))
    if scale == "size":
        unit = 1.0
        while value / unit >= 1024 and unit < 1024.0 ** 4:
            unit *= 1024
        return _round_up(value / unit) * unit
    return _round_up(value)


def _round_up(value: float) -> float:
    """A round axis end at or above ``value`` (1, 2, 5 times a power of ten)."""
    if value <= 0:
        return 0.0
    scale = 1.0
    while scale * 10 <= value:
        scale *= 10
    while scale > value:
        scale /= 10
    for factor in (1, 2, 5, 10):
        if scale * factor >= value:
            return scale * factor
    return scale * 10


def percent(v: float) -> str:
    return f"{v:.0f}%"


def minutes(v: float) -> str:
    return human_duration(v)


def size(v: float) -> str:
    return human_size(int(v))


def count(v: float) -> str:
    return f"{v:g}"


def team_chart(team: TeamReuse) -> Chart:
    """One bar per build, the page's whole width (a wider box: the text keeps its size)."""
    return chart("reuse-chart", "sstate match per build", team.points,
                 lambda p: None if p.match_percent is None else float(p.match_percent),
                 percent, kind="bars", scale="percent", width=TEAM_WIDTH)


def trend_charts(trend: Trend) -> list[Chart]:
    points = trend.points
    return [
        chart("duration-chart", "Duration", points, lambda p: p.duration_seconds, minutes,
              scale="duration"),
        chart("reuse-chart", "sstate match", points,
              lambda p: None if p.match_percent is None else float(p.match_percent), percent,
              scale="percent"),
        chart("image-chart", "Largest image", points,
              lambda p: None if p.image is None else float(p.image.size), size, scale="size"),
        chart("packages-chart", "Packages in the image", points,
              lambda p: None if p.packages is None else float(p.packages), count),
    ]
