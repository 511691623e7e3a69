"""How the service runs the runner shim (``run_job.sh``): through ``sudo -n -u <user>``, or as
itself on a developer machine (AUTO_BUILD_NO_SUDO=1). One home for the command and the
environment every runner call (build, cancel, purge, login check, token) is started with."""

from __future__ import annotations

import os
from pathlib import Path

# Without sudo (tests, a developer machine) the runner inherits these from the service; with
# sudo, env_reset drops them and the runner's production defaults apply.
DEV_PASSTHROUGH = ("GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "SSL_CERT_FILE",
                   "STANDIN_BITBAKE_DELAY", "STANDIN_BUILDSTATS_SEED")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def runner_command(runner_path: Path, user: str, args: list[str], use_sudo: bool) -> list[str]:
    """The argv that runs ``run_job.sh args...`` as ``user`` (as the current user without sudo)."""
    if use_sudo:
        return ["sudo", "-n", "-u", user, "--", str(runner_path), *args]
    return [str(runner_path), *args]


def runner_env(use_sudo: bool) -> dict[str, str]:
    """The small environment the runner is started with (nothing of the service leaks in)."""
    env = {"PATH": os.environ.get("PATH") or _DEFAULT_PATH, "LANG": "C.UTF-8"}
    if not use_sudo:
        env.update({k: os.environ[k] for k in DEV_PASSTHROUGH if os.environ.get(k)})
    return env
