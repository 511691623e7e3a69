"""Built-in Autobuild plugins (package ``autobuild_plugins``), each a normal pluggy plugin.

They are listed in ``autobuild.adapters.plugins.DEFAULT_PLUGINS`` and can be switched off by
name (the module name, e.g. ``mtd_extras``) with ``AUTO_BUILD_DISABLED_PLUGINS``.
"""
