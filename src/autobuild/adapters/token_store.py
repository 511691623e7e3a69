"""TokenStore on ``run_job.sh store-token/has-token``, run as the user who owns the token.

The service cannot write (or read) other users' homes; the runner, started through sudo as
the user, writes ``~/.autobuild/gitlab_token`` (dir 0700, file 0600) from its stdin. The
token is never on a command line, in the environment, or in a log.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from autobuild.domain.ports import RunnerError

from autobuild.domain.layout import is_user_name

from .sudo_shim import runner_command, runner_env

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0


class RunnerTokenStore:
    """Keeps each user's GitLab token in their own home, written by the runner as them."""

    def __init__(self, runner_path: Path, use_sudo: bool = True,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self._runner_path = Path(runner_path)
        self._use_sudo = use_sudo
        self._timeout = timeout

    def _run(self, username: str, mode: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
        if not is_user_name(username) or (self._use_sudo and username == "root"):
            raise RunnerError(f"{username!r} is not a user name builds can run as")
        command = runner_command(self._runner_path, username, [mode], self._use_sudo)
        try:
            return subprocess.run(command, input=stdin, capture_output=True,
                                  timeout=self._timeout, env=runner_env(self._use_sudo),
                                  start_new_session=True)
        except subprocess.TimeoutExpired:
            raise RunnerError(f"the runner did not answer within {self._timeout:.0f} s") from None
        except OSError as exc:
            raise RunnerError(f"cannot start the runner: {exc.strerror or exc}") from exc

    @staticmethod
    def _message(result: subprocess.CompletedProcess[bytes]) -> str:
        text = result.stderr.decode("utf-8", errors="replace").strip()
        text = text.removeprefix("run_job.sh: ").splitlines()[0] if text else ""
        return text or f"the runner ended with exit code {result.returncode}"

    def store(self, username: str, token: str) -> None:
        """Save ``token`` for ``username``; raises RunnerError with a message fit to show."""
        result = self._run(username, "store-token", token.encode("utf-8"))
        if result.returncode != 0:
            log.warning("storing the token of %s failed (exit %s)", username, result.returncode)
            raise RunnerError(f"the token was not saved: {self._message(result)}")

    def has_token(self, username: str) -> bool:
        """True when ``username`` has a token on file; raises RunnerError if it cannot tell."""
        result = self._run(username, "has-token", b"")
        answer = result.stdout.decode("utf-8", errors="replace").strip()
        if result.returncode == 0 and answer in ("yes", "no"):
            return answer == "yes"
        raise RunnerError(f"cannot tell whether {username} has a token: {self._message(result)}")
