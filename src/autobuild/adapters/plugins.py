"""Plugins on pluggy: the hook specifications, the plugin manager, and the typed facade.

Plugin authors import ``hookimpl`` from here; docs/plugins.md documents every hook.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Iterator
from typing import Any

import pluggy

from autobuild.domain.artifacts import is_valid_pattern, merge_patterns
from autobuild.domain.jobs import Job, JobStatus

PROJECT_NAME = "autobuild"
ENTRY_POINT_GROUP = "autobuild"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

# Built-in plugins, registered under the last part of their module name ("default_artifacts").
DEFAULT_PLUGINS = (
    "autobuild_plugins.default_artifacts",
    "autobuild_plugins.mtd_extras",
    "autobuild_plugins.sbom",
    "autobuild_plugins.webhook",
    "autobuild_plugins.email_notify",
)

log = logging.getLogger(__name__)


class HookSpecs:
    """The hooks a plugin may implement (as module-level functions marked ``@hookimpl``)."""

    @hookspec
    def autobuild_artifact_patterns(self, job: Job) -> list[str]:
        """Glob patterns of image files to collect for ``job``; all plugins' lists are combined."""

    @hookspec
    def autobuild_job_status_changed(self, job: Job, old: JobStatus, new: JobStatus) -> None:
        """``job`` went from ``old`` to ``new``; it is already stored with its new status."""


def builtin_name(module_name: str) -> str:
    """The plugin name of a built-in plugin module: "autobuild_plugins.x" -> "x"."""
    return module_name.rsplit(".", 1)[-1]


def build_plugin_manager(
    disabled: frozenset[str] = frozenset(), load_entry_points: bool = True
) -> pluggy.PluginManager:
    """A plugin manager with the built-in plugins and, unless told not to, the installed ones.

    Plugins named in ``disabled`` (built-in module names like "mtd_extras", or entry point
    names) are never imported nor registered. Raises pluggy.PluginValidationError when a
    plugin implements a hook that does not exist (a misspelled hook must not go unnoticed).
    """
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(HookSpecs)
    for name in disabled:
        pm.set_blocked(name)  # before loading, so a blocked plugin is never imported
    for module_name in DEFAULT_PLUGINS:
        if not pm.is_blocked(builtin_name(module_name)):
            pm.register(importlib.import_module(module_name), name=builtin_name(module_name))
    known = {builtin_name(m) for m in DEFAULT_PLUGINS}
    if load_entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        known |= {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
        if unknown := disabled - known:
            log.warning("AUTO_BUILD_DISABLED_PLUGINS names plugins that are not installed: %s",
                        ", ".join(sorted(unknown)))
    pm.check_pending()
    return pm


class PluginHooks:
    """Implements JobEvents: one typed method per hook; the only caller of the plugin hooks.

    Each plugin is called on its own, so one that raises is logged with its name and the
    others still run; no plugin exception ever reaches the caller.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm

    def artifact_patterns(self, job: Job) -> list[str]:
        """The valid patterns of all plugins, deduplicated; invalid ones are logged and dropped."""
        groups: list[list[str]] = []
        for plugin_name, result in self._call_each("autobuild_artifact_patterns", job=job):
            if result is None:
                continue
            if isinstance(result, str) or not isinstance(result, list | tuple):
                log.warning("plugin %r returned %r from autobuild_artifact_patterns, "
                            "not a list of patterns: ignored", plugin_name, result)
                continue
            valid = []
            for pattern in result:
                if isinstance(pattern, str) and is_valid_pattern(pattern):
                    valid.append(pattern)
                else:
                    log.warning("plugin %r gave the invalid artifact pattern %r: ignored",
                                plugin_name, pattern)
            groups.append(valid)
        return merge_patterns(groups)

    def job_status_changed(self, job: Job, old: JobStatus, new: JobStatus) -> None:
        """Tells every plugin; never raises."""
        for _ in self._call_each("autobuild_job_status_changed", job=job, old=old, new=new):
            pass

    def _call_each(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """(plugin name, result) per plugin in pluggy's call order; failures are logged, skipped."""
        caller = getattr(self._pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            if impl.wrapper or impl.hookwrapper:
                log.warning("plugin %r: wrappers are not supported for %s: ignored",
                            impl.plugin_name, hook_name)
                continue
            try:
                result = impl.function(*(kwargs[arg] for arg in impl.argnames))
            except Exception:
                log.exception("plugin %r failed in %s", impl.plugin_name, hook_name)
                continue
            yield impl.plugin_name, result
