"""A small SVG line chart (no plotting library in the venv): linear x, logarithmic y."""

from __future__ import annotations

import math
from html import escape

W, H = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 70, 170, 40, 50
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def line_chart(series: dict[str, list[tuple[float, float]]], title: str, x_label: str,
               y_label: str, guides: dict[str, float] | None = None) -> str:
    """``series``: name -> (x, y) points; a name ending in "p99" is drawn dashed.
    ``guides``: name -> y of a dotted horizontal line (e.g. a target)."""
    guides = guides or {}
    points = [p for line in series.values() for p in line if p[1] > 0]
    xs = [x for x, _ in points] or [0, 1]
    ys = [y for _, y in points] + list(guides.values()) or [1, 10]
    x0, x1 = 0.0, max(xs)
    y0 = 10 ** math.floor(math.log10(min(ys)))
    y1 = 10 ** math.ceil(math.log10(max(ys)))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / ((x1 - x0) or 1) * pw

    def py(y: float) -> float:
        return TOP + ph - (math.log10(y) - math.log10(y0)) / (math.log10(y1 / y0) or 1) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
           f'<text x="{LEFT + pw / 2}" y="{H - 10}" text-anchor="middle">{escape(x_label)}</text>',
           f'<text transform="translate(16 {TOP + ph / 2}) rotate(-90)" '
           f'text-anchor="middle">{escape(y_label)}</text>']
    decade = y0
    while decade <= y1 * 1.001:
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{py(decade):.1f}" '
                   f'y2="{py(decade):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py(decade) + 4:.1f}" text-anchor="end">{decade:g}</text>')
        decade *= 10
    for x in sorted(set(xs)):
        out.append(f'<text x="{px(x):.1f}" y="{TOP + ph + 18}" text-anchor="middle">{x:g}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    for name, y in guides.items():
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
                   f'stroke="#888" stroke-dasharray="2 3"/>')
        out.append(f'<text x="{LEFT + pw - 4}" y="{py(y) - 4:.1f}" fill="#666" '
                   f'text-anchor="end">{escape(name)}</text>')
    for n, (name, line) in enumerate(series.items()):
        color = COLORS[n // 2 % len(COLORS)] if len(series) > 1 else COLORS[0]
        dash = ' stroke-dasharray="6 4"' if name.endswith("p99") else ""
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(line) if y > 0)
        out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" '
                   f'stroke-width="2"{dash}/>')
        out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>'
                for x, y in line if y > 0]
        ly = TOP + 10 + 20 * n
        out.append(f'<line x1="{W - RIGHT + 10}" x2="{W - RIGHT + 35}" y1="{ly}" y2="{ly}" '
                   f'stroke="{color}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{W - RIGHT + 40}" y="{ly + 4}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
