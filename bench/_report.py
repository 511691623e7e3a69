"""The figures the benchmarks report, and docs/performance.md written from them (not a
benchmark itself).

A benchmark calls ``figure(...)`` for each figure the issue sets a target for (or that the
results table should show) and ``series(...)`` for plot data; ``python -m bench --markdown
PATH`` (bench/__main__.py) then rewrites, in PATH, the section of each benchmark that ran --
between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``, appended when missing -- with its
command line, its figures against their targets and its printed output. Text outside the
markers is kept as it is.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    bench: str
    name: str
    measured: str
    reference: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = ""


current = ""  # the benchmark running (set by bench/__main__.py)
FIGURES: list[Figure] = []
SERIES: dict[str, list[tuple[float, float]]] = {}


def verdict(value: float, limit: float, unit: str = "", higher_is_better: bool = False) -> str:
    """"met", or by how much the target was missed."""
    if math.isnan(value):
        return "not measured"
    if (value >= limit) if higher_is_better else (value <= limit):
        return "met"
    gap = abs(value - limit)
    return (f"missed by {gap:,.0f}{unit}" if gap >= 100 else f"missed by {gap:.3g}{unit}") + (
        f" ({value / limit:.1f}x the target)" if limit else "")


def figure(name: str, measured: str, reference: str = "", ratio: str = "", target: str = "",
           verdict: str = "") -> str:
    """Records one figure of the running benchmark; returns its verdict."""
    FIGURES.append(Figure(current, name, measured, reference, ratio, target, verdict))
    return verdict


def series(name: str, x: float, y: float) -> None:
    SERIES.setdefault(name, []).append((x, y))


def _table(figures: list[Figure]) -> str:
    rows = ["| figure | measured | reference, same run | ratio | target | verdict |",
            "|---|---|---|---|---|---|"]
    rows += [f"| {f.name} | {f.measured} | {f.reference} | {f.ratio} | {f.target} | "
             f"{'**' + f.verdict + '**' if f.verdict.startswith('missed') else f.verdict} |"
             for f in figures]
    return "\n".join(rows)


def summary() -> str:
    """Every figure with a target, of every benchmark that ran."""
    return _table([f for f in FIGURES if f.target])


def section(name: str, command: str, output: str, seconds: float, ok: bool) -> str:
    figures = [f for f in FIGURES if f.bench == name]
    parts = [f"Reproduce: `{command}` ({'ran' if ok else 'FAILED'} in {seconds:.0f} s)."]
    if figures:
        parts.append(_table(figures))
    parts.append(f"<details><summary>Printed output</summary>\n\n```text\n{output.rstrip()}\n"
                 "```\n\n</details>")
    return "\n\n".join(parts)


def update_markdown(path: Path, sections: dict[str, str]) -> None:
    """Replaces (or appends) each named section of ``path`` between its markers."""
    text = path.read_text() if path.exists() else "# Performance\n"
    for name, body in sections.items():
        block = f"<!-- bench:{name} -->\n{body}\n<!-- /bench:{name} -->"
        pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->",
                             re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _: block, text)
        else:
            text = text.rstrip("\n") + f"\n\n## {name}\n\n{block}\n"
    path.write_text(text if text.endswith("\n") else text + "\n")
