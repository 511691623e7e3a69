"""A real nginx for the benchmarks (not a benchmark itself).

``Nginx(tmp, app_port, jobs_root, static_root)`` starts ``/usr/sbin/nginx`` as a child
(``daemon off``, its own prefix, config, pid and error log in ``tmp``) with two servers on
127.0.0.1:

* ``port``: the deployed site, deploy/nginx/autobuild.conf itself, with only its addresses
  changed: it listens on a free loopback port, proxies to the app at ``app_port``, and any
  path of the deployed jobs root (/srv/autobuild/jobs, e.g. an X-Accel-Redirect internal
  location) points to ``jobs_root``. So the SSE and download settings are the deployed ones.
* ``static_port``: the reference, nginx serving the files under ``static_root`` as they are.

The http block has what Debian's /etc/nginx/nginx.conf gives every site (sendfile, tcp_nopush,
mime types). Workers run as root: the bench's build tree is the current user's, 0640/2750.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench._server import free_port, stop_process, wait_for_port
from tests.support.nginx_site import site_config

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def main_config(tmp: Path, site: str, static_port: int, static_root: Path) -> str:
    temp = "\n".join(f"    {kind}_temp_path {tmp / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile 16384;
user root root;
pid {tmp / 'nginx.pid'};
error_log {tmp / 'error.log'} warn;
events {{ worker_connections 8192; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    access_log off;
{temp}
{site}
    # The reference: the same files served statically.
    server {{
        listen 127.0.0.1:{static_port};
        root {static_root};
    }}
}}
"""


class Nginx:
    """nginx in a child process: ``port`` proxies to the app, ``static_port`` serves files."""

    def __init__(self, tmp: Path, app_port: int, jobs_root: Path, static_root: Path) -> None:
        self.dir = tmp / "nginx"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port, self.static_port = free_port(), free_port()
        config = self.dir / "nginx.conf"
        config.write_text(main_config(self.dir, site_config(app_port, self.port, jobs_root),
                                      self.static_port, static_root))
        command = [NGINX, "-p", str(self.dir), "-c", str(config), "-e", str(self.dir / "error.log")]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused the bench config: {check.stderr.strip()}")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, self.process, "nginx")
            wait_for_port(self.static_port, self.process, "nginx")
        except BaseException:
            self.stop()
            raise

    def errors(self) -> str:
        """What nginx logged (warnings and errors)."""
        path = self.dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process)  # SIGTERM: the master ends its workers

    def __enter__(self) -> Nginx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
