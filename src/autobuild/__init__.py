"""Autobuild: start BitBake builds from the browser, each running as the engineer's own user."""

__version__ = "0.1.0"
