"""The shipped nginx sites (deploy/nginx/autobuild.conf, and autobuild-tls.conf for HTTPS) for a
test or benchmark nginx on loopback: their addresses, the jobs root and the certificate changed,
nothing else; and ``Nginx``, an nginx of the test's own running one such site."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.support.loopback import wait_for_port

SITE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "autobuild.conf"
TLS_SITE = SITE.with_name("autobuild-tls.conf")
DEPLOYED_JOBS_ROOT = "/srv/autobuild/jobs"
DEPLOYED_CERT = "/etc/autobuild/tls/autobuild.crt"
DEPLOYED_KEY = "/etc/autobuild/tls/autobuild.key"


def _on_loopback(site: Path, app_port: int, http_port: int, jobs_root: Path) -> str:
    """``site`` proxying to 127.0.0.1:``app_port``, its ``listen 80`` on 127.0.0.1:``http_port``
    only, serving downloads from ``jobs_root``; RuntimeError when the file no longer has
    exactly one upstream server, one ``listen 80`` and one jobs root to replace."""
    text = site.read_text()
    text, upstreams = re.subn(r"server\s+127\.0\.0\.1:\d+\s*;", f"server 127.0.0.1:{app_port};",
                              text)
    text = re.sub(r"^\s*listen\s+\[::\][^;]*;\s*$", "", text, flags=re.M)
    text, listens = re.subn(r"^(\s*)listen\s+80\s*;", rf"\g<1>listen 127.0.0.1:{http_port};",
                            text, flags=re.M)
    roots = text.count(DEPLOYED_JOBS_ROOT)
    if (upstreams, listens, roots) != (1, 1, 1):
        raise RuntimeError(f"{site}: expected one upstream server, one 'listen 80' and one "
                           f"{DEPLOYED_JOBS_ROOT}, found {upstreams}, {listens} and {roots}")
    return text.replace(DEPLOYED_JOBS_ROOT, str(jobs_root).rstrip("/"))


def site_config(app_port: int, port: int, jobs_root: Path) -> str:
    """The site proxying to 127.0.0.1:``app_port``, listening on 127.0.0.1:``port`` only,
    serving downloads from ``jobs_root``; RuntimeError when the file no longer has exactly
    one upstream server, one ``listen 80`` and one jobs root to replace."""
    return _on_loopback(SITE, app_port, port, jobs_root)


def tls_site_config(app_port: int, port: int, redirect_port: int, jobs_root: Path,
                    cert: Path, key: Path) -> str:
    """The HTTPS site as install.sh sets it up: HTTPS with ``cert`` and ``key`` on
    127.0.0.1:``port``, its redirect to HTTPS on 127.0.0.1:``redirect_port``; otherwise as
    ``site_config`` (RuntimeError likewise, also without one ``listen 443`` and certificate)."""
    text = _on_loopback(TLS_SITE, app_port, redirect_port, jobs_root)
    text, listens = re.subn(r"^(\s*)listen\s+443\s+ssl", rf"\g<1>listen 127.0.0.1:{port} ssl",
                            text, flags=re.M)
    if (listens, text.count(DEPLOYED_CERT), text.count(DEPLOYED_KEY)) != (1, 1, 1):
        raise RuntimeError(f"{TLS_SITE}: expected one 'listen 443 ssl', one {DEPLOYED_CERT} "
                           f"and one {DEPLOYED_KEY}")
    return text.replace(DEPLOYED_CERT, str(cert)).replace(DEPLOYED_KEY, str(key))


class Nginx:
    """nginx in the foreground as a child of the test, with ``site`` as its only site, once it
    listens on 127.0.0.1:``port``; ``stop`` ends it."""

    def __init__(self, tmp: Path, site: str, port: int) -> None:
        tmp.mkdir(parents=True)
        self.port = port
        temp = "\n".join(f"    {kind}_temp_path {tmp / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # As root, workers would run as nobody, who cannot enter the test's tmp directory.
        user = "user root root;" if os.getuid() == 0 else ""
        (tmp / "nginx.conf").write_text(f"""daemon off;
{user}
pid {tmp / 'nginx.pid'};
error_log {tmp / 'error.log'} warn;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log off;
{temp}
{site}
}}
""")
        self.process = subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
                                        stderr=subprocess.PIPE)
        try:
            wait_for_port(self.port)
        except AssertionError:
            self.process.kill()
            _, errors = self.process.communicate()
            raise AssertionError(f"nginx did not start: {errors.decode(errors='replace')}"
                                 ) from None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
