"""DiskSpace on os.statvfs."""

from __future__ import annotations

import os
from pathlib import Path


class StatvfsDiskSpace:
    """Implements DiskSpace: what ``df`` shows as available (the root-reserved blocks excluded)."""

    def free_bytes(self, path: str) -> int:
        """Bytes an unprivileged user may still write on the filesystem that holds (or will
        hold) ``path``: a path that does not exist yet is measured at its nearest parent."""
        current = Path(path).absolute()
        while not current.exists() and current != current.parent:
            current = current.parent
        info = os.statvfs(current)
        return info.f_bavail * info.f_frsize
