"""Adapters: one module per technology and port (sqlite, files, sudo, PAM, pluggy...)."""
