"""The house rules that keep the layers honest, and the Linux-file rule (LF only)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "autobuild"
FRAMEWORKS = {"fastapi", "starlette", "dependency_injector", "uvicorn", "jinja2"}


def imported_top_levels(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", sorted((SRC / "domain").glob("*.py")), ids=lambda p: p.name)
def test_domain_imports_only_the_standard_library(module):
    outside = {n for n in imported_top_levels(module) if n not in sys.stdlib_module_names}
    assert outside == set(), f"{module.name} imports {outside}"


def test_only_web_imports_the_web_frameworks():
    offenders = {}
    for module in SRC.rglob("*.py"):
        if "web" in module.relative_to(SRC).parts or module.name == "cli.py":
            continue
        used = imported_top_levels(module) & FRAMEWORKS
        if used:
            offenders[str(module.relative_to(SRC))] = used
    assert offenders == {}


def test_import_contracts_hold():
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(linter)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_tracked_text_file_uses_lf():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.split(b"\0")
    with_cr = []
    for name in filter(None, files):
        path = ROOT / name.decode()
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" not in data[:8192] and b"\r" in data:
            with_cr.append(name.decode())
    assert with_cr == []


def test_gitattributes_forces_lf():
    assert "eol=lf" in (ROOT / ".gitattributes").read_text()
