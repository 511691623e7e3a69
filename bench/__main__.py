"""Run the benchmark suite: ``.venv/bin/python -m bench [NAME ...]``.

Runs every benchmark module in this package (or only the NAMEs given, e.g. ``b5_lists``)
with its default settings, in name order, and prints each one's figures under its name. A
module that fails is reported and the others still run; the exit status says whether all
passed. Each module also runs alone: ``.venv/bin/python -m bench.<name> --help``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path


def modules() -> list[str]:
    """The benchmark modules present: every module of the package with a ``main()``."""
    here = Path(__file__).resolve().parent
    return sorted(info.name for info in pkgutil.iter_modules([str(here)])
                  if not info.name.startswith("_"))


def run(name: str) -> bool:
    module = importlib.import_module(f"bench.{name}")
    main = getattr(module, "main", None)
    if main is None:
        print(f"bench.{name} has no main(); skipped")
        return True
    saved = sys.argv
    sys.argv = [f"bench.{name}"]  # the module's own defaults
    try:
        main()
    except SystemExit as exc:
        return exc.code in (None, 0)
    except Exception:  # reported, and the next benchmark runs
        traceback.print_exc()
        return False
    finally:
        sys.argv = saved
    return True


def main(argv: list[str]) -> int:
    present = modules()
    unknown = [name for name in argv if name not in present]
    if unknown:
        print(f"no such benchmark: {', '.join(unknown)} (present: {', '.join(present)})",
              file=sys.stderr)
        return 2
    failed = []
    names = argv or present
    for name in names:
        print(f"=== {name}", flush=True)
        started = time.perf_counter()
        if not run(name):
            failed.append(name)
        print(f"=== {name}: {'FAILED' if name in failed else 'done'} in "
              f"{time.perf_counter() - started:.1f} s\n", flush=True)
    print(f"{len(names)} benchmark(s) ran, "
          f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
