"""The geometry of the job page's timing charts (drawn as inline SVG by _timing.html).

Only positions and lengths are computed here, in SVG user units; the numbers come from the
domain's TimingView (domain/buildstats.py), and the template writes the text alternatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..domain.buildstats import TimingView

WIDTH = 800
LABEL_WIDTH = 280
LABEL_CHARS = 38  # what fits in LABEL_WIDTH at the chart's 12px monospace
VALUE_WIDTH = 70
ROW = 22
BAR = 14
TOP = 24  # room for the time axis of the timeline
TICKS = 5


def short(label: str) -> str:
    """A label cut to fit left of the bars (the full one is in the tables and tooltips)."""
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"


@dataclass(frozen=True)
class Bar:
    label: str
    x: float
    y: float
    width: float
    value: float
    critical: bool = False
    failed: bool = False


def _scale(total: float) -> float:
    return (WIDTH - LABEL_WIDTH - VALUE_WIDTH) / total if total > 0 else 0.0


def recipe_bars(view: TimingView) -> list[Bar]:
    """The slowest recipes: one bar each, as long as its tasks' elapsed times added up."""
    most = max((r.elapsed for r in view.slowest_recipes), default=0.0)
    scale = _scale(most)
    return [Bar(r.recipe, LABEL_WIDTH, i * ROW, max(1.0, r.elapsed * scale), r.elapsed)
            for i, r in enumerate(view.slowest_recipes)]


def task_timeline(view: TimingView) -> dict[str, Any]:
    """The slowest tasks where they ran on the build's timeline (0 = the first task's start);
    tasks on the critical path are marked."""
    span = max(view.wall_seconds, view.last_end - view.first_start, 1.0)
    scale = _scale(span)
    critical = {(t.recipe, t.task, t.start) for t in view.critical_path}
    bars = [Bar(t.label, LABEL_WIDTH + (t.start - view.first_start) * scale, TOP + i * ROW,
                max(1.0, t.elapsed * scale), t.elapsed, (t.recipe, t.task, t.start) in critical,
                t.failed)
            for i, t in enumerate(view.slowest_tasks)]
    ticks = [(LABEL_WIDTH + span * k / TICKS * scale, span * k / TICKS) for k in range(TICKS + 1)]
    return {"bars": bars, "ticks": ticks, "height": TOP + len(bars) * ROW + 4}


def path_timeline(view: TimingView) -> list[Bar]:
    """The critical path on one row: each task a segment where it ran."""
    span = max(view.wall_seconds, view.last_end - view.first_start, 1.0)
    scale = _scale(span)
    return [Bar(t.label, LABEL_WIDTH + (t.start - view.first_start) * scale, 0,
                max(1.0, t.elapsed * scale), t.elapsed, True, t.failed)
            for t in view.critical_path]


def timing_chart(view: TimingView) -> dict[str, Any]:
    return {"short": short, "width": WIDTH, "row": ROW, "bar": BAR, "label_width": LABEL_WIDTH,
            "recipes": recipe_bars(view), "timeline": task_timeline(view),
            "path": path_timeline(view)}
