"""The ``register_plugin`` fixture: register a plugin for one test, unregister it after.

Use it from any test module with ``from tests.plugin_fixtures import plugin_manager,
register_plugin`` (tests/conftest.py does this for the whole suite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pluggy
import pytest

from autobuild.adapters.plugins import build_plugin_manager


@pytest.fixture
def plugin_manager() -> pluggy.PluginManager:
    """A fresh manager with the built-in plugins only (installed ones are left out of tests)."""
    return build_plugin_manager(load_entry_points=False)


@pytest.fixture
def register_plugin(
    plugin_manager: pluggy.PluginManager,
) -> Iterator[Callable[..., Any]]:
    """``register_plugin(plugin, name=None, pm=None)`` registers into ``pm`` (default: the
    ``plugin_manager`` fixture), checks it like the service does, and returns the plugin."""
    registered: list[tuple[pluggy.PluginManager, object]] = []

    def register(plugin: object, name: str | None = None,
                 pm: pluggy.PluginManager | None = None) -> object:
        target = plugin_manager if pm is None else pm
        target.register(plugin, name=name)
        registered.append((target, plugin))
        target.check_pending()  # a misspelled hook fails here, as it does at service start
        return plugin

    yield register
    for target, plugin in registered:
        if target.is_registered(plugin):
            target.unregister(plugin)
