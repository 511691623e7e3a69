"""Settings from AUTO_BUILD_* environment variables, with the seed's defaults."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(Exception):
    """The configuration cannot work; the message says which variable to fix."""


def _split(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    db_path: Path = Path("/srv/autobuild/data/jobs.db")
    jobs_root: Path = Path("/srv/autobuild/jobs")
    runner_path: Path = Path("/opt/autobuild/runner/run_job.sh")
    secret_key: str = ""
    dev_mode: bool = False
    use_sudo: bool = True
    max_running: int = 1
    allowed_git_hosts: frozenset[str] = field(default_factory=frozenset)
    disabled_plugins: frozenset[str] = field(default_factory=frozenset)
    users_group: str = "autobuild-users"
    cookie_secure: bool = False
    poll_interval: float = 1.0
    host: str = "127.0.0.1"
    port: int = 8000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            db_path=Path(env.get("AUTO_BUILD_DB") or defaults.db_path),
            jobs_root=Path(env.get("AUTO_BUILD_JOBS_ROOT") or defaults.jobs_root),
            runner_path=Path(env.get("AUTO_BUILD_RUNNER") or defaults.runner_path),
            secret_key=env.get("AUTO_BUILD_SECRET_KEY", ""),
            dev_mode=_flag(env.get("AUTO_BUILD_DEV")),
            use_sudo=not _flag(env.get("AUTO_BUILD_NO_SUDO")),
            max_running=_int(env, "AUTO_BUILD_MAX_RUNNING", 1, minimum=1),
            allowed_git_hosts=_split(env.get("AUTO_BUILD_ALLOWED_GIT_HOSTS", "")),
            disabled_plugins=_split(env.get("AUTO_BUILD_DISABLED_PLUGINS", "")),
            users_group=env.get("AUTO_BUILD_USERS_GROUP") or defaults.users_group,
            cookie_secure=_flag(env.get("AUTO_BUILD_COOKIE_SECURE")),
            host=env.get("AUTO_BUILD_HOST") or defaults.host,
            port=_int(env, "AUTO_BUILD_PORT", defaults.port, minimum=1),
        )

    def session_secret(self) -> str:
        """The cookie-signing key; refuses to run without one unless in dev mode."""
        if self.secret_key:
            if len(self.secret_key) < 16:
                raise ConfigError("AUTO_BUILD_SECRET_KEY is too short: use at least 16 characters")
            return self.secret_key
        if self.dev_mode:
            return secrets.token_urlsafe(32)  # dev only: sessions end when the process does
        raise ConfigError(
            "AUTO_BUILD_SECRET_KEY is not set: put a long random value in "
            "/etc/autobuild/autobuild.env (or set AUTO_BUILD_DEV=1 on a developer machine)"
        )


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a systemd EnvironmentFile (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values
