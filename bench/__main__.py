"""Run the benchmark suite: ``.venv/bin/python -m bench [--markdown FILE] [NAME ...]``.

Runs every benchmark module in this package (or only the NAMEs given, e.g. ``b5_lists``)
with its default settings, in name order, and prints each one's figures under its name. A
module that fails is reported and the others still run; the exit status says whether all
passed. Each module also runs alone: ``.venv/bin/python -m bench.<name> --help``.

With ``--markdown docs/performance.md`` the results are also written there (bench/_report.py:
each module's section between its markers -- the command, its figures against the issue's
targets, its printed output -- is replaced, the rest of the file kept) and, when B1 ran, its
latency plot next to it (b1-latency.svg)."""

from __future__ import annotations

import argparse
import importlib
import io
import os
import pkgutil
import platform
import re
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import _report as report
from bench._svg import line_chart


def modules() -> list[str]:
    """The benchmark modules present: every module of the package with a ``main()``."""
    here = Path(__file__).resolve().parent
    return sorted(info.name for info in pkgutil.iter_modules([str(here)])
                  if not info.name.startswith("_"))


class Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy."""

    def __init__(self, out: io.TextIOBase) -> None:
        self.out, self.copy = out, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()


def run(name: str) -> bool:
    module = importlib.import_module(f"bench.{name}")
    main = getattr(module, "main", None)
    if main is None:
        print(f"bench.{name} has no main(); skipped")
        return True
    saved = sys.argv
    sys.argv = [f"bench.{name}"]  # the module's own defaults
    report.current = name
    try:
        main()
    except SystemExit as exc:
        return exc.code in (None, 0)
    except Exception:  # reported, and the next benchmark runs
        traceback.print_exc(file=sys.stdout)
        return False
    finally:
        sys.argv = saved
    return True


def command(name: str) -> str:
    """The command line of the module's docstring (its usage), else the plain one."""
    doc = importlib.import_module(f"bench.{name}").__doc__ or ""
    found = re.search(r"^\s*(\.venv/bin/python -m bench\.\S+.*)$", doc, re.M)
    return found.group(1).strip() if found else f".venv/bin/python -m bench.{name}"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({cpu}), "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def write_markdown(path: Path, outputs: dict[str, tuple[str, float, bool]]) -> None:
    sections = {name: report.section(name, command(name), out, seconds, ok)
                for name, (out, seconds, ok) in outputs.items()}
    sections["run"] = f"Last written by `python -m bench --markdown {path}` on {machine()}."
    if set(outputs) == set(modules()):  # a full run: the targets at a glance
        sections["summary"] = report.summary()
    if any(name.endswith(("p50", "p99")) for name in report.SERIES):
        plot = path.parent / "b1-latency.svg"
        plot.write_text(line_chart(report.SERIES, "B1: log line appended -> SSE viewer",
                                   "viewers", "latency (ms, log scale)",
                                   {"p50 target at 500: 30 ms": 30, "p99 target at 500: 100 ms": 100}))
        print(f"wrote {plot}")
    report.update_markdown(path, sections)
    print(f"wrote {path}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--markdown", type=Path, help="also write the results to this file")
    parser.add_argument("names", nargs="*", metavar="NAME")
    args = parser.parse_args(argv)
    present = modules()
    unknown = [name for name in args.names if name not in present]
    if unknown:
        print(f"no such benchmark: {', '.join(unknown)} (present: {', '.join(present)})",
              file=sys.stderr)
        return 2
    failed = []
    outputs = {}
    names = args.names or present
    for name in names:
        print(f"=== {name}", flush=True)
        started = time.perf_counter()
        tee = Tee(sys.stdout)
        sys.stdout = tee
        try:
            ok = run(name)
        finally:
            sys.stdout = tee.out
        if not ok:
            failed.append(name)
        seconds = time.perf_counter() - started
        outputs[name] = (tee.copy.getvalue(), seconds, ok)
        print(f"=== {name}: {'FAILED' if name in failed else 'done'} in {seconds:.1f} s\n",
              flush=True)
    print(f"{len(names)} benchmark(s) ran, "
          f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}")
    if args.markdown:
        write_markdown(args.markdown, outputs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
