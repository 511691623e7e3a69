"""Fixtures shared by the whole test suite."""

from tests.plugin_fixtures import plugin_manager, register_plugin  # noqa: F401  (pytest fixtures)
