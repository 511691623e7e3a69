"""The command-line client as a module, for tests that call its functions: it is one file
without a .py suffix (served as /cli/autobuild-cli), so it is loaded from its path."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

import autobuild.web

CLI_FILE = Path(autobuild.web.__file__).parent / "static" / "autobuild-cli"


def load_cli(name: str = "autobuild_cli") -> ModuleType:
    """A fresh instance of the client module under ``name`` (one per test module, so that one
    module's monkeypatching never reaches another's)."""
    loader = importlib.machinery.SourceFileLoader(name, str(CLI_FILE))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
