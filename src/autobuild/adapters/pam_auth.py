"""Authenticator on ``run_job.sh check-login``: PAM checks the password as the user.

pam_unix lets a process check only its own user's password, and the service must not be
able to read /etc/shadow (DESIGN.md); so the runner, started through sudo as the user, runs
python-pam with service "autobuild", the password on its stdin. sudo only runs it as members
of the builders' group, so nobody else can log in; root never can.
"""

from __future__ import annotations

import logging
import os
import pwd
import subprocess
from pathlib import Path

from autobuild.domain.layout import is_user_name

from .sudo_shim import runner_command, runner_env

log = logging.getLogger(__name__)

MAX_PASSWORD_CHARS = 1024
DEFAULT_TIMEOUT = 30.0


def _current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


class PamAuthenticator:
    """Checks Linux passwords through the runner; any failure to check means "no"."""

    def __init__(self, runner_path: Path, use_sudo: bool = True,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self._runner_path = Path(runner_path)
        self._use_sudo = use_sudo
        self._timeout = timeout

    def _may_try(self, username: str, password: str) -> bool:
        if not is_user_name(username) or username == "root":
            return False
        if not password or len(password) > MAX_PASSWORD_CHARS or "\0" in password:
            return False
        try:
            if pwd.getpwnam(username).pw_uid == 0:
                return False  # another name for root
        except KeyError:
            return False
        # Without sudo the runner checks the password of the user the service runs as.
        return self._use_sudo or username == _current_user()

    def authenticate(self, username: str, password: str) -> bool:
        """True only when PAM accepts ``password`` for ``username`` (never for root)."""
        if not self._may_try(username, password):
            return False
        command = runner_command(self._runner_path, username, ["check-login"], self._use_sudo)
        try:
            result = subprocess.run(command, input=password.encode("utf-8"), capture_output=True,
                                    timeout=self._timeout, env=runner_env(self._use_sudo),
                                    start_new_session=True)
        except subprocess.TimeoutExpired:
            log.warning("login check for %s timed out after %.0f s", username, self._timeout)
            return False
        except OSError as exc:
            log.warning("login check for %s could not start the runner: %s", username, exc)
            return False
        if result.returncode not in (0, 1):
            detail = result.stderr.decode("utf-8", errors="replace").strip()[-500:]
            log.warning("login check for %s failed (exit %s): %s", username,
                        result.returncode, detail)
        return result.returncode == 0
