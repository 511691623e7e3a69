"""One definition of every rule: the job directory's file names and the runner's step headers
live in autobuild.domain.layout only; everything else imports them."""

from __future__ import annotations

import ast
from pathlib import Path

from autobuild.domain import layout

SRC = Path(__file__).resolve().parents[2] / "src" / "autobuild"
LAYOUT = SRC / "domain" / "layout.py"
# Names distinctive enough that a literal spelling of them anywhere is a second definition
# (plain words such as "logs", "work" or "build" are used for other things too).
FILE_NAMES = [layout.RUNNER_RECORD, layout.CANCEL_REQUEST, layout.BUILD_LOG,
              layout.TASK_LOGS_DIR, layout.CHECKSUMS, layout.STATUS, layout.SPACE_RESERVE,
              layout.SLURM_OUTPUT_SUFFIX]
STEP_HEADERS = [layout.step_line(value) for name, value in vars(layout).items()
                if name.startswith("STEP_") and name != "STEP_PREFIX"]


def docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    skip = docstrings(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in skip]


def test_layout_names_and_step_headers_are_spelled_out_only_in_layout():
    assert STEP_HEADERS and all(h.startswith(layout.STEP_PREFIX) for h in STEP_HEADERS)
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path == LAYOUT:
            continue
        for line, text in literals(path):
            hits = [n for n in FILE_NAMES if n in text]
            if layout.STEP_PREFIX in text:
                hits.append(layout.STEP_PREFIX)
            hits += [h for h in STEP_HEADERS if h.strip() in text]
            if hits:
                offenders.append(f"{path.relative_to(SRC)}:{line}: {text!r} ({', '.join(hits)})")
    assert offenders == [], "\n".join(offenders)


def test_the_checker_would_see_a_second_definition(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""Mentions status.json in prose: fine."""\n'
                      'NAME = "status.json"\nHEADER = f"==> Cloning {1}"\n')
    texts = [text for _, text in literals(sample)]
    assert "status.json" in texts and any(layout.STEP_PREFIX in t for t in texts)
    assert not any("prose" in t for t in texts)
