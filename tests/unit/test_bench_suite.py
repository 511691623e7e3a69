"""bench/: one entry point finds every benchmark; B5 runs (figures are not asserted here)."""

import subprocess
import sys
from pathlib import Path

from bench.__main__ import main, modules

ROOT = Path(__file__).resolve().parents[2]


def test_the_entry_point_finds_every_benchmark_module():
    present = modules()
    assert {"b5_lists", "end_detection"} <= set(present)
    assert "__main__" not in present


def test_an_unknown_benchmark_is_refused(capsys):
    assert main(["no_such_bench"]) == 2
    assert "b5_lists" in capsys.readouterr().err


def test_b5_runs_small_and_prints_ratios():
    result = subprocess.run(
        [sys.executable, "-m", "bench.b5_lists", "--large", "2000", "--small", "100",
         "--repeat", "3"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert "worst ratio" in result.stdout and "owner+status" in result.stdout
