"""Every hook is documented for plugin authors and tested (the Datasette rule).

The hooks are discovered from the hookspecs, so adding a hook without docs and a
``test_hook_<name>`` makes this fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pluggy
import pytest

from autobuild.adapters.plugins import PROJECT_NAME, HookSpecs

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DOCS = ROOT / "docs" / "plugins.md"
PLUGIN_TESTS = ROOT / "tests" / "unit" / "test_plugins.py"


def hook_signatures() -> dict[str, str]:
    """hook name -> "name(arg, ...)" as plugin authors implement it."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(HookSpecs)
    return {name: f"{name}({', '.join(caller.spec.argnames)})"
            for name, caller in vars(pm.hook).items()
            if isinstance(caller, pluggy.HookCaller) and caller.spec is not None}


def test_the_hookspecs_are_found():
    assert set(hook_signatures()) == {"autobuild_artifact_patterns",
                                      "autobuild_job_status_changed"}


@pytest.mark.parametrize("name", sorted(hook_signatures()))
def test_hook_is_documented_with_its_exact_signature(name):
    docs = PLUGIN_DOCS.read_text(encoding="utf-8")
    signature = hook_signatures()[name]
    assert f"## Hook: {name}\n" in docs, f"docs/plugins.md has no section for {name}"
    assert f"```python\n{signature}\n```" in docs, \
        f"docs/plugins.md does not show the signature {signature} in a code block"


@pytest.mark.parametrize("name", sorted(hook_signatures()))
def test_hook_has_its_own_test(name):
    tree = ast.parse(PLUGIN_TESTS.read_text(encoding="utf-8"))
    tests = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert f"test_hook_{name}" in tests, f"tests/unit/test_plugins.py lacks test_hook_{name}"
