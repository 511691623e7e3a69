"""The shipped nginx site (deploy/nginx/autobuild.conf) for a test or benchmark nginx on
loopback: its addresses and the jobs root changed, nothing else."""

from __future__ import annotations

import re
from pathlib import Path

SITE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "autobuild.conf"
DEPLOYED_JOBS_ROOT = "/srv/autobuild/jobs"


def site_config(app_port: int, port: int, jobs_root: Path) -> str:
    """The site proxying to 127.0.0.1:``app_port``, listening on 127.0.0.1:``port`` only,
    serving downloads from ``jobs_root``; RuntimeError when the file no longer has exactly
    one upstream server, one ``listen 80`` and one jobs root to replace."""
    text = SITE.read_text()
    text, upstreams = re.subn(r"server\s+127\.0\.0\.1:\d+\s*;", f"server 127.0.0.1:{app_port};",
                              text)
    text = re.sub(r"^\s*listen\s+\[::\][^;]*;\s*$", "", text, flags=re.M)
    text, listens = re.subn(r"^(\s*)listen\s+80\s*;", rf"\g<1>listen 127.0.0.1:{port};", text,
                            flags=re.M)
    roots = text.count(DEPLOYED_JOBS_ROOT)
    if (upstreams, listens, roots) != (1, 1, 1):
        raise RuntimeError(f"{SITE}: expected one upstream server, one 'listen 80' and one "
                           f"{DEPLOYED_JOBS_ROOT}, found {upstreams}, {listens} and {roots}")
    return text.replace(DEPLOYED_JOBS_ROOT, str(jobs_root).rstrip("/"))
